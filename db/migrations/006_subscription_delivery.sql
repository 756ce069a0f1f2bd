-- FHIR Subscription (R4 rest-hook) notifications: one row per (Subscription, resource version)
-- that matched its criteria, so pending retries survive a restart and every replica shares them.
-- A sender claims due rows with FOR UPDATE SKIP LOCKED and pushes next_attempt_at out by a lease
-- while it sends; state: pending → delivered | failed (gave up) | cancelled (Subscription off).
CREATE TABLE subscription_delivery (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id  text        NOT NULL,
  resource_type    text        NOT NULL,
  resource_id      text        NOT NULL,
  resource_version integer     NOT NULL,
  seq              bigint      NOT NULL,  -- the change-feed position that matched
  state            text        NOT NULL DEFAULT 'pending',
  attempts         integer     NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_status      integer,               -- the endpoint's HTTP status of the last attempt
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz,
  UNIQUE (subscription_id, resource_type, resource_id, resource_version)
);
CREATE INDEX subscription_delivery_due ON subscription_delivery (next_attempt_at)
  WHERE state = 'pending';
CREATE INDEX subscription_delivery_queue ON subscription_delivery (subscription_id, id)
  WHERE state = 'pending';

-- How far the matcher has read the change feed, so changes committed while no replica ran are
-- still matched at the next start.
CREATE TABLE subscription_cursor (
  name text   PRIMARY KEY,
  seq  bigint NOT NULL
);
