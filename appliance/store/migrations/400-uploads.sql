-- Browser uploads (issue 5): one row per upload (START UPLOAD, by an upload code or a logged-in user) and one
-- row per file chosen for it. The server's own record of an upload: what the page shows comes from here, so
-- a reload, a closed tab or a restart shows the true state.
CREATE TABLE uploads (
  id INTEGER PRIMARY KEY,
  reference TEXT NOT NULL UNIQUE,          -- shown to the uploader; the upload id stamped in the files
  code_ref INTEGER REFERENCES upload_codes (id),
  user_ref INTEGER,                        -- users (id) of a logged-in source user
  actor TEXT NOT NULL,                     -- the code's public ref, or the user's name (never the code)
  institution_id TEXT NOT NULL,
  submission_ref INTEGER REFERENCES portal_submissions (id),
  ip TEXT,
  contact TEXT NOT NULL DEFAULT '',        -- e-mail address and / or mobile number given in Panel 2
  studies TEXT NOT NULL,                   -- JSON: [{studyUid, comment, date, description}] as the uploader chose them
  state TEXT NOT NULL CHECK (state IN ('uploading', 'validating', 'complete', 'cancelled', 'expired')),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,                -- last activity (files created, received, settled)
  finished_at TEXT,
  CHECK (code_ref IS NOT NULL OR user_ref IS NOT NULL)
);
CREATE INDEX uploads_code ON uploads (code_ref, state);
CREATE INDEX uploads_user ON uploads (user_ref, state);
CREATE INDEX uploads_state ON uploads (state, updated_at);

--   state: expected    -> in the manifest, nothing received yet
--          receiving   -> a tus upload exists (tus_id), bytes arriving (dataDir/staging/tus/<tus_id>)
--          received    -> all bytes durably in staging; waiting for (or in) the ingest path
--          held        -> the malware scanner was unavailable: kept in dataDir/held, scanned when it is back
--          stored      -> committed to the store (set in the instance's commit transaction)
--          duplicate   -> the appliance already had this SOP Instance UID (from elsewhere): not stored again
--          already     -> stored by an earlier upload of the same code or user: not sent again
--          refused     -> not accepted (reason: error code, e.g. NOT_DICOM, INVALID_UID)
--          quarantined -> malware found (reason MALWARE); the file is in dataDir/quarantine
--          discarded   -> the upload was cancelled (or expired) before the file was settled
CREATE TABLE upload_files (
  id INTEGER PRIMARY KEY,
  upload_ref INTEGER NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
  sop_uid TEXT NOT NULL,
  sop_class_uid TEXT NOT NULL,
  study_uid TEXT NOT NULL,
  name TEXT NOT NULL,                      -- the file's name as the uploader chose it (for reports)
  size INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('expected', 'receiving', 'received', 'held', 'stored', 'duplicate', 'already', 'refused', 'quarantined', 'discarded')),
  tus_id TEXT UNIQUE,
  reason TEXT,                             -- error code of a refusal
  attempts INTEGER NOT NULL DEFAULT 0,     -- ingest attempts that ended in a transient failure
  instance_ref INTEGER,                    -- instances (id) once stored
  updated_at TEXT NOT NULL,
  UNIQUE (upload_ref, sop_uid)
);
CREATE INDEX upload_files_state ON upload_files (state);
CREATE INDEX upload_files_sop ON upload_files (sop_uid);
