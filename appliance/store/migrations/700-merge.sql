-- Patient merge / reconcile (issue 7, console): one row per merge of a study onto a patient. The merge rewrites
-- every instance of the study (header only: Patient ID, Issuer of Patient ID, Patient's Name, Birth Date, Sex;
-- Other Patient IDs removed) one by one, in Instance id order:
--   rewrite to staging -> current_instance = id (committed) -> fsync + rename over the stored file + fsync dir
--   -> one transaction: the instance's size / sha256, done + 1, last_instance = id, current_instance = NULL.
-- When no instance is left after last_instance, one transaction moves the study to the new patient row, marks
-- the merge done and writes the audit entry 'merge' (before / after).
--   state: running -> being applied, or interrupted by a stop or crash: at the next start the instance named by
--                     current_instance gets the size and SHA-256 of whatever file is there (the old or the new:
--                     both complete, thanks to the rename) BEFORE the store check compares sizes, and the merge
--                     continues where it was (the rewrite is idempotent);
--          done    -> every instance rewritten, the index moved, audited (re-forwarded if asked: forwarded_at);
--          failed  -> stopped on an error (error says which and why); the files done so far already carry the
--                     new patient: the console shows it and offers to try again (continues after last_instance).
CREATE TABLE study_merges (
  id INTEGER PRIMARY KEY,
  study_uid TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
  before_json TEXT NOT NULL,            -- {patientId, issuer, name, birthDate, sex}: the study's patient before
  after_json TEXT NOT NULL,             -- the same, as chosen
  source TEXT NOT NULL,                 -- where the patient was found: 'pacs:<node name>' | 'index'
  forward_to TEXT,                      -- node to forward the corrected study to when done (dicom.pacs), or NULL
  total INTEGER NOT NULL,               -- instances of the study when the merge started
  done INTEGER NOT NULL DEFAULT 0,      -- instances rewritten
  last_instance INTEGER NOT NULL DEFAULT 0,   -- instances (id) of the last one rewritten and indexed
  current_instance INTEGER,             -- the instance whose file is being replaced (crash recovery)
  requested_by TEXT NOT NULL,
  ip TEXT,
  error TEXT,
  forwarded_at TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  finished_at TEXT
);
CREATE INDEX study_merges_study ON study_merges (study_uid, id);
-- At most one merge of a study at a time.
CREATE UNIQUE INDEX study_merges_running ON study_merges (study_uid) WHERE state = 'running';
