/**
 * The SQLite database (better-sqlite3 12.x): WAL with synchronous=FULL, so a commit is durable when it
 * returns. Schema changes are numbered SQL files in ./migrations, applied once each in order.
 *   001-099 core index and audit, 100-199 scan, 200-299 rewrite/anonymise, 300-399 codes/portal,
 *   400-499 upload, 500-599 forwarding, 600-699 console (users, sessions).
 */
import Database from 'better-sqlite3';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log.ts';

export type Db = Database.Database;

const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

export function openDb(dataDir: string, log?: Logger): Db {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(path.join(dataDir, 'uplink.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db, log);
  return db;
}

export function migrate(db: Db, log?: Logger): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)');
  const files = readdirSync(migrationsDir).filter((f) => /^\d{3}-.*\.sql$/.test(f)).sort();
  // One IMMEDIATE transaction: a second process (the CLI next to a running appliance, both starting on a new
  // database) waits for the first (busy_timeout), then sees its migrations as applied.
  db.transaction(() => {
    const applied = new Set((db.prepare('SELECT name FROM schema_migrations').all() as { name: string }[]).map((r) => r.name));
    for (const f of files) {
      if (applied.has(f)) continue;
      db.exec(readFileSync(path.join(migrationsDir, f), 'utf8'));
      db.prepare('INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)').run(f, new Date().toISOString());
      log?.info({ migration: f }, 'database migration applied');
    }
  }).immediate();
}
