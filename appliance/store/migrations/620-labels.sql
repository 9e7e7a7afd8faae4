-- Labels the console offers (issue 7). Studies carry labels in study_labels (001-core); this table names the
-- labels known even while no study carries them, e.g. 'Uploaded-Reviewed' before the first review. A label
-- first given to a study by an admin is added here.
CREATE TABLE labels (
  name TEXT PRIMARY KEY,
  builtin INTEGER NOT NULL DEFAULT 0,      -- 1: shipped with Uplink
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL
);
INSERT INTO labels (name, builtin, created_at, created_by) VALUES
  ('Uploaded', 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'system:uplink'),
  ('Uploaded-Reviewed', 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'system:uplink');

-- The console's study list sorts by these.
CREATE INDEX studies_created ON studies (created_at);
CREATE INDEX studies_status ON studies (workflow_status);
CREATE INDEX series_modality ON series (modality);
