-- Every AI result now carries a Provenance that the worker writes in the report's transaction
-- (sidecar/result_provenance.ts), so the worker's scope (queue/jobs.ts WORKER_SCOPE) gained
-- system/Provenance.crs. A sidecar client registered before holds the worker's scopes of then,
-- and client_credentials grants no more than the registration: its jobs would fail on the
-- Provenance. Clients that may create reports and Observations get Provenance too; others (and
-- those already granted Provenance or every type) are left as they are.
UPDATE auth_client
SET scope = scope || ' system/Provenance.crs'
WHERE scope ~ '(^| )system/DiagnosticReport\.(c|write|\*)'
  AND scope ~ '(^| )system/Observation\.(c|write|\*)'
  AND scope !~ '(^| )system/(Provenance|\*)\.';
