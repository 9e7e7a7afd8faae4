/**
 * The one config loader: defaults from config/schema.ts, a JSON file named by UPLINK_CONFIG merged over them,
 * every problem collected, nothing started on a bad config. Nothing outside config/ reads process.env.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { defaults, type Config, type NodeConfig, type PolicyConfig, type InstitutionConfig } from './schema.ts';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Objects merge key by key; arrays and scalars replace. */
export function merge(base: unknown, over: unknown): unknown {
  if (isObject(base) && isObject(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in base ? merge(base[k], v) : v;
    return out;
  }
  return over === undefined ? base : over;
}

const AE_RE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/; // printable ASCII without backslash
const SERVICES = ['echo', 'store', 'find'];

class Checker {
  problems: string[] = [];
  fail(p: string, msg: string) {
    this.problems.push(`${p}: ${msg}`);
  }
  str(v: unknown, p: string, opts: { nullable?: boolean; nonEmpty?: boolean } = {}): void {
    if (v === null && opts.nullable) return;
    if (typeof v !== 'string') return this.fail(p, `must be a string${opts.nullable ? ' or null' : ''}, got ${JSON.stringify(v)}`);
    if (opts.nonEmpty && v.trim() === '') this.fail(p, 'must not be empty');
  }
  bool(v: unknown, p: string) {
    if (typeof v !== 'boolean') this.fail(p, `must be true or false, got ${JSON.stringify(v)}`);
  }
  int(v: unknown, p: string, min: number, max: number) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      this.fail(p, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  port(v: unknown, p: string) {
    this.int(v, p, 1, 65535);
  }
  host(v: unknown, p: string) {
    this.str(v, p, { nonEmpty: true });
  }
  ae(v: unknown, p: string) {
    if (typeof v !== 'string' || !AE_RE.test(v) || v.trim() === '')
      this.fail(p, `must be an AE title of 1-16 printable ASCII characters without backslash, got ${JSON.stringify(v)}`);
  }
  /** Unknown keys are almost always typos; report them rather than ignore them silently. */
  keys(v: Record<string, unknown>, allowed: string[], p: string) {
    for (const k of Object.keys(v)) if (!allowed.includes(k)) this.fail(p ? `${p}.${k}` : k, 'unknown key');
  }
}

function checkNode(c: Checker, n: unknown, p: string): NodeConfig | null {
  if (!isObject(n)) {
    c.fail(p, 'must be an object like {"name","aeTitle","host","port","allow"}');
    return null;
  }
  c.keys(n, ['name', 'aeTitle', 'host', 'port', 'allow', 'send', 'policy'], p);
  c.str(n.name, `${p}.name`, { nonEmpty: true });
  c.ae(n.aeTitle, `${p}.aeTitle`);
  c.host(n.host, `${p}.host`);
  c.port(n.port, `${p}.port`);
  const allow = n.allow ?? ['echo'];
  if (!Array.isArray(allow) || allow.some((s) => !SERVICES.includes(s as string)))
    c.fail(`${p}.allow`, `must be a list of "echo", "store", "find", got ${JSON.stringify(n.allow)}`);
  const send = n.send ?? false;
  c.bool(send, `${p}.send`);
  const policy = n.policy ?? 'modality';
  c.str(policy, `${p}.policy`, { nonEmpty: true });
  return { ...(n as object), allow, send, policy } as NodeConfig;
}

function checkPolicy(c: Checker, v: unknown, p: string, base: PolicyConfig | undefined): PolicyConfig | null {
  if (!isObject(v)) {
    c.fail(p, 'must be an object {"anonymise","label","workflowStatus","scan","forwardTo"}');
    return null;
  }
  const full = { ...(base ?? { anonymise: false, label: null, workflowStatus: null, scan: false, forwardTo: [] }), ...v } as Record<string, unknown>;
  c.keys(full, ['anonymise', 'label', 'workflowStatus', 'scan', 'forwardTo'], p);
  c.bool(full.anonymise, `${p}.anonymise`);
  c.str(full.label, `${p}.label`, { nullable: true, nonEmpty: true });
  c.str(full.workflowStatus, `${p}.workflowStatus`, { nullable: true, nonEmpty: true });
  c.bool(full.scan, `${p}.scan`);
  if (!Array.isArray(full.forwardTo) || full.forwardTo.some((x) => typeof x !== 'string'))
    c.fail(`${p}.forwardTo`, 'must be a list of node names');
  return full as unknown as PolicyConfig;
}

function checkInstitution(c: Checker, v: unknown, p: string): void {
  if (!isObject(v)) return c.fail(p, 'must be an object {"id","name","phone","email","manualUrl","privacyPolicyUrl"}');
  c.keys(v, ['id', 'name', 'phone', 'email', 'manualUrl', 'privacyPolicyUrl'], p);
  c.str(v.id, `${p}.id`, { nonEmpty: true });
  if (typeof v.id === 'string' && !/^[A-Za-z0-9_-]{1,32}$/.test(v.id)) c.fail(`${p}.id`, 'must be 1-32 letters, digits, "-" or "_"');
  for (const k of ['name', 'phone', 'email', 'manualUrl', 'privacyPolicyUrl']) c.str(v[k], `${p}.${k}`, { nonEmpty: true });
}

/** Validate a merged config object; returns it typed, or throws ConfigError listing every problem. */
export function validate(raw: unknown): Config {
  const c = new Checker();
  if (!isObject(raw)) throw new ConfigError(['the configuration must be a JSON object']);
  const v = raw as Record<string, any>;
  c.keys(v, Object.keys(defaults), '');
  c.str(v.dataDir, 'dataDir', { nonEmpty: true });
  if (!isObject(v.log) || !['debug', 'info', 'warn', 'error'].includes(v.log.level as string)) c.fail('log.level', 'must be one of debug, info, warn, error');
  else c.keys(v.log, ['level'], 'log');

  const sections: [string, Record<string, (x: unknown, p: string) => void>][] = [
    ['http', { host: (x, p) => c.host(x, p), port: (x, p) => c.port(x, p), publicUrl: (x, p) => c.str(x, p, { nonEmpty: true }), secureCookies: (x, p) => c.bool(x, p), trustProxy: (x, p) => c.bool(x, p) }],
    ['dicom', {
      host: (x, p) => c.host(x, p), port: (x, p) => c.port(x, p), aeTitle: (x, p) => c.ae(x, p),
      pacs: (x, p) => c.str(x, p, { nullable: true, nonEmpty: true }),
      maxAssociations: (x, p) => c.int(x, p, 1, 1000), maxPduBytes: (x, p) => c.int(x, p, 4096, 16 * 1024 * 1024),
      associationTimeoutSeconds: (x, p) => c.int(x, p, 1, 3600), idleTimeoutSeconds: (x, p) => c.int(x, p, 1, 86400),
      maxDatasetBytes: (x, p) => c.int(x, p, 1024, 2 ** 42), findLimit: (x, p) => c.int(x, p, 1, 1_000_000),
      nodes: () => {},
    }],
    ['anonymise', { issuer: (x, p) => c.str(x, p, { nonEmpty: true }) }],
    ['scan', { clamd: () => {}, databaseDir: (x, p) => c.str(x, p, { nullable: true, nonEmpty: true }) }],
    ['upload', {
      maxFileBytes: (x, p) => c.int(x, p, 1024, 2 ** 42), defaultAllowanceBytes: (x, p) => c.int(x, p, 1024, 2 ** 46),
      defaultCodeDays: (x, p) => c.int(x, p, 1, 3650), maxFilesPerUpload: (x, p) => c.int(x, p, 1, 10_000_000),
      chunkBytes: (x, p) => c.int(x, p, 64 * 1024, 256 * 1024 * 1024), parallelFiles: (x, p) => c.int(x, p, 1, 16),
      unfinishedDays: (x, p) => c.int(x, p, 1, 365),
    }],
    ['forward', {
      retryInitialSeconds: (x, p) => c.int(x, p, 1, 86400), retryMaxSeconds: (x, p) => c.int(x, p, 1, 7 * 86400),
      giveUpAfterHours: (x, p) => c.int(x, p, 1, 24 * 365), maxInstancesPerAssociation: (x, p) => c.int(x, p, 1, 1_000_000),
      maxBytesPerAssociation: (x, p) => c.int(x, p, 1024, 2 ** 46),
      concurrentDestinations: (x, p) => c.int(x, p, 1, 64), associationsPerDestination: (x, p) => c.int(x, p, 1, 16),
    }],
    ['session', { idleMinutes: (x, p) => c.int(x, p, 1, 24 * 60), absoluteHours: (x, p) => c.int(x, p, 1, 24 * 30) }],
    ['console', {
      loginAttemptsPerAddress: (x, p) => c.int(x, p, 1, 1_000_000), loginAttemptsPerUser: (x, p) => c.int(x, p, 1, 1_000_000),
      loginAttemptWindowMinutes: (x, p) => c.int(x, p, 1, 24 * 60), passwordMinLength: (x, p) => c.int(x, p, 8, 256),
      pageSize: (x, p) => c.int(x, p, 5, 500),
      workflowStatuses: (x, p) => {
        if (!Array.isArray(x) || x.some((s) => typeof s !== 'string' || !s.trim() || s.length > 64 || /[\\\x00-\x1f]/.test(s)))
          c.fail(p, 'must be a list of statuses (1-64 characters each, no backslash)');
      },
    }],
    ['portal', {
      defaultLanguage: (x, p) => (x === 'en' || x === 'nl' ? undefined : c.fail(p, `must be "en" or "nl", got ${JSON.stringify(x)}`)),
      codeAttemptsPerAddress: (x, p) => c.int(x, p, 1, 1_000_000), codeAttemptsGlobal: (x, p) => c.int(x, p, 1, 100_000_000),
      codeAttemptWindowMinutes: (x, p) => c.int(x, p, 1, 24 * 60), zipMaxEntries: (x, p) => c.int(x, p, 1, 10_000_000),
      zipMaxBytes: (x, p) => c.int(x, p, 1024, 2 ** 46), zipMaxRatio: (x, p) => c.int(x, p, 2, 100_000),
    }],
  ];
  for (const [name, fields] of sections) {
    const s = v[name];
    if (!isObject(s)) {
      c.fail(name, 'must be an object');
      continue;
    }
    c.keys(s, Object.keys(fields), name);
    for (const [k, check] of Object.entries(fields)) check(s[k], `${name}.${k}`);
  }

  if (isObject(v.scan) && isObject(v.scan.clamd)) {
    const cl = v.scan.clamd;
    c.keys(cl, ['host', 'port', 'manage', 'timeoutSeconds', 'maxConcurrent', 'startTimeoutSeconds'], 'scan.clamd');
    c.host(cl.host, 'scan.clamd.host');
    c.port(cl.port, 'scan.clamd.port');
    c.bool(cl.manage, 'scan.clamd.manage');
    c.int(cl.timeoutSeconds, 'scan.clamd.timeoutSeconds', 1, 86400);
    c.int(cl.maxConcurrent, 'scan.clamd.maxConcurrent', 1, 64);
    c.int(cl.startTimeoutSeconds, 'scan.clamd.startTimeoutSeconds', 1, 3600);
    if (cl.manage && typeof cl.host === 'string' && !['127.0.0.1', '::1', 'localhost'].includes(cl.host))
      c.fail('scan.clamd.host', 'a managed clamd (scan.clamd.manage) listens on loopback only: use 127.0.0.1');
  } else c.fail('scan.clamd', 'must be an object');

  // Policies: built-ins merged with overrides, each fully checked.
  const policies: Record<string, PolicyConfig> = {};
  if (!isObject(v.policies)) c.fail('policies', 'must be an object of named policies');
  else
    for (const [name, pol] of Object.entries(v.policies)) {
      const checked = checkPolicy(c, pol, `policies.${name}`, (defaults.policies as Record<string, PolicyConfig>)[name]);
      if (checked) policies[name] = checked;
    }

  // Nodes: shape, unique names, policies and forwarding targets that exist.
  const nodes: NodeConfig[] = [];
  if (isObject(v.dicom)) {
    if (!Array.isArray(v.dicom.nodes)) c.fail('dicom.nodes', 'must be a list');
    else
      v.dicom.nodes.forEach((n: unknown, i: number) => {
        const checked = checkNode(c, n, `dicom.nodes[${i}]`);
        if (checked) nodes.push(checked);
      });
    const names = new Set<string>();
    for (const n of nodes) {
      if (names.has(n.name)) c.fail('dicom.nodes', `node name "${n.name}" is used twice`);
      names.add(n.name);
      if (typeof n.policy === 'string' && !(n.policy in policies)) c.fail(`dicom.nodes (${n.name}).policy`, `names no policy: "${n.policy}"`);
      if (n.allow.length && typeof n.host === 'string' && isIP(n.host) === 0 && n.host !== 'localhost')
        c.fail(`dicom.nodes (${n.name}).host`, 'a node that calls us (allow is not empty) must be given by IP address, so its calls can be checked');
    }
    const sendable = new Set(nodes.filter((n) => n.send).map((n) => n.name));
    if (v.dicom.pacs != null && typeof v.dicom.pacs === 'string' && !sendable.has(v.dicom.pacs))
      c.fail('dicom.pacs', `names no node with "send": true: "${v.dicom.pacs}"`);
    for (const [name, pol] of Object.entries(policies))
      for (const to of pol.forwardTo ?? []) if (!sendable.has(to)) c.fail(`policies.${name}.forwardTo`, `names no node with "send": true: "${to}"`);
  }

  if (!Array.isArray(v.institutions) || v.institutions.length === 0) c.fail('institutions', 'must be a non-empty list');
  else {
    v.institutions.forEach((inst: unknown, i: number) => checkInstitution(c, inst, `institutions[${i}]`));
    const ids = v.institutions.map((i: any) => i?.id);
    if (new Set(ids).size !== ids.length) c.fail('institutions', 'ids must be unique');
  }
  if (isObject(v.forward) && (v.forward.retryMaxSeconds as number) < (v.forward.retryInitialSeconds as number))
    c.fail('forward.retryMaxSeconds', 'must not be smaller than forward.retryInitialSeconds');

  if (c.problems.length) throw new ConfigError(c.problems);
  const out = { ...v, policies, dicom: { ...v.dicom, nodes } } as Config;
  out.institutions = v.institutions as InstitutionConfig[];
  return out;
}

/** Load the config: defaults, then the file named by UPLINK_CONFIG (if any), then overrides (tests). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Json = {}): Config {
  let file: unknown = {};
  const named = env.UPLINK_CONFIG;
  if (named) {
    let text: string;
    try {
      text = readFileSync(named, 'utf8');
    } catch (e) {
      throw new ConfigError([`UPLINK_CONFIG names ${named}, which cannot be read: ${(e as Error).message}`]);
    }
    try {
      file = JSON.parse(text);
    } catch (e) {
      throw new ConfigError([`${named} is not valid JSON: ${(e as Error).message}`]);
    }
  }
  const cfg = validate(merge(merge(defaults, file), overrides));
  // dataDir is resolved against the working directory (the README's contract), not the config file.
  return { ...cfg, dataDir: path.resolve(cfg.dataDir) };
}
