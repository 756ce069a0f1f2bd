/**
 * @module Signing in: the UI sends the browser to the server's sign-in page (`/auth/authorize`,
 * authorization code + PKCE) and, back on `/oauth-callback`, exchanges the code. After a sign-out
 * or a failed sign-in it waits for the person to click "Sign in" again.
 */
import { useEffect, useState } from "preact/hooks";
import { currentUrl, navigate, queryParams } from "../lib/router.ts";
import { CALLBACK_PATH, completeLogin, login, signedOut } from "../lib/session.ts";
import { ErrorNote } from "../components/ErrorNote.tsx";

let exchanging: Promise<string> | undefined;

export function LoginPage() {
  const path = currentUrl.value.split("?")[0];
  const callback = path === CALLBACK_PATH;
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const returnTo = path === "/login" || callback ? "/" : currentUrl.value;
  const start = () => {
    setBusy(true);
    login(returnTo).catch((e) => {
      setError((e as Error).message);
      setBusy(false);
    });
  };
  useEffect(() => {
    if (callback) {
      // Once per answer, even if the page renders twice.
      (exchanging ??= completeLogin(queryParams()))
        .then((to) => navigate(to, true))
        .catch((e) => {
          setError((e as Error).message);
          history.replaceState(null, "", "/login");
        })
        .finally(() => exchanging = undefined);
    } else if (!signedOut.value) {
      start();
    }
  }, [callback]);
  if ((callback || !signedOut.value) && !error) {
    return (
      <main id="main" class="login">
        <p class="muted" role="status">{callback ? "Signing in…" : "Opening the sign-in page…"}</p>
      </main>
    );
  }
  return (
    <main id="main" class="login">
      <div class="card login-card" aria-labelledby="login-title">
        <h1 id="login-title">
          <span aria-hidden="true" class="logo" />Imaging AI
        </h1>
        <p class="muted">Sign in to read studies and AI findings.</p>
        <ErrorNote error={error} />
        <button type="button" class="primary" disabled={busy} onClick={start}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p class="notice">
          The AI models here are demonstrations trained on synthetic data; not for clinical use.
        </p>
      </div>
    </main>
  );
}
