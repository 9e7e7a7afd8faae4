/**
 * `uplink code create | revoke | list`: upload codes from the command line, against the same database as the
 * running appliance. `create` prints the code as the last line of its output (scripts take `tail -n 1`);
 * the code is shown only then: the database keeps its hash.
 */
import { createUploadCodes, parseExpiry, type UploadCode, type UploadCodes } from '../../../appliance/codes/upload-codes.ts';
import { createSessionStore } from '../../session/session-store.ts';
import { CliError, type CliContext, type Command } from '../registry.ts';

/** "10GB", "500 MB", "2GiB", "1048576" -> bytes; null if not a size. */
export function parseSize(s: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$/i.exec(s);
  if (!m) return null;
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };
  const n = Math.round(Number(m[1]) * mult[unit]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i ? v.toFixed(1).replace(/\.0$/, '') : v} ${units[i]}`;
}

function when(iso: string): string {
  const d = new Date(iso);
  const p = (x: number) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function codesOf(cli: CliContext): UploadCodes {
  const { db, audit } = cli.store();
  return createUploadCodes({ db, audit, config: cli.config() });
}

export const codeCommands: Command[] = [
  {
    path: ['code', 'create'],
    summary: 'Create an upload code for an institution and print it (last line of the output).',
    usage: 'uplink code create --institution ID [--expires 7d] [--max-bytes N] [--birth-date YYYYMMDD]',
    options: {
      institution: { type: 'string', arg: 'ID', doc: 'The institution (an id in the configuration\'s "institutions").' },
      expires: { type: 'string', arg: 'WHEN', doc: 'Validity: 30m, 12h, 7d, 2w, a date (2025-12-31, through that day) or an ISO time. Default: upload.defaultCodeDays.' },
      'max-bytes': { type: 'string', arg: 'N', doc: 'Size allowance: bytes, or with a unit (500MB, 10GB, 2GiB). Default: upload.defaultAllowanceBytes.' },
      'birth-date': { type: 'string', arg: 'YYYYMMDD', doc: "The patient's expected birth date; the portal warns when the images' differs." },
    },
    run({ values }, cli) {
      const config = cli.config();
      const institutionId = values.institution as string | undefined;
      if (!institutionId) throw new CliError(`--institution is required (one of: ${config.institutions.map((i) => i.id).join(', ')}).`, 2);
      const inst = config.institutions.find((i) => i.id === institutionId);
      if (!inst) throw new CliError(`there is no institution "${institutionId}" in the configuration (known: ${config.institutions.map((i) => i.id).join(', ')}).`, 2);
      let expiresAt: Date | undefined;
      if (values.expires !== undefined) {
        const e = parseExpiry(String(values.expires));
        if (!e) throw new CliError(`--expires: "${values.expires}" is not a duration (30m, 12h, 7d, 2w), a date (YYYY-MM-DD) or an ISO time.`, 2);
        if (e.getTime() <= Date.now()) throw new CliError('--expires: that is in the past.', 2);
        expiresAt = e;
      }
      let allowanceBytes: number | undefined;
      if (values['max-bytes'] !== undefined) {
        const n = parseSize(String(values['max-bytes']));
        if (n === null) throw new CliError(`--max-bytes: "${values['max-bytes']}" is not a size (e.g. 1000000000, 500MB, 10GB).`, 2);
        allowanceBytes = n;
      }
      const birthDate = values['birth-date'] as string | undefined;
      const { code, record } = codesOf(cli).create({ institutionId, expiresAt, allowanceBytes, birthDate: birthDate ?? null, by: cli.actor() });
      cli.out(`Upload code created for ${inst.name} (institution "${inst.id}").`);
      cli.out(`  Reference:   ${record.ref}`);
      cli.out(`  Valid until: ${when(record.expiresAt)}`);
      cli.out(`  Allowance:   ${bytes(record.allowanceBytes)}`);
      cli.out(`  Birth date:  ${record.birthDate ? 'given (the portal checks it)' : 'not given'}`);
      cli.out(`  Portal:      ${config.http.publicUrl}`);
      cli.out('Give this code to the uploader. It is shown only now: Uplink keeps only its hash.');
      cli.out(code);
      return 0;
    },
  },
  {
    path: ['code', 'revoke'],
    summary: 'Revoke an upload code (given as the code or its reference); its portal sessions end.',
    usage: 'uplink code revoke CODE|REFERENCE',
    positionals: { min: 1, max: 1, names: 'CODE or REFERENCE' },
    run({ positionals }, cli) {
      const codes = codesOf(cli);
      const c = codes.find(positionals[0]);
      if (!c) throw new CliError('no such upload code (check the code or its reference, e.g. C7K3MQ9).', 1);
      if (c.revokedAt) {
        cli.out(`Upload code ${c.ref} was already revoked (${when(c.revokedAt)}).`);
        return 0;
      }
      codes.revoke(c.id, cli.actor());
      const { db } = cli.store();
      const ended = createSessionStore(db, cli.config()).destroyFor({ codeId: c.id });
      cli.out(`Upload code ${c.ref} revoked${ended ? `; ${ended} portal session(s) ended` : ''}.`);
      return 0;
    },
  },
  {
    path: ['code', 'list'],
    summary: 'List upload codes with their state (unused, in-use, expired, revoked) and bytes used.',
    usage: 'uplink code list [--institution ID] [--active]',
    options: {
      institution: { type: 'string', arg: 'ID', doc: 'Only codes of this institution.' },
      active: { type: 'boolean', doc: 'Only codes that can still be used (unused or in use).' },
    },
    run({ values }, cli) {
      const codes = codesOf(cli);
      let list: UploadCode[] = codes.list({ institutionId: values.institution as string | undefined, limit: 10000 });
      if (values.active) list = list.filter((c) => ['unused', 'in-use'].includes(codes.status(c)));
      if (!list.length) {
        cli.out('No upload codes.');
        return 0;
      }
      const rows = list.map((c) => [c.ref, c.institutionId, codes.status(c), when(c.expiresAt), `${bytes(c.bytesUsed)} / ${bytes(c.allowanceBytes)}`, c.birthDate ? 'yes' : '-', when(c.createdAt)]);
      const head = ['REFERENCE', 'INSTITUTION', 'STATE', 'VALID UNTIL', 'USED / ALLOWANCE', 'BIRTH DATE', 'CREATED'];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
      for (const r of [head, ...rows]) cli.out(r.map((x, i) => x.padEnd(widths[i])).join('  ').trimEnd());
      return 0;
    },
  },
];
