/**
 * @module The sidecar's HTTP client of the API: base URL, the system credential as a Bearer
 * token, `X-Request-Id` of the job, JSON helpers, and retries (with backoff) on 429, 502, 503,
 * 504 and connection errors. Every request body is bytes or text, so a retry can resend it.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly url: string,
    readonly body: string,
  ) {
    super(`${method} ${url} answered ${status}: ${summarise(body)}`);
    this.name = "ApiError";
  }
}

export interface ApiClientOptions {
  /** The API's origin, e.g. http://localhost:8080 (FHIR at /fhir, DICOMweb at /dicomweb). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when not empty. */
  token: string;
  /**
   * Where a token comes from when it expires (client credentials, or the service's own worker
   * token): asked once and again after a 401 (`renew` true). Takes precedence over `token`.
   */
  tokenProvider?: (renew: boolean) => Promise<string>;
  /** Attempts per request (default 4). */
  attempts?: number;
  /** First retry delay in ms, doubled each time (default 250). */
  retryBaseMs?: number;
  fetch?: typeof fetch;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** The job's request id, sent as X-Request-Id. */
  requestId?: string;
  signal?: AbortSignal;
}

export interface ApiClient {
  readonly baseUrl: string;
  /** A request with retries; the response is returned whatever its status. */
  request(path: string, options?: RequestOptions): Promise<Response>;
  /** A FHIR interaction (`/fhir/…`); throws an ApiError unless 2xx. */
  fhir<T>(
    method: string,
    path: string,
    body?: unknown,
    options?: Omit<RequestOptions, "method" | "body">,
  ): Promise<{ status: number; headers: Headers; body: T }>;
}

const RETRY_STATUS = new Set([429, 502, 503, 504]);

export function createApiClient(options: ApiClientOptions): ApiClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const attempts = options.attempts ?? 4;
  const retryBaseMs = options.retryBaseMs ?? 250;
  const doFetch = options.fetch ?? fetch;

  let cached: Promise<string> | undefined;
  function currentToken(renew: boolean): Promise<string> {
    if (!options.tokenProvider) return Promise.resolve(options.token);
    if (renew || !cached) {
      cached = options.tokenProvider(renew);
      cached.catch(() => cached = undefined);
    }
    return cached;
  }

  async function request(path: string, o: RequestOptions = {}): Promise<Response> {
    const url = /^https?:\/\//.test(path) ? path : `${baseUrl}/${path.replace(/^\/+/, "")}`;
    const headers = new Headers(o.headers);
    const bearer = await currentToken(false);
    if (bearer) headers.set("Authorization", `Bearer ${bearer}`);
    if (o.requestId) headers.set("X-Request-Id", o.requestId);
    let renewed = false;
    for (let attempt = 1;; attempt++) {
      let response: Response | undefined;
      try {
        response = await doFetch(url, {
          method: o.method ?? "GET",
          headers,
          body: o.body as BodyInit | undefined,
          signal: o.signal,
        });
      } catch (e) {
        if (o.signal?.aborted || attempt >= attempts) throw e;
      }
      if (response?.status === 401 && options.tokenProvider && !renewed) {
        // The token expired (or keys rotated): one more try with a fresh one, at once.
        renewed = true;
        await response.body?.cancel();
        headers.set("Authorization", `Bearer ${await currentToken(true)}`);
        attempt--;
        continue;
      }
      if (response && (!RETRY_STATUS.has(response.status) || attempt >= attempts)) return response;
      const retryAfter = Number(response?.headers.get("retry-after"));
      await response?.body?.cancel();
      const delay = Number.isFinite(retryAfter) && retryAfter > 0
        ? Math.min(retryAfter * 1000, 30_000)
        : retryBaseMs * 2 ** (attempt - 1);
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  return {
    baseUrl,
    request,
    async fhir<T>(
      method: string,
      path: string,
      body?: unknown,
      o: Omit<RequestOptions, "method" | "body"> = {},
    ) {
      const target = `fhir/${path.replace(/^\/+/, "")}`;
      const response = await request(target, {
        ...o,
        method,
        headers: {
          Accept: "application/fhir+json",
          ...(body === undefined ? {} : { "Content-Type": "application/fhir+json" }),
          ...o.headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      if (!response.ok) throw new ApiError(response.status, method, `${baseUrl}/${target}`, text);
      return {
        status: response.status,
        headers: response.headers,
        body: (text ? JSON.parse(text) : undefined) as T,
      };
    },
  };
}

/** Throws an ApiError for a response that is not 2xx (reading its body). */
export async function expectOk(response: Response, method: string, url: string): Promise<void> {
  if (response.ok) return;
  throw new ApiError(response.status, method, url, await response.text());
}

/** The first diagnostics of an OperationOutcome, or the start of the text. */
function summarise(body: string): string {
  try {
    const json = JSON.parse(body);
    const issue = json?.issue?.[0];
    if (issue) return issue.diagnostics ?? issue.details?.text ?? issue.code;
  } catch {
    // not JSON
  }
  return body.slice(0, 200) || "(no body)";
}
