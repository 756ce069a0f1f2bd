/** @module The UI's pages and which one a path shows (no DOM: tested in tests/ui). */

export type Page =
  | { name: "worklist" }
  | { name: "login" }
  | { name: "upload" }
  | { name: "patients" }
  | { name: "patient"; id: string }
  | { name: "study"; id: string }
  | { name: "report"; id: string }
  | { name: "console" }
  | { name: "not-found" };

/** Which page a path shows (pure: tested in tests/ui). */
export function matchRoute(path: string): Page {
  const p = path.replace(/\/+$/, "") || "/";
  if (p === "/" || p === "/worklist") return { name: "worklist" };
  // The sign-in's answer (authorization code) is handled by the login page.
  if (p === "/login" || p === "/oauth-callback") return { name: "login" };
  if (p === "/upload") return { name: "upload" };
  if (p === "/console") return { name: "console" };
  if (p === "/patients") return { name: "patients" };
  let m = /^\/patients\/([A-Za-z0-9\-.]{1,64})$/.exec(p);
  if (m) return { name: "patient", id: m[1] };
  m = /^\/studies\/([A-Za-z0-9\-.]{1,64})\/report$/.exec(p);
  if (m) return { name: "report", id: m[1] };
  m = /^\/studies\/([A-Za-z0-9\-.]{1,64})$/.exec(p);
  if (m) return { name: "study", id: m[1] };
  return { name: "not-found" };
}
