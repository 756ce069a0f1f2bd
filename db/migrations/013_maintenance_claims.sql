-- Periodic maintenance run by one replica at a time: a task (e.g. 'object-sweep') is claimed by the
-- replica whose UPDATE finds its last claim older than the task's period.
CREATE TABLE maintenance_claim (
  task       text        PRIMARY KEY,
  claimed_at timestamptz NOT NULL
);
