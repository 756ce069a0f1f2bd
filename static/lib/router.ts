/** @module A small client router: the current path as a signal and `navigate()`. */
import { signal } from "@preact/signals";

export { matchRoute, type Page } from "./routes.ts";

const here = () => typeof location === "undefined" ? "/" : `${location.pathname}${location.search}`;

/** The current path and query, e.g. `/studies/1?slice=4`. */
export const currentUrl = signal(here());

/** Goes to `url` without reloading (pushes a history entry unless `replace`). */
export function navigate(url: string, replace = false): void {
  if (url === currentUrl.value) return;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  currentUrl.value = here();
  if (!replace) scrollTo(0, 0);
}

/** The query parameters of the current URL. */
export function queryParams(): URLSearchParams {
  const q = currentUrl.value.indexOf("?");
  return new URLSearchParams(q < 0 ? "" : currentUrl.value.slice(q));
}

if (typeof addEventListener === "function") {
  addEventListener("popstate", () => currentUrl.value = here());
}
