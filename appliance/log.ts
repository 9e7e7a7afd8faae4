/**
 * Structured logging (JSON lines on stdout, pino). One child logger per category. Never log patient names,
 * IDs or dataset dumps: log UIDs, database ids and status codes.
 */
import { pino, type Logger } from 'pino';

export type { Logger };
export type Category = 'main' | 'dicom' | 'http' | 'intake' | 'scan' | 'forward' | 'db' | 'audit' | 'store' | 'cli';

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

export function child(root: Logger, category: Category): Logger {
  return root.child({ cat: category });
}

/** A logger that writes nothing, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
