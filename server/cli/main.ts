/**
 * `uplink`: the appliance's command-line tool (bin/uplink.js runs this through tsx). It reads the same
 * configuration (UPLINK_CONFIG) and opens the same database as the running appliance.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { createAuditLog, type AuditLog } from '../../appliance/audit/audit-log.ts';
import { openDb, type Db } from '../../appliance/store/db.ts';
import { AppError } from '../../appliance/errors.ts';
import { ConfigError, loadConfig } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { commands } from './commands/index.ts';
import { CliError, createRegistry, type CliContext, type Command, type Registry } from './registry.ts';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  env?: NodeJS.ProcessEnv;
}

function help(registry: Registry, prefix: string[], io: CliIo): void {
  const cmds = registry.under(prefix);
  io.out('Usage: uplink <command> [options]   (configuration: the JSON file named by UPLINK_CONFIG)');
  io.out('');
  io.out('Commands:');
  const width = Math.max(...cmds.map((c) => c.path.join(' ').length));
  for (const c of cmds) io.out(`  ${c.path.join(' ').padEnd(width)}  ${c.summary}`);
  io.out('');
  io.out('Run "uplink <command> --help" for its options.');
}

function commandHelp(c: Command, io: CliIo): void {
  io.out(`Usage: ${c.usage}`);
  io.out('');
  io.out(c.summary);
  const opts = Object.entries(c.options ?? {});
  if (opts.length) {
    io.out('');
    io.out('Options:');
    const left = (name: string, o: { arg?: string; short?: string }) => `${o.short ? `-${o.short}, ` : ''}--${name}${o.arg ? ` ${o.arg}` : ''}`;
    const width = Math.max(...opts.map(([n, o]) => left(n, o).length));
    for (const [n, o] of opts) io.out(`  ${left(n, o).padEnd(width)}  ${o.doc}`);
  }
}

export async function run(argv: string[], io: CliIo, registry: Registry = createRegistry(commands)): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    help(registry, argv[0] === 'help' ? argv.slice(1) : [], io);
    return argv.length === 0 ? 2 : 0;
  }
  const found = registry.find(argv);
  if (!found) {
    const group = registry.under([argv[0]]);
    if (group.length && (argv.length === 1 || argv[1] === '--help')) {
      help(registry, [argv[0]], io);
      return argv.length === 1 ? 2 : 0;
    }
    io.err(`uplink: unknown command "${argv.join(' ')}". Run "uplink help".`);
    return 2;
  }
  const { command, rest } = found;
  if (rest.includes('--help') || rest.includes('-h')) {
    commandHelp(command, io);
    return 0;
  }
  let parsed;
  try {
    const options = Object.fromEntries(Object.entries(command.options ?? {}).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}) }]));
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (e) {
    io.err(`uplink: ${(e as Error).message}`);
    io.err(`Usage: ${command.usage}`);
    return 2;
  }
  const pos = command.positionals ?? { min: 0, max: 0 };
  if (parsed.positionals.length < pos.min || parsed.positionals.length > pos.max) {
    io.err(`uplink: ${parsed.positionals.length < pos.min ? 'missing' : 'unexpected'} argument${pos.names ? ` (${pos.names})` : ''}.`);
    io.err(`Usage: ${command.usage}`);
    return 2;
  }

  let config: Config | null = null;
  const opened: { store: { db: Db; audit: AuditLog } | null } = { store: null };
  const cli: CliContext = {
    out: io.out,
    err: io.err,
    config() {
      if (!config) {
        try {
          config = loadConfig(io.env ?? process.env);
        } catch (e) {
          if (e instanceof ConfigError) throw new CliError(`the configuration has ${e.problems.length} problem(s):\n  - ${e.problems.join('\n  - ')}`, 2);
          throw e;
        }
      }
      return config;
    },
    store() {
      if (!opened.store) {
        const db = openDb(cli.config().dataDir);
        opened.store = { db, audit: createAuditLog(db) };
      }
      return opened.store;
    },
    actor() {
      let name = 'unknown';
      try {
        name = os.userInfo().username;
      } catch {
        /* no passwd entry */
      }
      return { kind: 'system', name: `cli:${name}` };
    },
  };
  try {
    return await command.run({ values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals }, cli);
  } catch (e) {
    if (e instanceof CliError) {
      io.err(`uplink: ${e.message}`);
      return e.exitCode;
    }
    if (e instanceof AppError) {
      io.err(`uplink: ${e.message}`);
      return e.code === 'BAD_REQUEST' ? 2 : 1;
    }
    io.err(`uplink: failed: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    opened.store?.db.close();
  }
}

/** bin/uplink.js calls this. */
export async function main(argv: string[]): Promise<number> {
  return run(argv, { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) });
}
