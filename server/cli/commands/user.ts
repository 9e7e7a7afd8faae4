/**
 * `uplink user add | list | disable | enable | password`: console users from the command line, against the same
 * database as the running appliance. This is how the first admin is made:
 *
 *   uplink user add --role admin alice             (asks for the password twice, without echo)
 *   printf '%s\n' "$PASSWORD" | uplink user add --role admin alice     (reads the first line of stdin)
 *
 * The password is read from the terminal when stdin is one, else from stdin (scripts, provisioning); it is
 * never an argument (it would show in `ps` and the shell history) and never printed. Disabling a user or
 * setting a password ends that user's console sessions at once.
 */
import { createUsers, isRole, type User, type Users } from '../../../appliance/users/users.ts';
import { CliError, type CliContext, type Command } from '../registry.ts';

function usersOf(cli: CliContext): Users {
  const { db, audit } = cli.store();
  return createUsers({ db, audit, passwordMinLength: cli.config().console.passwordMinLength });
}

/** The first line of a non-terminal stdin (without its line end). */
async function readStdinLine(input: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size > 64 * 1024) throw new CliError('the password on stdin is too long.', 2);
    if (chunk.includes(0x0a)) break;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const nl = text.indexOf('\n');
  return (nl >= 0 ? text.slice(0, nl) : text).replace(/\r$/, '');
}

/** Ask on the terminal without echoing what is typed. */
function askHidden(prompt: string, input: NodeJS.ReadStream, output: NodeJS.WriteStream): Promise<string> {
  return new Promise((resolve, reject) => {
    output.write(prompt);
    let value = '';
    const wasRaw = input.isRaw;
    input.setRawMode(true);
    input.resume();
    input.setEncoding('utf8');
    const done = (err?: Error) => {
      input.setRawMode(wasRaw);
      input.pause();
      input.removeListener('data', onData);
      output.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (s: string) => {
      for (const ch of s) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new CliError('cancelled.', 130));
        if (ch === '\u0004') return done();
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ') value += ch;
      }
    };
    input.on('data', onData);
  });
}

/** A new password: asked twice on a terminal, or the first line of stdin. */
export async function readNewPassword(input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): Promise<string> {
  if (input.isTTY) {
    const a = await askHidden('Password: ', input, output);
    const b = await askHidden('Password again: ', input, output);
    if (a !== b) throw new CliError('the two passwords differ; nothing was changed.', 1);
    return a;
  }
  const line = await readStdinLine(input);
  if (!line) throw new CliError('no password: type it at the prompt, or give it as the first line of stdin.', 2);
  return line;
}

function when(iso: string | null): string {
  if (!iso) return '-';
  const d = new Date(iso);
  const p = (x: number) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

const ROLE_NAME = { admin: 'source admin', user: 'source user' } as const;

export const userCommands: Command[] = [
  {
    path: ['user', 'add'],
    summary: 'Create a console user (source admin or source user); the password is asked for, or read from stdin.',
    usage: 'uplink user add --role admin|user [--institution ID] NAME',
    options: {
      role: { type: 'string', arg: 'ROLE', doc: '"admin" (source admin: everything) or "user" (source user: sees studies, uploads).' },
      institution: { type: 'string', arg: 'ID', doc: 'The institution (an id in "institutions") the user uploads for. Default: the first one.' },
    },
    positionals: { min: 1, max: 1, names: 'NAME' },
    async run({ values, positionals }, cli) {
      const role = values.role;
      if (!isRole(role)) throw new CliError('--role is required: "admin" or "user".', 2);
      const config = cli.config();
      const institution = values.institution as string | undefined;
      if (institution !== undefined && !config.institutions.some((i) => i.id === institution))
        throw new CliError(`there is no institution "${institution}" in the configuration (known: ${config.institutions.map((i) => i.id).join(', ')}).`, 2);
      const users = usersOf(cli);
      const name = positionals[0];
      if (users.byName(name)) throw new CliError(`there is already a user "${name}".`, 1);
      const password = await readNewPassword();
      const problem = users.passwordProblem(password, name);
      if (problem) throw new CliError(problem, 2);
      const user = await users.add({ name, role, password, institutionId: institution ?? null, by: cli.actor() });
      cli.out(`User ${user.name} created (${ROLE_NAME[user.role]}). Log in at ${config.http.publicUrl.replace(/\/$/, '')}/login`);
      return 0;
    },
  },
  {
    path: ['user', 'list'],
    summary: 'List console users with their role, state and last log-in.',
    usage: 'uplink user list',
    run(_args, cli) {
      const list: User[] = usersOf(cli).list();
      if (!list.length) {
        cli.out('No users. Create the first admin with: uplink user add --role admin NAME');
        return 0;
      }
      const rows = list.map((u) => [u.name, u.role, u.disabledAt ? 'disabled' : 'active', when(u.lastLoginAt), when(u.createdAt), u.createdBy]);
      const head = ['NAME', 'ROLE', 'STATE', 'LAST LOG-IN', 'CREATED', 'BY'];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
      for (const r of [head, ...rows]) cli.out(r.map((x, i) => x.padEnd(widths[i])).join('  ').trimEnd());
      return 0;
    },
  },
  {
    path: ['user', 'disable'],
    summary: 'Disable a console user: they cannot log in, and their sessions end at once.',
    usage: 'uplink user disable NAME',
    positionals: { min: 1, max: 1, names: 'NAME' },
    run({ positionals }, cli) {
      const users = usersOf(cli);
      const u = users.byName(positionals[0]);
      if (!u) throw new CliError(`there is no user "${positionals[0]}".`, 1);
      if (u.disabledAt) {
        cli.out(`User ${u.name} was already disabled.`);
        return 0;
      }
      users.setDisabled(u.name, true, cli.actor());
      cli.out(`User ${u.name} disabled; their console sessions have ended.`);
      return 0;
    },
  },
  {
    path: ['user', 'enable'],
    summary: 'Enable a disabled console user again.',
    usage: 'uplink user enable NAME',
    positionals: { min: 1, max: 1, names: 'NAME' },
    run({ positionals }, cli) {
      const users = usersOf(cli);
      const u = users.byName(positionals[0]);
      if (!u) throw new CliError(`there is no user "${positionals[0]}".`, 1);
      users.setDisabled(u.name, false, cli.actor());
      cli.out(`User ${u.name} enabled.`);
      return 0;
    },
  },
  {
    path: ['user', 'password'],
    summary: "Set a console user's password (asked for, or read from stdin); their sessions end.",
    usage: 'uplink user password NAME',
    positionals: { min: 1, max: 1, names: 'NAME' },
    async run({ positionals }, cli) {
      const users = usersOf(cli);
      const u = users.byName(positionals[0]);
      if (!u) throw new CliError(`there is no user "${positionals[0]}".`, 1);
      const password = await readNewPassword();
      const problem = users.passwordProblem(password, u.name);
      if (problem) throw new CliError(problem, 2);
      await users.setPassword(u.name, password, cli.actor());
      cli.out(`Password of ${u.name} changed; their console sessions have ended.`);
      return 0;
    },
  },
];
