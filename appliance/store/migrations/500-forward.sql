-- Forwarding queue (issue: forwarding). One row per stored instance and destination node. Rows are written
-- in the same transaction as the instance (auto-forward by policy) or by an admin action (a whole study or
-- series, "DICOM transfer"); the worker (appliance/forward/) sends them and records the outcome.
--   state: queued   -> waiting for the worker (due at next_attempt_at)
--          sending  -> claimed by the worker, on the wire (found at start: resumed, i.e. queued again)
--          done     -> the destination stored it (success, warning, or already there)
--          retrying -> a transient failure (network, rejected/aborted association, out of resources, no
--                      status); due again at next_attempt_at (capped exponential backoff)
--          failed   -> refused for good (A9xx/Cxxx, cannot be transcoded, node gone, gave up): kept,
--                      visible with last_status/last_meaning, resendable
-- Times are ISO 8601 UTC strings (they compare as text).
CREATE TABLE forward_jobs (
  id INTEGER PRIMARY KEY,
  instance_ref INTEGER NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
  destination TEXT NOT NULL,            -- a node name (dicom.nodes[].name, send: true)
  study_uid TEXT NOT NULL,              -- copies of the instance's UIDs (they never change), for grouping
  series_uid TEXT NOT NULL,
  sop_uid TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'done', 'retrying', 'failed')),
  origin TEXT NOT NULL,                 -- 'policy:<name>' (auto-forward) | 'admin' | 'cli' ...
  requested_by TEXT,                    -- actor of the last admin request, if any
  attempts INTEGER NOT NULL DEFAULT 0,  -- sends tried since the job was last (re)queued by a person
  next_attempt_at TEXT NOT NULL,
  first_failure_at TEXT,                -- first transient failure since the last success or request (give-up clock)
  last_status INTEGER,                  -- DIMSE status of the last C-STORE response, if one came
  last_meaning TEXT,                    -- what happened last, in words
  transcoded_from TEXT,                 -- set when the last successful send changed the transfer syntax
  transcoded_to TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  sent_at TEXT,                         -- last time it went to 'sending'
  done_at TEXT,
  UNIQUE (instance_ref, destination)
);
CREATE INDEX forward_jobs_due ON forward_jobs (state, next_attempt_at);
CREATE INDEX forward_jobs_study ON forward_jobs (study_uid, destination);
CREATE INDEX forward_jobs_destination ON forward_jobs (destination, state);
