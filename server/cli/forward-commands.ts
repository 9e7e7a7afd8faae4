/**
 * `uplink forward ...`: the forwarding queue from the command line, against the same database as the running
 * appliance (WAL; its worker polls the queue every second, so jobs queued here are picked up at once).
 *   forward status [STUDY_UID] [--to NODE] [--state STATE] [--json]
 *   forward study STUDY_UID --to NODE        (DICOM transfer of a whole study)
 *   forward series SERIES_UID --to NODE
 *   forward resend [STUDY_UID] [--to NODE]  (failed and retrying jobs, now)
 *   forward echo NODE                        (C-ECHO)
 * Exit codes: 0 done; 1 failed (no such study, C-ECHO failed); 2 wrong usage (unknown node, bad state).
 */
import { echoNode, sendableNodes } from '../../appliance/forward/destinations.ts';
import { createForwardQueue, JOB_STATES, type ForwardProgress, type ForwardQueue, type JobState } from '../../appliance/forward/forward-queue.ts';
import { CliError, type CliContext, type Command } from './registry.ts';

function queueOf(cli: CliContext): ForwardQueue {
  const { db, audit } = cli.store();
  return createForwardQueue({ db, config: cli.config(), audit });
}

/** Local time with seconds (retry times matter to the second). */
function when(iso: string | null): string {
  if (!iso) return '-';
  const d = new Date(iso);
  const p = (x: number) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function table(cli: CliContext, head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [head, ...rows]) cli.out(r.map((x, i) => (i === r.length - 1 ? x : x.padEnd(widths[i]))).join('  ').trimEnd());
}

/** "retrying (next attempt at ...)", "failed (why)", "done", ... */
export function describeProgress(p: ForwardProgress): string {
  const counts = (['done', 'sending', 'queued', 'retrying', 'failed'] as JobState[])
    .filter((s) => p[s as keyof ForwardProgress])
    .map((s) => `${p[s as keyof ForwardProgress]} ${s}`)
    .join(', ');
  let head: string = p.state;
  if (p.state === 'retrying' || (p.state === 'queued' && p.nextAttemptAt && Date.parse(p.nextAttemptAt) > Date.now())) head += ` (next attempt at ${when(p.nextAttemptAt)})`;
  if (p.state === 'failed' && p.lastMeaning) head += ` (${p.lastMeaning})`;
  return `${head}: ${counts} of ${p.total}${p.transcoded ? `; ${p.transcoded} transcoded` : ''}`;
}

function requireNode(cli: CliContext, name: string | undefined, option = '--to'): string {
  const names = sendableNodes(cli.config()).map((n) => n.name);
  if (!name) throw new CliError(`${option} NODE is required (nodes that may be sent to: ${names.join(', ') || 'none configured'}).`, 2);
  if (!names.includes(name)) throw new CliError(`"${name}" is not a node that may be sent to (dicom.nodes with "send": true: ${names.join(', ') || 'none'}).`, 2);
  return name;
}

function studyStatus(cli: CliContext, q: ForwardQueue, studyUid: string, destination: string | undefined, json: boolean): number {
  const { db } = cli.store();
  const known = !!db.prepare('SELECT 1 FROM studies WHERE study_uid = ?').get(studyUid);
  const progress = q.studyStatus(studyUid).filter((p) => !destination || p.destination === destination);
  if (!known && !progress.length) throw new CliError(`there is no study ${studyUid} in the index.`, 1);
  const problems = q.jobs({ studyUid, destination, limit: 100000 }).filter((j) => j.state === 'failed' || j.state === 'retrying');
  if (json) {
    cli.out(JSON.stringify({ studyUid, destinations: progress, problems }, null, 2));
    return 0;
  }
  cli.out(`Study ${studyUid}`);
  if (!progress.length) {
    cli.out(`  Not forwarded to ${destination ?? 'any destination'}.`);
    return 0;
  }
  const nodes = cli.config().dicom.nodes;
  for (const p of progress) {
    const n = nodes.find((x) => x.name === p.destination);
    cli.out(`  ${p.destination}${n ? ` (${n.aeTitle} at ${n.host}:${n.port})` : ' (not configured)'}: ${describeProgress(p)}`);
    // Problems grouped by state and reason, with a few of the instances each concerns.
    const groups = new Map<string, typeof problems>();
    for (const j of problems.filter((x) => x.destination === p.destination)) {
      const key = `${j.state}\n${j.lastMeaning ?? '-'}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key)!.push(j);
    }
    for (const [key, jobs] of groups) {
      const [state, meaning] = key.split('\n');
      const attempts = Math.max(...jobs.map((j) => j.attempts));
      cli.out(`    ${jobs.length} ${state}: ${meaning}${state === 'retrying' ? ` (attempt ${attempts})` : ''}`);
      const shown = jobs.slice(0, 5).map((j) => j.sopInstanceUid);
      cli.out(`      SOP Instance UIDs: ${shown.join(', ')}${jobs.length > shown.length ? ` and ${jobs.length - shown.length} more` : ''}`);
    }
  }
  const failed = progress.reduce((n, p) => n + p.failed, 0);
  if (failed) cli.out(`Resend what failed with: uplink forward resend ${studyUid}`);
  return 0;
}

function overallStatus(cli: CliContext, q: ForwardQueue, destination: string | undefined, state: JobState | undefined, json: boolean): number {
  const dests = q.destinations().filter((d) => !destination || d.destination === destination);
  const studies = q.studies({ destination, state, limit: 200 }).filter((p) => state || p.state !== 'done');
  if (json) {
    cli.out(JSON.stringify({ destinations: dests, studies }, null, 2));
    return 0;
  }
  if (!dests.length) cli.out('No destinations: no node in dicom.nodes has "send": true.');
  else {
    cli.out('Destinations:');
    table(
      cli,
      ['NODE', 'AE TITLE', 'ADDRESS', 'QUEUED', 'SENDING', 'RETRYING', 'FAILED', 'DONE', 'NEXT ATTEMPT', 'LAST PROBLEM'],
      dests.map((d) => [
        d.destination + (d.configured ? '' : ' (not configured)'),
        d.aeTitle ?? '-',
        d.host ? `${d.host}:${d.port}` : '-',
        String(d.queued),
        String(d.sending),
        String(d.retrying),
        String(d.failed),
        String(d.done),
        d.queued || d.retrying ? when(d.nextAttemptAt) : '-',
        d.retrying || d.failed ? (d.lastMeaning ?? '-') : '-',
      ]),
    );
  }
  cli.out('');
  if (!studies.length) {
    cli.out(state ? `No studies with ${state} instances.` : 'Every queued study has been forwarded (nothing queued, retrying or failed).');
    return 0;
  }
  cli.out(state ? `Studies with ${state} instances:` : 'Studies not fully forwarded:');
  table(
    cli,
    ['STUDY INSTANCE UID', 'DESTINATION', 'STATE'],
    studies.map((p) => [p.studyUid, p.destination, describeProgress(p)]),
  );
  return 0;
}

export const forwardCommands: Command[] = [
  {
    path: ['forward', 'status'],
    summary: 'Show the forwarding queue per destination, or one study\'s forwarding per destination.',
    usage: 'uplink forward status [STUDY_UID] [--to NODE] [--state queued|sending|done|retrying|failed] [--json]',
    options: {
      to: { type: 'string', arg: 'NODE', doc: 'Only this destination.' },
      state: { type: 'string', arg: 'STATE', doc: 'List studies with instances in this state (queued, sending, done, retrying, failed).' },
      json: { type: 'boolean', doc: 'Print JSON (for scripts).' },
    },
    positionals: { min: 0, max: 1, names: 'STUDY_UID' },
    run({ values, positionals }, cli) {
      const state = values.state as JobState | undefined;
      if (state !== undefined && !JOB_STATES.includes(state)) throw new CliError(`--state must be one of ${JOB_STATES.join(', ')}.`, 2);
      const destination = values.to as string | undefined;
      const q = queueOf(cli);
      if (positionals[0]) return studyStatus(cli, q, positionals[0], destination, !!values.json);
      return overallStatus(cli, q, destination, state, !!values.json);
    },
  },
  {
    path: ['forward', 'study'],
    summary: 'Send a whole study to a node (DICOM transfer): its instances are queued for the running appliance.',
    usage: 'uplink forward study STUDY_UID --to NODE',
    options: { to: { type: 'string', arg: 'NODE', doc: 'The destination: a node in dicom.nodes with "send": true.' } },
    positionals: { min: 1, max: 1, names: 'STUDY_UID' },
    run({ values, positionals }, cli) {
      const to = requireNode(cli, values.to as string | undefined);
      const r = queueOf(cli).enqueueStudy(positionals[0], to, cli.actor(), 'cli');
      cli.out(`Queued ${r.instances} instance(s) of study ${r.studyUid} for ${to}${r.requeued ? ` (${r.requeued} of them had been queued or sent before and are sent again)` : ''}.`);
      cli.out(`The running appliance sends them; follow with: uplink forward status ${r.studyUid}`);
      return 0;
    },
  },
  {
    path: ['forward', 'series'],
    summary: 'Send one series to a node (DICOM transfer).',
    usage: 'uplink forward series SERIES_UID --to NODE',
    options: { to: { type: 'string', arg: 'NODE', doc: 'The destination: a node in dicom.nodes with "send": true.' } },
    positionals: { min: 1, max: 1, names: 'SERIES_UID' },
    run({ values, positionals }, cli) {
      const to = requireNode(cli, values.to as string | undefined);
      const r = queueOf(cli).enqueueSeries(positionals[0], to, cli.actor(), 'cli');
      cli.out(`Queued ${r.instances} instance(s) of series ${r.seriesUid} (study ${r.studyUid}) for ${to}${r.requeued ? ` (${r.requeued} sent again)` : ''}.`);
      cli.out(`The running appliance sends them; follow with: uplink forward status ${r.studyUid}`);
      return 0;
    },
  },
  {
    path: ['forward', 'resend'],
    summary: 'Queue failed (and retrying) instances again now, all of them or of one study and/or destination.',
    usage: 'uplink forward resend [STUDY_UID] [--to NODE]',
    options: { to: { type: 'string', arg: 'NODE', doc: 'Only jobs for this destination.' } },
    positionals: { min: 0, max: 1, names: 'STUDY_UID' },
    run({ values, positionals }, cli) {
      const to = values.to === undefined ? undefined : requireNode(cli, values.to as string);
      const n = queueOf(cli).resend({ destination: to, studyUid: positionals[0] }, cli.actor());
      if (!n) {
        cli.out('Nothing to resend: no failed or retrying instances' + (positionals[0] ? ` in study ${positionals[0]}` : '') + (to ? ` for ${to}` : '') + '.');
        return 0;
      }
      cli.out(`Queued ${n} instance(s) again${positionals[0] ? ` of study ${positionals[0]}` : ''}${to ? ` for ${to}` : ''}.`);
      return 0;
    },
  },
  {
    path: ['forward', 'echo'],
    summary: 'Check a node with C-ECHO (exit code 0 if it answers with success).',
    usage: 'uplink forward echo NODE',
    positionals: { min: 1, max: 1, names: 'NODE' },
    async run({ positionals }, cli) {
      const config = cli.config();
      if (!config.dicom.nodes.some((n) => n.name === positionals[0]))
        throw new CliError(`there is no node "${positionals[0]}" in dicom.nodes (known: ${config.dicom.nodes.map((n) => n.name).join(', ') || 'none'}).`, 2);
      const r = await echoNode(config, positionals[0]);
      cli.out(`${r.ok ? 'OK' : 'FAILED'}: ${r.detail} (${r.ms} ms)`);
      return r.ok ? 0 : 1;
    },
  },
];
