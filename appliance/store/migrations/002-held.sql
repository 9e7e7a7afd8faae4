-- Files waiting for something outside our control (the malware scanner) before they can be ingested.
CREATE TABLE held_files (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL,                -- absolute path under dataDir/held
  origin TEXT NOT NULL,              -- JSON: the ingest origin to resume with
  reason TEXT NOT NULL,
  held_at TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0
);
