/**
 * @module Calls to the service's API with the bearer token: one retry after renewing a refused
 * token, errors as readable messages (an OperationOutcome's diagnostics), JSON and FHIR helpers.
 */
import { authorization, expire, refresh } from "./session.ts";
import type { Bundle, Json, Resource } from "./fhir_types.ts";

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The message of an error body: OperationOutcome diagnostics, OAuth error, or the text. */
export function errorMessage(status: number, text: string): string {
  try {
    const body = JSON.parse(text);
    const issue = body?.issue?.[0];
    const why = issue?.diagnostics ?? issue?.details?.text ?? body?.error_description ??
      body?.error;
    if (why) return `${why} (HTTP ${status})`;
  } catch { /* not JSON */ }
  return `${text.slice(0, 200) || "request failed"} (HTTP ${status})`;
}

/** fetch() with the bearer token; a 401 renews the token once, then signs out. */
export async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const send = async () => {
    const headers = new Headers(init.headers);
    const auth = await authorization();
    if (auth) headers.set("Authorization", auth);
    return fetch(path, { ...init, headers });
  };
  let res = await send();
  if (res.status === 401 && await refresh()) res = await send();
  if (res.status === 401) expire();
  return res;
}

/** The response if it is OK, else an ApiError with the server's reason. */
export async function ok(res: Response): Promise<Response> {
  if (res.ok) return res;
  throw new ApiError(res.status, errorMessage(res.status, await res.text()));
}

/** GET a FHIR path (relative to /fhir) as JSON. */
export async function fhirGet<T = Bundle>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await ok(
    await api(`/fhir/${path}`, { headers: { Accept: "application/fhir+json" }, signal }),
  );
  return await res.json();
}

/** Sends a FHIR resource (POST/PUT) and returns the answer's resource. */
export async function fhirSend(
  method: "POST" | "PUT",
  path: string,
  body: Json,
  headers: Record<string, string> = {},
): Promise<Resource> {
  const res = await ok(
    await api(`/fhir/${path}`, {
      method,
      headers: {
        Accept: "application/fhir+json",
        "Content-Type": "application/fhir+json",
        ...headers,
      },
      body: JSON.stringify(body),
    }),
  );
  return await res.json();
}

/** GET any API path as JSON. */
export async function getJson<T = Json>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await ok(await api(path, { headers: { Accept: "application/json" }, signal }));
  return await res.json();
}
