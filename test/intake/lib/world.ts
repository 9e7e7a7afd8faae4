/** An in-process transform world for tests: config, SQLite index, file store, audit, anonymise store, transformer. */
import { merge, validate } from '../../../config/load.ts';
import { defaults, type Config } from '../../../config/schema.ts';
import { createAuditLog, type AuditLog } from '../../../appliance/audit/audit-log.ts';
import { createAnonymiseStore, type AnonymiseStore } from '../../../appliance/intake/anonymise-store.ts';
import type { Transformer } from '../../../appliance/intake/ingest.ts';
import { createTransformer } from '../../../appliance/intake/transform.ts';
import { silentLogger } from '../../../appliance/log.ts';
import { openDb, type Db } from '../../../appliance/store/db.ts';
import { createFileStore, type FileStore } from '../../../appliance/store/file-store.ts';

export interface World {
  config: Config;
  db: Db;
  audit: AuditLog;
  store: FileStore;
  anon: AnonymiseStore;
  transformer: Transformer;
  close(): void;
}

export function transformWorld(dataDir: string, overrides: Record<string, unknown> = {}): World {
  const config = validate(merge(defaults, { dataDir, ...overrides }));
  const db = openDb(dataDir);
  const audit = createAuditLog(db);
  const store = createFileStore(dataDir);
  const anon = createAnonymiseStore(db, audit);
  const transformer = createTransformer({ config, log: silentLogger(), store, audit, anon });
  return { config, db, audit, store, anon, transformer, close: () => db.close() };
}
