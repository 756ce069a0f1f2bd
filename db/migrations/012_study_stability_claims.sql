-- A study's quiet period is claimed by one replica (claimed_at) and marked fired only after its
-- listeners (the analysis rules) ran: a replica that stops in between leaves the claim to lapse
-- and another one runs them again (at least once; a failing listener is tried up to 3 times).
ALTER TABLE study_stability ADD COLUMN claimed_at timestamptz;
ALTER TABLE study_stability ADD COLUMN attempts integer NOT NULL DEFAULT 0;
