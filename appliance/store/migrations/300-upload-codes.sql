-- Upload codes (issue: portal). The code itself is never stored: only its SHA-256 (code_hash). `lookup` is the
-- first 16 hex digits of that hash, to find the row; the full hash is then compared in constant time.
-- `ref` is a short random public name for the code (console, CLI, audit trail), unrelated to the code.
CREATE TABLE upload_codes (
  id INTEGER PRIMARY KEY,
  ref TEXT NOT NULL UNIQUE,
  lookup TEXT NOT NULL UNIQUE,
  code_hash BLOB NOT NULL,
  institution_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  allowance_bytes INTEGER NOT NULL,
  bytes_used INTEGER NOT NULL DEFAULT 0,   -- the upload issue adds to it
  birth_date TEXT,                         -- YYYYMMDD the patient is expected to have, or NULL
  revoked_at TEXT,
  revoked_by TEXT,
  first_used_at TEXT,
  last_used_at TEXT
);
CREATE INDEX upload_codes_institution ON upload_codes (institution_id);

-- What the uploader agreed to share (START UPLOAD before the resumable transfer exists): studies chosen,
-- their image counts and sizes, comments and the contact given. The upload issue links its uploads to it.
CREATE TABLE portal_submissions (
  id INTEGER PRIMARY KEY,
  code_ref INTEGER NOT NULL REFERENCES upload_codes (id),
  created_at TEXT NOT NULL,
  ip TEXT,
  contact_email TEXT,
  contact_phone TEXT,
  total_files INTEGER NOT NULL,
  total_bytes INTEGER NOT NULL,
  studies TEXT NOT NULL                    -- JSON: [{studyUid, files, bytes, comment}]
);
CREATE INDEX portal_submissions_code ON portal_submissions (code_ref);
