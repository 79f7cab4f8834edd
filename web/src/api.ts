// The REST client: the token from the browser's storage on every request, problem+json turned
// into an ApiError that keeps the field errors, and a 401 signing the user out.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { Problem } from "./lib/api-types.ts";

const TOKEN_KEY = "gradguard.token";

export function storedToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
  window.dispatchEvent(new Event("gradguard:token"));
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problem.detail ?? problem.title);
  }
}

export async function api<T>(path: string, init: { method?: string; body?: unknown; token?: string } = {}): Promise<T> {
  const token = init.token ?? storedToken();
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method: init.method ?? "GET",
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body !== undefined ? { "content-type": "application/json" } : {}) },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    });
  } catch {
    throw new ApiError(0, { type: "about:blank", title: "Server unreachable", status: 0, detail: "the gradguard server did not answer; is it running?" });
  }
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : undefined;
  if (!response.ok) {
    if (response.status === 401 && init.token === undefined) storeToken(null);
    throw new ApiError(response.status, (body as Problem | undefined) ?? { type: "about:blank", title: response.statusText, status: response.status });
  }
  return body as T;
}

export interface Resource<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * Loads `path` (nothing when null), reloading every `refreshMs` while `refreshMs` is set. Keeps
 * the last good data on a failed refresh, so a blip shows an error line, not an empty page.
 */
export function useApi<T>(path: string | null, refreshMs?: number): Resource<T> {
  const [state, setState] = useState<{ data?: T; error?: ApiError; loading: boolean }>({ loading: path !== null });
  const generation = useRef(0);
  const load = useCallback(() => {
    if (path === null) return;
    const mine = ++generation.current;
    api<T>(path).then(
      (data) => mine === generation.current && setState({ data, loading: false }),
      (error: ApiError) => mine === generation.current && setState((s) => ({ data: s.data, error, loading: false })),
    );
  }, [path]);
  useEffect(() => {
    setState({ loading: path !== null });
    load();
  }, [load, path]);
  useEffect(() => {
    if (!refreshMs) return;
    const timer = setInterval(load, refreshMs);
    return () => clearInterval(timer);
  }, [load, refreshMs]);
  return { data: state.data, error: state.error, loading: state.loading, reload: load };
}
