// The `uplink` CLI (the real bin/uplink.js, through tsx, with UPLINK_CONFIG): code create prints the code as
// its last line and stores only a hash; options land in the database; revoke by code or reference; list;
// clear errors and exit codes (2: usage or configuration, 1: the command failed).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { parseCode } from '../../appliance/codes/code-format.ts';
import { ROOT, runCli, startServer, writeTestConfig } from '../helpers/server.ts';

const lastLine = (s: string) => s.trimEnd().split('\n').pop()!;

t.test('create, list, revoke against the configured database', async (t) => {
  const { configPath, config } = await writeTestConfig(t.testdir());
  const r = await runCli(configPath, ['code', 'create', '--institution', 'test', '--expires', '3d', '--max-bytes', '2GB', '--birth-date', '19700101']);
  t.equal(r.code, 0, r.stderr);
  const code = lastLine(r.stdout);
  t.ok(parseCode(code).ok, `last line is a code: ${code}`);
  t.match(r.stdout, /St\. Test Hospital/);
  const ref = /Reference:\s+(C[0-9A-Z]{6})/.exec(r.stdout)?.[1];
  t.ok(ref, 'a reference is printed');

  const db = new Database(path.join(config.dataDir, 'uplink.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const row = db.prepare('SELECT * FROM upload_codes WHERE ref = ?').get(ref) as Record<string, unknown>;
  t.equal(row.institution_id, 'test');
  t.equal(row.allowance_bytes, 2_000_000_000);
  t.equal(row.birth_date, '19700101');
  const days = (Date.parse(row.expires_at as string) - Date.now()) / 86_400_000;
  t.ok(days > 2.99 && days <= 3, `expires in 3 days (${days.toFixed(4)})`);
  const everything = JSON.stringify(db.prepare('SELECT * FROM upload_codes').all()) + JSON.stringify(db.prepare('SELECT * FROM audit').all());
  t.notOk(everything.includes(code.replace(/-/g, '')) || everything.includes(code), 'the code is in neither the codes table nor the audit trail');
  const audit = db.prepare("SELECT * FROM audit WHERE action = 'code.create'").all() as { actor: string; actor_kind: string }[];
  t.equal(audit.length, 1);
  t.match(audit[0], { actor_kind: 'system', actor: /^cli:/ });

  const defaults = await runCli(configPath, ['code', 'create', '--institution', 'test']);
  t.equal(defaults.code, 0);
  const refDefault = /Reference:\s+(C[0-9A-Z]{6})/.exec(defaults.stdout)![1];
  const rowDefault = db.prepare('SELECT * FROM upload_codes WHERE ref = ?').get(refDefault) as Record<string, number | string>;
  t.equal(rowDefault.allowance_bytes, 10_000_000_000, 'default allowance 10 GB');
  t.ok(Math.abs((Date.parse(rowDefault.expires_at as string) - Date.now()) / 86_400_000 - config.upload.defaultCodeDays) < 0.01, 'default validity');

  const list = await runCli(configPath, ['code', 'list']);
  t.equal(list.code, 0);
  t.match(list.stdout, new RegExp(`${ref}\\s+test\\s+unused`));
  t.notOk(list.stdout.includes(code), 'list does not show codes');

  const revoke = await runCli(configPath, ['code', 'revoke', code.toLowerCase()]);
  t.equal(revoke.code, 0, revoke.stderr);
  t.match(revoke.stdout, new RegExp(`${ref} revoked`));
  t.ok((db.prepare('SELECT revoked_at FROM upload_codes WHERE ref = ?').get(ref) as { revoked_at: string }).revoked_at);
  const again = await runCli(configPath, ['code', 'revoke', ref!]);
  t.equal(again.code, 0);
  t.match(again.stdout, /already revoked/);
  const byRef = await runCli(configPath, ['code', 'revoke', refDefault.toLowerCase()]);
  t.equal(byRef.code, 0, 'revoke by reference');
  const active = await runCli(configPath, ['code', 'list', '--active']);
  t.equal(active.stdout.trim(), 'No upload codes.');
  t.equal((db.prepare("SELECT COUNT(*) AS n FROM audit WHERE action = 'code.revoke'").get() as { n: number }).n, 2);
});

t.test('errors and exit codes', async (t) => {
  const { configPath } = await writeTestConfig(t.testdir());
  const cases: [string[], number, RegExp][] = [
    [['code', 'create'], 2, /--institution is required \(one of: test\)/],
    [['code', 'create', '--institution', 'nope'], 2, /no institution "nope"/],
    [['code', 'create', '--institution', 'test', '--expires', 'tomorrow'], 2, /--expires/],
    [['code', 'create', '--institution', 'test', '--max-bytes', 'lots'], 2, /--max-bytes/],
    [['code', 'create', '--institution', 'test', '--birth-date', '1970-01-01'], 2, /birth date must be a date written YYYYMMDD/],
    [['code', 'create', '--institution', 'test', '--colour', 'red'], 2, /Unknown option '--colour'/],
    [['code', 'revoke'], 2, /missing argument/],
    [['code', 'revoke', 'AAAA-BBBB-CCCC-DDDD'], 1, /no such upload code/],
    [['frobnicate'], 2, /unknown command "frobnicate"/],
  ];
  // One command first creates and migrates the database (two processes migrating a new database at the same
  // moment can collide); then the cases run side by side.
  t.equal((await runCli(configPath, ['code', 'list'])).code, 0);
  const results = await Promise.all(cases.map(([args]) => runCli(configPath, args)));
  for (const [i, [args, code, re]] of cases.entries()) {
    const r = results[i];
    t.equal(r.code, code, `uplink ${args.join(' ')}: exit ${code}`);
    t.match(r.stderr, re);
    t.equal(r.stdout.includes('-') && parseCode(lastLine(r.stdout)).ok, false, 'no code printed');
  }
  const help = await runCli(configPath, ['code', 'create', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--birth-date YYYYMMDD/);
  const none = await runCli(configPath, []);
  t.equal(none.code, 2);
  t.match(none.stdout, /code create/);
  t.match(none.stdout, /code revoke/);

  const bad = path.join(t.testdir(), 'bad.json');
  writeFileSync(bad, JSON.stringify({ http: { port: 'eighty' }, institutions: [] }));
  const r = await runCli(bad, ['code', 'list']);
  t.equal(r.code, 2, 'an invalid configuration: exit 2');
  t.match(r.stderr, /http\.port/);
  t.match(r.stderr, /institutions/);
});

t.test('npx uplink works from the checkout, against a running appliance', async (t) => {
  const srv = await startServer(t);
  const r = spawnSync('npx', ['--no-install', 'uplink', 'code', 'create', '--institution', 'test'], { cwd: ROOT, env: { ...process.env, UPLINK_CONFIG: srv.configPath }, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const code = lastLine(r.stdout);
  t.ok(parseCode(code).ok);
  // The running appliance (same database, WAL) accepts the code at once.
  const page = await fetch(`${srv.url}/`);
  const cookie = page.headers.get('set-cookie')!.split(';')[0];
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1];
  const res = await fetch(`${srv.url}/`, { method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, code }) });
  t.equal(res.status, 303);
  t.equal(res.headers.get('location'), '/upload');
});
