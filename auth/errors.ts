/**
 * @module The two error types of the authentication core. `OAuthError` is an OAuth 2.0 error
 * response of the token endpoint (RFC 6749 §5.2): the HTTP status, the `error` code and an
 * `error_description`. `TokenError` is a failed bearer-token check at a protected resource
 * (RFC 6750 §3.1): `invalid_token` (answer 401) or `insufficient_scope` (answer 403), with a
 * message saying why. The HTTP layer turns them into responses; nothing here knows about HTTP.
 */

/** The RFC 6749 §5.2 error codes the token endpoint answers with. */
export type OAuthErrorCode =
  | "invalid_request"
  | "invalid_client"
  | "invalid_grant"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "invalid_scope";

/** A token-endpoint error: `{ error, error_description }` with `status` (400 or 401). */
export class OAuthError extends Error {
  override readonly name = "OAuthError";
  /** The HTTP status to answer with: 401 for a failed client authentication, else 400. */
  readonly status: 400 | 401;
  /** The RFC 6749 error code. */
  readonly error: OAuthErrorCode;
  /** The human-readable `error_description` (safe to show the client). */
  readonly description: string;

  constructor(status: 400 | 401, error: OAuthErrorCode, description: string) {
    super(`${error}: ${description}`);
    this.status = status;
    this.error = error;
    this.description = description;
  }

  /** The JSON body of the error response. */
  toJSON(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.error, error_description: this.description };
  }
}

/** The RFC 6750 §3.1 error codes of a protected resource. */
export type TokenErrorCode = "invalid_token" | "insufficient_scope";

/** A bearer-token failure; `message` says why (safe to show the client). */
export class TokenError extends Error {
  override readonly name = "TokenError";
  readonly code: TokenErrorCode;

  constructor(code: TokenErrorCode, message: string) {
    super(message);
    this.code = code;
  }

  /** The HTTP status RFC 6750 gives the code: 401 for `invalid_token`, 403 for the other. */
  get status(): 401 | 403 {
    return this.code === "invalid_token" ? 401 : 403;
  }
}
