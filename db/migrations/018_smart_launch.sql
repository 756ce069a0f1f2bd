-- SMART App Launch (auth/authorize.ts, auth/smart.ts): apps registered with redirect URIs and a
-- token-endpoint authentication method (public, client secret, or private_key_jwt), the browser's
-- sign-in sessions, EHR launch contexts, authorization requests waiting for sign-in and consent,
-- grants (what a person allowed an app, with its launch context) and their authorization codes.
-- Secrets are stored as SHA-256: client secrets, session cookies, launch ids, codes.
ALTER TABLE auth_client
  ADD COLUMN redirect_uris jsonb NOT NULL DEFAULT '[]'::jsonb,
  ADD COLUMN auth_method text NOT NULL DEFAULT 'private_key_jwt'
    CHECK (auth_method IN ('none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt')),
  ADD COLUMN secret_hash text,
  -- Where an EHR (the web UI's "Open in app") starts the app: ?iss=…&launch=… are added.
  ADD COLUMN launch_url text;
-- A public or symmetric client has no keys: only private_key_jwt clients need a JWKS.
ALTER TABLE auth_client DROP CONSTRAINT IF EXISTS auth_client_check;
ALTER TABLE auth_client ADD CONSTRAINT auth_client_keys
  CHECK (auth_method <> 'private_key_jwt' OR jwks IS NOT NULL OR jwks_uri IS NOT NULL);

-- A signed-in browser (the HttpOnly cookie's SHA-256).
CREATE TABLE auth_session (
  id_hash     text        PRIMARY KEY,
  user_id     text        NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
  auth_time   timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);
CREATE INDEX auth_session_expires ON auth_session (expires_at);

-- An EHR launch: the context an EHR hands an app through the opaque `launch` parameter.
CREATE TABLE auth_launch (
  id_hash     text        PRIMARY KEY,
  client_id   text,
  context     jsonb       NOT NULL,
  created_by  text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX auth_launch_expires ON auth_launch (expires_at);

-- An authorization request between `/auth/authorize` and the person's decision, bound to the
-- browser that made it (a cookie's SHA-256) and to a CSRF token shown in its forms.
CREATE TABLE auth_request (
  id            text        PRIMARY KEY,
  browser_hash  text        NOT NULL,
  csrf          text        NOT NULL,
  request       jsonb       NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL
);
CREATE INDEX auth_request_expires ON auth_request (expires_at);

-- What a person granted an app: the scopes, the launch context, the browser session (for
-- online_access). Its id is the family of its refresh tokens and the `grant_id` claim of its
-- access tokens, so revoking it ends them all.
CREATE TABLE auth_grant (
  id          text        PRIMARY KEY,
  user_id     text        NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
  client_id   text        NOT NULL,
  scope       text        NOT NULL,
  context     jsonb       NOT NULL DEFAULT '{}'::jsonb,
  session     text,
  auth_time   timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE INDEX auth_grant_user ON auth_grant (user_id);

-- Authorization codes: single use, 60 s, bound to the client, redirect URI and PKCE challenge.
CREATE TABLE auth_code (
  code_hash       text        PRIMARY KEY,
  grant_id        text        NOT NULL REFERENCES auth_grant (id) ON DELETE CASCADE,
  client_id       text        NOT NULL,
  redirect_uri    text        NOT NULL,
  code_challenge  text        NOT NULL,
  nonce           text,
  expires_at      timestamptz NOT NULL,
  used_at         timestamptz
);
CREATE INDEX auth_code_expires ON auth_code (expires_at);
