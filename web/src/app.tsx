// The shell: sign-in gate, navigation, the live-channel state, alert toasts, and the page for
// the current path.
import { useEffect, useState } from "preact/hooks";
import { type ApiError, api, storedToken, storeToken } from "./api.ts";
import { AlertToasts } from "./components/AlertToasts.tsx";
import { closeLive, liveSocket, useLiveState } from "./live.ts";
import type { Role } from "./lib/api-types.ts";
import { AlertsPage } from "./pages/Alerts.tsx";
import { ComparePage } from "./pages/Compare.tsx";
import { JobPage } from "./pages/Job.tsx";
import { JobsPage } from "./pages/Jobs.tsx";
import { LoginPage } from "./pages/Login.tsx";
import { NewJobPage } from "./pages/NewJob.tsx";
import { Link, useLocation } from "./router.tsx";
import { canWrite, type Session, SessionContext } from "./session.ts";

type SessionState = { kind: "checking" } | { kind: "signedOut"; reason?: string } | { kind: "signedIn"; session: Session };

export function App() {
  const [state, setState] = useState<SessionState>({ kind: "checking" });

  useEffect(() => {
    const check = () => {
      const token = storedToken();
      if (!token) {
        closeLive();
        setState((s) => ({ kind: "signedOut", reason: s.kind === "signedIn" ? "Signed out: the token was refused or removed." : undefined }));
        return;
      }
      api<{ role: Role; name: string }>("/session", { token }).then(
        ({ role, name }) => {
          liveSocket(token);
          setState({ kind: "signedIn", session: { token, role, name } });
        },
        (error: ApiError) => {
          if (error.status === 401) storeToken(null);
          setState({ kind: "signedOut", reason: error.message });
        },
      );
    };
    check();
    window.addEventListener("gradguard:token", check);
    return () => window.removeEventListener("gradguard:token", check);
  }, []);

  if (state.kind === "checking") return <p class="page-loading">Loading…</p>;
  if (state.kind === "signedOut") return <LoginPage reason={state.reason} />;
  return (
    <SessionContext.Provider value={state.session}>
      <Shell session={state.session} />
    </SessionContext.Provider>
  );
}

function Shell({ session }: { session: Session }) {
  const url = useLocation();
  const live = useLiveState();
  const path = url.pathname;
  const jobMatch = /^\/jobs\/([0-9a-f-]{36})$/.exec(path);
  let page = <NotFound />;
  if (path === "/" || path === "/jobs") page = <JobsPage />;
  else if (path === "/new") page = <NewJobPage />;
  else if (jobMatch) page = <JobPage key={jobMatch[1]} jobId={jobMatch[1] as string} focusStep={numberParam(url, "step")} />;
  else if (path === "/compare") page = <ComparePage ids={(url.searchParams.get("jobs") ?? "").split(",").filter(Boolean)} />;
  else if (path === "/alerts") page = <AlertsPage />;
  const section = path === "/" || path.startsWith("/jobs") ? "/" : path;

  return (
    <>
      <header class="topbar">
        <Link href="/" class="brand">
          gradguard
        </Link>
        <nav>
          {[
            ["/", "Jobs"],
            ...(canWrite(session) ? [["/new", "New job"]] : []),
            ["/compare", "Compare"],
            ["/alerts", "Alerts"],
          ].map(([href, label]) => (
            <Link key={href} href={href as string} class={section === href ? "active" : ""} aria-current={section === href ? "page" : undefined}>
              {label}
            </Link>
          ))}
        </nav>
        <span class={`live-pill live-${live}`} title="The live channel (socket.io); while it is down, pages poll the REST API">
          {live === "live" ? "live" : live === "connecting" ? "live: connecting" : "live: reconnecting"}
        </span>
        <span class="who" title={`signed in with token "${session.name}"`}>
          {session.name} · {session.role}
        </span>
        <button type="button" class="link-button" onClick={() => storeToken(null)}>
          Sign out
        </button>
      </header>
      <main>{page}</main>
      <AlertToasts />
    </>
  );
}

function numberParam(url: URL, name: string): number | undefined {
  const value = Number(url.searchParams.get(name));
  return url.searchParams.has(name) && Number.isInteger(value) && value >= 0 ? value : undefined;
}

function NotFound() {
  return (
    <section class="empty-state">
      <h1>Nothing here</h1>
      <p>
        This address is not a dashboard page. <Link href="/">Back to the jobs</Link>.
      </p>
    </section>
  );
}
