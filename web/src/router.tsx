// A router small enough to read: paths are pages, the History API moves between them, and the
// server answers every non-API path with index.html so a reload or a shared link opens the page.
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

export function navigate(to: string): void {
  history.pushState(null, "", to);
  window.dispatchEvent(new Event("gradguard:navigate"));
}

export function useLocation(): URL {
  const [url, setUrl] = useState(() => new URL(location.href));
  useEffect(() => {
    const update = () => setUrl(new URL(location.href));
    window.addEventListener("popstate", update);
    window.addEventListener("gradguard:navigate", update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener("gradguard:navigate", update);
    };
  }, []);
  return url;
}

/** An in-app link: a real <a> (open in a new tab works) that navigates without a reload. */
interface LinkProps {
  href: string;
  children: ComponentChildren;
  class?: string;
  title?: string;
  "aria-current"?: "page";
}

export function Link({ href, children, ...rest }: LinkProps) {
  const onClick = (event: MouseEvent) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}
