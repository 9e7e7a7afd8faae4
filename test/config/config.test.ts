// The one config loader: defaults are valid, a file named by UPLINK_CONFIG is merged over them, every problem
// of an invalid config is reported at once, and the appliance refuses to start (exit non-zero, nothing
// listening) on a bad config. Also: every key the schema has is documented.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ConfigError, loadConfig, validate, merge } from '../../config/load.ts';
import { defaults, keyDocs } from '../../config/schema.ts';
import { ROOT } from '../helpers/appliance.ts';
import { freePort } from '../helpers/net.ts';

const problems = (raw: unknown): string[] => {
  try {
    validate(merge(defaults, raw));
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
};

t.test('the embedded defaults are valid and match the README contract', async (t) => {
  const c = loadConfig({});
  t.equal(c.http.host, '127.0.0.1');
  t.equal(c.http.port, 8080);
  t.equal(c.dicom.host, '127.0.0.1');
  t.equal(c.dicom.port, 11112);
  t.equal(c.dicom.aeTitle, 'UPLINK');
  t.equal(c.dataDir, path.resolve('./data'));
  t.same(c.dicom.nodes, []);
});

t.test('a config file is merged over the defaults', async (t) => {
  const f = path.join(t.testdir(), 'c.json');
  writeFileSync(f, JSON.stringify({ dataDir: '/tmp/x', dicom: { aeTitle: 'HOSP', nodes: [{ name: 'CT', aeTitle: 'CT1', host: '10.0.0.5', port: 104, allow: ['store'] }] } }));
  const c = loadConfig({ UPLINK_CONFIG: f });
  t.equal(c.dicom.aeTitle, 'HOSP');
  t.equal(c.dicom.port, 11112, 'unset keys keep their defaults');
  t.same(c.dicom.nodes[0], { name: 'CT', aeTitle: 'CT1', host: '10.0.0.5', port: 104, allow: ['store'], send: false, policy: 'modality' });
});

t.test('every problem is reported at once', async (t) => {
  const p = problems({
    http: { port: 70000 },
    dicom: {
      aeTitle: 'THIS AE TITLE IS TOO LONG',
      nodes: [
        { name: 'A', aeTitle: 'A', host: '10.0.0.1', port: 104, allow: ['echo', 'move'] },
        { name: 'A', aeTitle: 'B\\C', host: 'pacs.example', port: 0, allow: ['store'] },
      ],
      pacs: 'NOPE',
    },
    policies: { upload: { forwardTo: ['GHOST'] } },
    typo: 1,
  });
  const text = p.join('\n');
  t.match(text, /http\.port: must be a whole number from 1 to 65535, got 70000/);
  t.match(text, /dicom\.aeTitle: must be an AE title/);
  t.match(text, /dicom\.nodes\[0\]\.allow: must be a list of "echo", "store", "find"/);
  t.match(text, /dicom\.nodes\[1\]\.aeTitle/);
  t.match(text, /dicom\.nodes\[1\]\.port/);
  t.match(text, /node name "A" is used twice/);
  t.match(text, /must be given by IP address/);
  t.match(text, /dicom\.pacs: names no node with "send": true: "NOPE"/);
  t.match(text, /policies\.upload\.forwardTo: names no node with "send": true: "GHOST"/);
  t.match(text, /typo: unknown key/);
  t.ok(p.length >= 10, `${p.length} problems listed`);
});

t.test('unreadable or invalid JSON files are explained', async (t) => {
  const dir = t.testdir();
  t.throws(() => loadConfig({ UPLINK_CONFIG: path.join(dir, 'missing.json') }), /UPLINK_CONFIG names .*missing\.json, which cannot be read/);
  writeFileSync(path.join(dir, 'bad.json'), '{ "dataDir": ');
  t.throws(() => loadConfig({ UPLINK_CONFIG: path.join(dir, 'bad.json') }), /bad\.json is not valid JSON/);
});

t.test('every key in the schema is documented, and documented keys exist', async (t) => {
  const documented = new Set(keyDocs.map((k) => k.path));
  const leaves = (o: unknown, prefix: string): string[] =>
    o && typeof o === 'object' && !Array.isArray(o) && !prefix.startsWith('policies')
      ? Object.entries(o).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k))
      : [prefix];
  for (const key of leaves(defaults, '')) t.ok(documented.has(key), `${key} is documented`);
  for (const k of keyDocs) t.ok(k.doc.length > 10 && k.example.length > 0, `${k.path} has a description and an example`);
});

t.test('an invalid config stops the appliance before it listens', async (t) => {
  const dir = t.testdir();
  const httpPort = await freePort();
  const f = path.join(dir, 'c.json');
  writeFileSync(f, JSON.stringify({ dataDir: path.join(dir, 'data'), http: { port: httpPort }, dicom: { port: 'eleven', aeTitle: '' } }));
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server', 'main.ts')], { cwd: ROOT, env: { ...process.env, UPLINK_CONFIG: f }, encoding: 'utf8', timeout: 30000 });
  t.equal(r.status, 2, 'exit status 2');
  t.match(r.stderr, /the configuration has 2 problem\(s\)/);
  t.match(r.stderr, /dicom\.port: must be a whole number/);
  t.match(r.stderr, /dicom\.aeTitle: must be an AE title/);
  const listening = await new Promise<boolean>((res) => {
    const c = net.connect(httpPort, '127.0.0.1', () => (c.destroy(), res(true)));
    c.on('error', () => res(false));
  });
  t.notOk(listening, 'nothing listens on the HTTP port');
});

t.test('the README lists every configuration key as the schema documents it', async (t) => {
  const { withReference } = await import('../../config/doc.ts');
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  t.equal(withReference(readme), readme, 'README.md is up to date (run: npm run config:doc -- --write)');
});
