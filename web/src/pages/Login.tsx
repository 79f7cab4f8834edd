// Sign in with an API token: checked against GET /api/v1/session, then kept in localStorage.
import { useState } from "preact/hooks";
import { type ApiError, api, storeToken } from "../api.ts";

export function LoginPage({ reason }: { reason?: string }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(reason);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      await api("/session", { token: token.trim() });
      storeToken(token.trim());
    } catch (failure) {
      setError((failure as ApiError).message);
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form onSubmit={submit} class="card">
        <h1>gradguard</h1>
        <p class="muted">Sign in with an API token. The first admin token is printed by the server's first start; admins create others with POST /api/v1/tokens.</p>
        <label for="token">API token</label>
        <input id="token" type="password" autocomplete="current-password" value={token} onInput={(e) => setToken(e.currentTarget.value)} required aria-describedby="login-error" />
        {error && (
          <p id="login-error" class="field-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy || token.trim() === ""}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
