/**
 * @module The authorization server's own pages, rendered on the server: sign-in, consent (the
 * app's name, each requested scope in plain words with a box to untick, a patient picker for a
 * standalone launch, Approve / Deny) and errors. The web UI's colours and type, one inline
 * stylesheet allowed by a per-response nonce, no script, no external asset; every form carries the
 * request id and its CSRF token. Each page comes with its Content-Security-Policy, whose
 * `form-action` names this origin and the app's redirect origin (browsers apply it to the redirect
 * that follows a form submit).
 */
import { describeScope } from "../auth/smart_scopes.ts";

export interface Page {
  html: string;
  csp: string;
}

const CSS = `
:root{--bg:#0d1620;--panel:#15212e;--panel-2:#1c2b3a;--line:#2c3e50;--text:#e8eef5;--muted:#a9b8c8;
--accent:#5fb3ff;--accent-text:#06121e;--bad:#ff8080;--warn:#ffd166;--focus:#ffd166;color-scheme:dark;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;font-size:15px;
line-height:1.45;background:var(--bg);color:var(--text)}
*{box-sizing:border-box}body{margin:0;min-height:100vh}
main{display:grid;place-items:center;min-height:100vh;padding:1rem}
.card{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:1rem 1.25rem;
width:min(460px,100%);display:flex;flex-direction:column;gap:.9rem}
h1{font-size:1.5rem;margin:0;display:flex;align-items:center;gap:.6rem}
h2{font-size:1.05rem;margin:.25rem 0 0}
.logo{width:1.4rem;height:1.4rem;border-radius:50%;background:radial-gradient(circle at 35% 35%,#9bd0ff,#5fb3ff 45%,#27496b)}
.muted{color:var(--muted)}p{margin:0}
label{display:flex;flex-direction:column;gap:.25rem;font-size:.85rem;color:var(--muted)}
label.check{flex-direction:row;align-items:flex-start;gap:.5rem;color:var(--text);font-size:.95rem}
input{font:inherit;color:var(--text);background:#0b131b;border:1px solid #44586d;border-radius:6px;
padding:.4rem .55rem;min-width:0}
input[type=checkbox],input[type=radio]{width:1.05rem;height:1.05rem;margin-top:.15rem;flex:none}
button{font:inherit;color:var(--text);background:var(--panel-2);border:1px solid var(--line);
border-radius:6px;padding:.45rem .9rem;cursor:pointer}
button.primary{background:var(--accent);color:var(--accent-text);border-color:var(--accent);font-weight:600}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.row{display:flex;gap:.5rem;flex-wrap:wrap}.row>input{flex:1}
.error{color:var(--bad)}
.notice{border-left:4px solid var(--warn);background:#2a2514;color:#ffe7a8;padding:.5rem .75rem;border-radius:4px}
fieldset{border:1px solid var(--line);border-radius:8px;display:flex;flex-direction:column;gap:.5rem;
padding:.6rem .8rem;margin:0}legend{color:var(--muted);font-size:.85rem;padding:0 .3rem}
code{font-size:.8rem;color:var(--muted)}
#consent{display:flex;flex-direction:column;gap:.9rem}`;

/** Text escaped for HTML content and attribute values. */
export function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

function page(title: string, body: string, formTargets: string[] = []): Page {
  const nonce = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const csp = [
    "default-src 'none'",
    `style-src 'nonce-${nonce}'`,
    "img-src 'self' data:",
    `form-action 'self'${formTargets.map((t) => ` ${t}`).join("")}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join("; ");
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>${esc(title)} · Imaging AI</title>
<style nonce="${nonce}">${CSS}</style></head>
<body><main id="main">${body}</main></body></html>`;
  return { html, csp };
}

function hidden(requestId: string, csrf: string): string {
  return `<input type="hidden" name="request_id" value="${esc(requestId)}">` +
    `<input type="hidden" name="csrf" value="${esc(csrf)}">`;
}

const HEADER = `<h1><span aria-hidden="true" class="logo"></span>Imaging AI</h1>`;

/** Sign-in for an authorization request. */
export function loginPage(o: {
  requestId: string;
  csrf: string;
  clientName: string;
  firstParty: boolean;
  username?: string;
  error?: string;
}): Page {
  const why = o.firstParty
    ? "Sign in to read studies and AI findings."
    : `Sign in to let <strong>${esc(o.clientName)}</strong> use your Imaging AI records.`;
  return page(
    "Sign in",
    `<form class="card" method="post" action="/auth/authorize" aria-labelledby="t">
${HEADER.replace("<h1>", '<h1 id="t">')}
<p class="muted">${why}</p>
${hidden(o.requestId, o.csrf)}<input type="hidden" name="action" value="login">
<label>Username<input name="username" autocomplete="username" required value="${
      esc(o.username ?? "")
    }"></label>
<label>Password<input name="password" type="password" autocomplete="current-password" required></label>
${o.error ? `<p class="error" role="alert">${esc(o.error)}</p>` : ""}
<button type="submit" class="primary">Sign in</button>
<p class="notice">The AI models here are demonstrations trained on synthetic data; not for clinical use.</p>
</form>`,
  );
}

export interface PatientChoice {
  id: string;
  name: string;
  birthDate?: string;
}

/** Consent: the app, its scopes (each can be unticked), a patient picker when one is needed. */
export function consentPage(o: {
  requestId: string;
  csrf: string;
  clientName: string;
  clientId: string;
  redirectOrigin: string;
  userName: string;
  scopes: string[];
  launchPatient?: string;
  patientPicker?: { query: string; results: PatientChoice[]; searched: boolean };
  error?: string;
}): Page {
  const boxes = o.scopes.map((s, i) =>
    `<label class="check"><input type="checkbox" name="scope" value="${
      esc(s)
    }" checked id="s${i}">` +
    `<span>${esc(describeScope(s))} <code>${esc(s)}</code></span></label>`
  ).join("\n");
  let picker = "";
  if (o.patientPicker) {
    const p = o.patientPicker;
    const list = p.results.map((r, i) =>
      `<label class="check"><input type="radio" form="consent" name="patient" value="${esc(r.id)}"${
        i === 0 ? " checked" : ""
      }><span>${esc(r.name)}${r.birthDate ? ` · born ${esc(r.birthDate)}` : ""} <code>Patient/${
        esc(r.id)
      }</code></span></label>`
    ).join("\n");
    picker = `<fieldset><legend>Patient</legend>
<form method="get" action="/auth/authorize" class="row" role="search">
<input type="hidden" name="request_id" value="${esc(o.requestId)}">
<input name="patient_search" aria-label="Patient name" placeholder="Search patients by name" value="${
      esc(p.query)
    }"><button type="submit">Search</button></form>
${
      p.searched && !p.results.length
        ? `<p class="muted">No patient you may read matches “${esc(p.query)}”.</p>`
        : ""
    }
<div id="patients">${list}</div></fieldset>`;
  }
  return page(
    "Allow access",
    `<div class="card" aria-labelledby="t">
${HEADER.replace("<h1>", '<h1 id="t">')}
<p><strong>${esc(o.clientName)}</strong> <code>${
      esc(o.clientId)
    }</code> asks to use your records, ${esc(o.userName)}.</p>
${
      o.launchPatient
        ? `<p class="muted">Patient: <code>Patient/${esc(o.launchPatient)}</code></p>`
        : ""
    }
${picker}
<form method="post" action="/auth/authorize" id="consent">
${hidden(o.requestId, o.csrf)}
<fieldset><legend>It may</legend>${boxes}</fieldset>
${o.patientPicker ? `<p class="muted">The chosen patient is sent with the approval.</p>` : ""}
${o.error ? `<p class="error" role="alert">${esc(o.error)}</p>` : ""}
<div class="row"><button type="submit" class="primary" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button></div>
</form>
<p class="muted">Untick what you do not want to share. What you approve lasts until its tokens expire or are revoked.</p>
</div>`,
    [o.redirectOrigin],
  );
}

/** An error that is not sent back to the app (a bad client or redirect URI, an expired request). */
export function errorPage(message: string): Page {
  return page(
    "Sign-in error",
    `<div class="card" role="alert">${HEADER}<h2>This sign-in cannot go on</h2>
<p>${esc(message)}</p><p class="muted">Go back to the app and start again.</p></div>`,
  );
}
