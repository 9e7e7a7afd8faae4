-- Anonymisation (rewrite issue): pseudonym assignments, the original identifiers they replaced, and the
-- upload information stamped on studies. Originals live only here, never in the stored DICOM files.

-- Pseudonyms already handed out, so every instance of a batch (one association / one upload) and of a study
-- gets the same ones, also after a restart mid-upload. Written when a pseudonym is first assigned.
CREATE TABLE pseudonyms (
  scope TEXT NOT NULL,               -- "batch:<origin.batch>" (patients) or "study:<Study Instance UID>"
  attribute TEXT NOT NULL,           -- PatientID | AccessionNumber
  original_key TEXT NOT NULL,        -- JSON array: the original value (and issuer / name + birth date for patients)
  pseudonym TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (scope, attribute, original_key)
) WITHOUT ROWID;
CREATE INDEX pseudonyms_value ON pseudonyms (attribute, pseudonym);

-- The original identifiers of each stored study (admins only, every read audited). Written in the same
-- transaction as the instance that carried them.
CREATE TABLE study_original_ids (
  study_ref INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
  attribute TEXT NOT NULL,           -- PatientID | AccessionNumber | OtherPatientIDs
  original TEXT NOT NULL,
  issuer TEXT NOT NULL DEFAULT '',   -- PatientID: the original Issuer of Patient ID
  replacement TEXT NOT NULL DEFAULT '', -- the pseudonym ('' where the value was removed)
  batch TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY (study_ref, attribute, original, issuer)
);

-- How a study came in: one row per upload (or association) that brought instances of it. The full text of
-- comment and contact (the DICOM copy may have lost characters the file's character set cannot hold).
CREATE TABLE study_uploads (
  study_ref INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
  upload_id TEXT NOT NULL,
  by TEXT NOT NULL,                  -- code | user | node
  name TEXT NOT NULL DEFAULT '',     -- user name, node name, or the code's holder / institution (never the code)
  institution TEXT NOT NULL DEFAULT '',
  comment TEXT NOT NULL DEFAULT '',
  contact TEXT NOT NULL DEFAULT '',
  at TEXT NOT NULL,                  -- ISO time of the upload
  batch TEXT NOT NULL,
  PRIMARY KEY (study_ref, upload_id)
);
CREATE INDEX study_uploads_upload ON study_uploads (upload_id);
