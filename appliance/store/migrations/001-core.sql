-- Core index: patients, studies, series, instances (what C-FIND answers from and where files are).
CREATE TABLE patients (
  id INTEGER PRIMARY KEY,
  patient_id TEXT NOT NULL,          -- as stored in the files (pseudonym where a policy anonymised)
  issuer TEXT NOT NULL DEFAULT '',
  patient_name TEXT NOT NULL DEFAULT '',
  birth_date TEXT NOT NULL DEFAULT '',
  sex TEXT NOT NULL DEFAULT '',
  UNIQUE (patient_id, issuer)
);
CREATE INDEX patients_name ON patients (patient_name);

CREATE TABLE studies (
  id INTEGER PRIMARY KEY,
  study_uid TEXT NOT NULL UNIQUE,
  patient_ref INTEGER NOT NULL REFERENCES patients (id),
  study_date TEXT NOT NULL DEFAULT '',
  study_time TEXT NOT NULL DEFAULT '',
  accession TEXT NOT NULL DEFAULT '',
  study_id TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  referring_physician TEXT NOT NULL DEFAULT '',
  charset TEXT NOT NULL DEFAULT '',
  workflow_status TEXT,
  origin_kind TEXT NOT NULL,         -- dicom | upload | user | import
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX studies_patient ON studies (patient_ref);
CREATE INDEX studies_date ON studies (study_date);
CREATE INDEX studies_accession ON studies (accession);

CREATE TABLE study_labels (
  study_ref INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
  label TEXT NOT NULL,
  PRIMARY KEY (study_ref, label)
);
CREATE INDEX study_labels_label ON study_labels (label);

CREATE TABLE series (
  id INTEGER PRIMARY KEY,
  series_uid TEXT NOT NULL UNIQUE,
  study_ref INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
  modality TEXT NOT NULL DEFAULT '',
  series_number TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT ''
);
CREATE INDEX series_study ON series (study_ref);

CREATE TABLE instances (
  id INTEGER PRIMARY KEY,
  sop_uid TEXT NOT NULL UNIQUE,
  series_ref INTEGER NOT NULL REFERENCES series (id) ON DELETE CASCADE,
  sop_class_uid TEXT NOT NULL,
  instance_number TEXT NOT NULL DEFAULT '',
  frames TEXT NOT NULL DEFAULT '',
  transfer_syntax TEXT NOT NULL,
  path TEXT NOT NULL,                -- relative to dataDir/store
  size INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  origin_kind TEXT NOT NULL,         -- dicom | upload | user | import
  calling_ae TEXT,
  remote_ip TEXT,
  upload_ref INTEGER,
  received_at TEXT NOT NULL
);
CREATE INDEX instances_series ON instances (series_ref);

-- Audit trail: append-only record of who did what to which study.
CREATE TABLE audit (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  actor_kind TEXT NOT NULL,          -- user | code | node | system
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  study_uid TEXT,
  ip TEXT,
  detail TEXT                        -- JSON
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_study ON audit (study_uid);
CREATE INDEX audit_action ON audit (action);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
