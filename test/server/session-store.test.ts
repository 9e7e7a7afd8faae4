// Sessions in SQLite: only a hash of the cookie's id is stored; idle and absolute expiry; rotation gives a new
// id and CSRF token and keeps the binding and data; ending all sessions of a code.
import t from 'tap';
import path from 'node:path';
import { openDb } from '../../appliance/store/db.ts';
import { defaults, type Config } from '../../config/schema.ts';
import { createSessionStore, hashSessionId } from '../../server/session/session-store.ts';

function world(t: { testdir(): string; teardown(fn: () => unknown): void }) {
  const config: Config = { ...defaults, dataDir: path.join(t.testdir(), 'data'), session: { idleMinutes: 30, absoluteHours: 2 } };
  const db = openDb(config.dataDir);
  t.teardown(() => db.close());
  let now = 1_000_000_000_000;
  const store = createSessionStore(db, config, () => now);
  return { db, store, advance: (ms: number) => (now += ms) };
}

t.test('create and load; only the hash is stored', async (t) => {
  const { db, store } = world(t);
  const s = store.create();
  t.ok(s.id.length >= 40 && s.csrfToken.length >= 40);
  t.not(s.id, s.csrfToken);
  const rows = db.prepare('SELECT * FROM sessions').all() as { id_hash: string }[];
  t.equal(rows.length, 1);
  t.equal(rows[0].id_hash, hashSessionId(s.id));
  t.notOk(JSON.stringify(rows).includes(s.id), 'the raw id is not in the table');
  t.match(store.load(s.id), { csrfToken: s.csrfToken, codeId: null, userId: null });
  t.equal(store.load('x'.repeat(43)), null, 'unknown id');
  t.equal(store.load(''), null);
});

t.test('idle expiry: touched requests keep it alive; 30 minutes without ends it', async (t) => {
  const { store, advance } = world(t);
  const s = store.create();
  for (let i = 0; i < 5; i++) {
    advance(20 * 60_000);
    const l = store.load(s.id);
    t.ok(l, `alive after ${(i + 1) * 20} minutes of activity`);
    store.touch(l!);
  }
  advance(30 * 60_000);
  t.equal(store.load(s.id), null, 'ended after 30 idle minutes');
});

t.test('absolute expiry: ends after absoluteHours however active', async (t) => {
  const { store, advance } = world(t);
  const s = store.create();
  for (let i = 0; i < 11; i++) {
    advance(10 * 60_000);
    const l = store.load(s.id);
    if (l) store.touch(l);
  }
  t.ok(store.load(s.id), 'alive at 1 h 50 min');
  advance(10 * 60_000);
  t.equal(store.load(s.id), null, 'ended at 2 h');
});

t.test('rotate: new id and token, binding kept or changed, old id dead; destroyFor', async (t) => {
  const { db, store } = world(t);
  db.prepare("INSERT INTO upload_codes (id, ref, lookup, code_hash, institution_id, created_at, created_by, expires_at, allowance_bytes) VALUES (7, 'CTEST01', 'ab', x'00', 'i', '', '', '', 1)").run();
  const s = store.create();
  s.data.filter = 'x';
  store.save(s);
  const r = store.rotate(s, { codeId: 7 });
  t.not(r.id, s.id);
  t.not(r.csrfToken, s.csrfToken);
  t.equal(r.codeId, 7);
  t.same(r.data, { filter: 'x' });
  t.equal(store.load(s.id), null, 'the old id no longer works');
  t.equal(store.load(r.id)?.codeId, 7);
  const r2 = store.rotate(r, { userId: 3 });
  t.equal(r2.codeId, 7, 'binding to the code kept when only the user changes');
  t.equal(r2.userId, 3);
  const r3 = store.rotate(r2, { codeId: null });
  t.equal(r3.codeId, null, 'unbound');
  const other = store.rotate(null, { codeId: 7 });
  t.equal(store.destroyFor({ codeId: 7 }), 1);
  t.equal(store.load(other.id), null);
  t.ok(store.load(r3.id));
});
