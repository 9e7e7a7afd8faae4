-- Web sessions (portal and console). The cookie holds a random id; only its SHA-256 is stored here. A session
-- ends `idle` after its last request or at `expires_at` (absolute), whichever comes first. It may be bound to
-- an upload code (portal) and, once the console adds users (6xx), to a user.
CREATE TABLE sessions (
  id_hash TEXT PRIMARY KEY,
  csrf_token TEXT NOT NULL,
  created_at INTEGER NOT NULL,             -- ms since the epoch
  last_seen_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  code_ref INTEGER REFERENCES upload_codes (id) ON DELETE CASCADE,
  user_ref INTEGER,                        -- users table: added by the console
  data TEXT NOT NULL DEFAULT '{}'          -- JSON: small per-session state
);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_code ON sessions (code_ref);
CREATE INDEX sessions_user ON sessions (user_ref);
