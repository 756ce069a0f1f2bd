-- Accounts, registered clients, token-signing keys, refresh tokens and client-assertion ids
-- (auth/). Secrets are never stored in the clear: passwords as PBKDF2 hashes, refresh tokens as
-- their SHA-256. Signing keys live here so every replica signs and verifies with the same ring.
CREATE TABLE auth_user (
  id                  text        PRIMARY KEY,
  username            text        NOT NULL UNIQUE,   -- lower-cased
  display_name        text,
  role                text        NOT NULL CHECK (role IN ('admin', 'clinician', 'viewer')),
  password_hash       text        NOT NULL,
  fhir_user           text,                          -- e.g. Practitioner/123
  disabled            boolean     NOT NULL DEFAULT false,
  failed_logins       integer     NOT NULL DEFAULT 0,
  locked_until        timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per refresh token ever issued. A token is used once: using it marks it used and issues
-- the next of its family; presenting a used or revoked token revokes the whole family.
CREATE TABLE auth_refresh_token (
  token_hash  text        PRIMARY KEY,
  family      text        NOT NULL,
  user_id     text        NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
  scope       text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  revoked_at  timestamptz
);
CREATE INDEX auth_refresh_token_family ON auth_refresh_token (family);

-- SMART Backend Services clients: a JWKS (inline or by URL) and the scopes they may be granted.
CREATE TABLE auth_client (
  client_id   text        PRIMARY KEY,
  name        text,
  jwks        jsonb,
  jwks_uri    text,
  scope       text        NOT NULL,
  disabled    boolean     NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (jwks IS NOT NULL OR jwks_uri IS NOT NULL)
);

CREATE TABLE auth_signing_key (
  kid          text        PRIMARY KEY,
  alg          text        NOT NULL,
  private_jwk  jsonb       NOT NULL,
  public_jwk   jsonb       NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  retired_at   timestamptz
);

-- Client-assertion ids seen, until their assertion expires (replay protection).
CREATE TABLE auth_jti (
  client_id   text        NOT NULL,
  jti         text        NOT NULL,
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (client_id, jti)
);
CREATE INDEX auth_jti_expires ON auth_jti (expires_at);
