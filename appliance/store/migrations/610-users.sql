-- Console users (issue 7): source users (see studies, upload without a code) and source admins (everything).
-- Passwords only as scrypt hashes in PHC form ($scrypt$ln=17,r=8,p=1$salt$hash, appliance/users/password.ts).
-- Names compare without regard to case ("Admin" and "admin" are one user).
CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE COLLATE NOCASE,
  role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
  password_hash TEXT NOT NULL,
  institution_id TEXT,                     -- institutions[].id for uploads without a code (null: the first one)
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,                -- "<actor kind>:<actor>"
  password_changed_at TEXT NOT NULL,
  disabled_at TEXT,
  disabled_by TEXT,
  last_login_at TEXT
);

-- A user who is disabled, or whose password is changed, is logged out everywhere at once (also when the CLI,
-- another process, does it): their sessions go in the same transaction.
CREATE TRIGGER users_disabled_end_sessions AFTER UPDATE OF disabled_at ON users
  WHEN NEW.disabled_at IS NOT NULL
BEGIN
  DELETE FROM sessions WHERE user_ref = NEW.id;
END;
CREATE TRIGGER users_password_end_sessions AFTER UPDATE OF password_changed_at ON users
BEGIN
  DELETE FROM sessions WHERE user_ref = NEW.id;
END;
CREATE TRIGGER users_deleted_end_sessions AFTER DELETE ON users
BEGIN
  DELETE FROM sessions WHERE user_ref = OLD.id;
END;
