/**
 * The `uplink` command registry. A command is a path of words (`code create`), a summary, a usage line,
 * its options (parsed with node:util parseArgs, strict) and a `run`. Other parts register theirs in
 * commands/index.ts (`forward ...`, `user ...`):
 *
 *   export const userCommands: Command[] = [{
 *     path: ['user', 'add'], summary: 'Create a console user', usage: 'uplink user add --role admin NAME',
 *     options: { role: { type: 'string', doc: 'admin or user' } }, positionals: { min: 1, max: 1 },
 *     run: async ({ values, positionals }, cli) => { ...; cli.out('...'); return 0; },
 *   }];
 *
 * Exit codes: 0 done; 1 the command failed (e.g. no such code); 2 wrong usage or an invalid configuration.
 */
import type { AuditLog } from '../../appliance/audit/audit-log.ts';
import type { Db } from '../../appliance/store/db.ts';
import type { Config } from '../../config/schema.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  doc: string;
  /** Shown in the help, e.g. "ID". */
  arg?: string;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export interface CliContext {
  out(line: string): void;
  err(line: string): void;
  /** The configuration (UPLINK_CONFIG), loaded on first use. A bad one ends the command with exit code 2. */
  config(): Config;
  /** The appliance's database and audit trail (the same SQLite file the running appliance uses; WAL). */
  store(): { db: Db; audit: AuditLog };
  /** Who is acting, for the audit trail: the operating-system user running the command. */
  actor(): { kind: 'system'; name: string };
}

export interface Command {
  path: string[];
  summary: string;
  usage: string;
  options?: Record<string, OptionSpec>;
  positionals?: { min: number; max: number; names?: string };
  run(args: ParsedArgs, cli: CliContext): Promise<number> | number;
}

/** A failure to report as "uplink: <message>" with an exit code (1 by default). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export function createRegistry(commands: Command[] = []) {
  const list: Command[] = [...commands];
  return {
    add(...cmds: Command[]) {
      list.push(...cmds);
    },
    all(): readonly Command[] {
      return list;
    },
    /** The command whose path is the longest prefix of argv, and the rest of argv. */
    find(argv: string[]): { command: Command; rest: string[] } | null {
      let best: Command | null = null;
      for (const c of list) if (c.path.every((w, i) => argv[i] === w) && (!best || c.path.length > best.path.length)) best = c;
      return best ? { command: best, rest: argv.slice(best.path.length) } : null;
    },
    /** Commands under a prefix (for help on "uplink code"). */
    under(prefix: string[]): Command[] {
      return list.filter((c) => prefix.every((w, i) => c.path[i] === w));
    },
  };
}

export type Registry = ReturnType<typeof createRegistry>;
