/**
 * A small clamd client: TCP, "z" commands (NUL-terminated), INSTREAM with backpressure, one deadline per call.
 *
 * Why not node-clamav (the pinned dependency), read in node_modules/node-clamav/index.js, 1.0.11:
 *  - `ping()` / `version()` call `socket.setTimeout()` without a 'timeout' listener, so against a clamd that
 *    accepts and never answers they never settle (and leak the socket): unusable for a health check.
 *  - `scanStream()` arms its deadline timer and clears it only on 'data'/'end': after a refused connection or
 *    a read error it keeps running (holding the event loop open for the whole deadline) and the socket is
 *    not closed; the caller cannot abort a scan.
 *  - Its reply check `isCleanReply` is a substring test ("OK" anywhere and no "FOUND"); when clamd refuses a
 *    stream early ("INSTREAM size limit exceeded. ERROR") the reply can be lost to the EPIPE of the next write.
 * Failing closed needs every outcome distinct and every path to end the socket, so this file does the
 * protocol itself (about 150 lines) and throws AppError('SCANNER_UNAVAILABLE', reason) for anything that
 * is not a definite answer.
 */
import net from 'node:net';
import type { Readable } from 'node:stream';
import { AppError } from '../errors.ts';
import type { ScanResult } from './scanner.ts';

export interface ClamdAddress {
  host: string;
  port: number;
}

export interface InstreamReply {
  /** clamd's reply without the NUL terminator, e.g. "stream: OK". */
  reply: string;
  /** Whether the whole input (and the terminating zero-length chunk) was handed to the socket before the reply came. */
  complete: boolean;
  /** Bytes of input sent. */
  bytes: number;
}

function unavailable(reason: string, cause?: unknown): AppError {
  return new AppError('SCANNER_UNAVAILABLE', reason, cause === undefined ? undefined : { cause });
}

/** A reply made printable and short enough for an error message or a log line. */
export function printable(text: string): string {
  const t = text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return t.length > 200 ? `${t.slice(0, 200)}...` : t;
}

function socketFailure(err: NodeJS.ErrnoException, at: string): AppError {
  switch (err.code) {
    case 'ECONNREFUSED':
      return unavailable(`clamd at ${at} refused the connection (not running?)`, err);
    case 'ECONNRESET':
    case 'EPIPE':
      return unavailable(`clamd at ${at} closed the connection before answering`, err);
    default:
      return unavailable(`cannot talk to clamd at ${at}: ${err.code ?? err.message}`, err);
  }
}

/**
 * One connection: `start(socket, sent)` writes the request; the promise resolves with the text before the
 * first NUL clamd sends, or rejects (SCANNER_UNAVAILABLE) on refusal, reset, close without a reply or the
 * deadline. The socket is destroyed on every path and the timer always cleared.
 */
function exchange(
  addr: ClamdAddress,
  timeoutMs: number,
  start: (socket: net.Socket, fail: (err: Error) => void) => void,
  onSettle?: () => void,
): Promise<string> {
  const at = `${addr.host}:${addr.port}`;
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    let got: Buffer = Buffer.alloc(0);
    const socket = net.connect({ host: addr.host, port: addr.port });
    const finish = (err: Error | null, reply?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      onSettle?.();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(
      () => finish(unavailable(`no answer from clamd at ${at} within ${(timeoutMs / 1000).toFixed(timeoutMs < 10000 ? 1 : 0)} s`)),
      timeoutMs,
    );
    socket.setNoDelay(true);
    socket.on('connect', () => start(socket, (err) => finish(err)));
    socket.on('data', (chunk: Buffer) => {
      got = got.length ? Buffer.concat([got, chunk]) : chunk;
      const nul = got.indexOf(0);
      if (nul >= 0) finish(null, got.subarray(0, nul).toString('utf8'));
      else if (got.length > 64 * 1024) finish(unavailable(`clamd at ${at} sent an overlong reply: ${printable(got.toString('utf8'))}`));
    });
    socket.on('end', () =>
      finish(unavailable(got.length ? `clamd at ${at} sent an incomplete reply: ${printable(got.toString('utf8'))}` : `clamd at ${at} closed the connection without an answer`)),
    );
    socket.on('error', (err: NodeJS.ErrnoException) => finish(socketFailure(err, at)));
    socket.on('close', () => finish(unavailable(`clamd at ${at} closed the connection without an answer`)));
  });
}

/** A one-line command (PING, VERSION, STATS ...) with its own deadline; resolves with the reply text. */
export function clamdCommand(addr: ClamdAddress, command: string, timeoutMs: number): Promise<string> {
  return exchange(addr, timeoutMs, (socket) => {
    socket.write(`z${command}\0`);
  });
}

/**
 * INSTREAM `source` (a Buffer or a byte stream, e.g. a file's read stream) to clamd in length-prefixed chunks,
 * honouring backpressure, and return clamd's reply. The deadline covers connect, transfer and scan. A stream
 * passed in is destroyed when the call ends. Errors of `source` itself are rethrown unchanged.
 */
export async function instream(addr: ClamdAddress, source: Buffer | Readable, timeoutMs: number, chunkBytes = 256 * 1024): Promise<InstreamReply> {
  let complete = false;
  let bytes = 0;
  let stopped = false;
  const destroySource = () => {
    stopped = true;
    if (!Buffer.isBuffer(source)) source.destroy();
  };
  // An error of the source before we connect (e.g. a path stream that cannot open its file) must not be an
  // unhandled 'error' event; the stream keeps it and the read loop below rethrows it.
  if (!Buffer.isBuffer(source)) source.on('error', () => undefined);
  const exchanged = exchange(
    addr,
    timeoutMs,
    (socket, fail) => {
      const waitDrain = () =>
        new Promise<void>((resolve) => {
          const done = () => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        });
      const send = async (chunk: Buffer) => {
        const head = Buffer.allocUnsafe(4);
        head.writeUInt32BE(chunk.length, 0);
        socket.cork();
        socket.write(head);
        const ok = socket.write(chunk);
        socket.uncork();
        bytes += chunk.length;
        if (!ok) await waitDrain();
      };
      (async () => {
        socket.write('zINSTREAM\0');
        if (Buffer.isBuffer(source)) {
          for (let off = 0; off < source.length && !stopped; off += chunkBytes) await send(source.subarray(off, off + chunkBytes));
        } else {
          for await (const chunk of source as AsyncIterable<Buffer>) {
            for (let off = 0; off < chunk.length && !stopped; off += chunkBytes) await send(chunk.subarray(off, off + chunkBytes));
            if (stopped) return;
          }
        }
        if (stopped) return;
        socket.write(Buffer.alloc(4)); // zero-length chunk: end of stream
        complete = true;
      })().catch((err: unknown) => {
        if (!stopped) fail(err as Error); // a read error of the source: not the scanner's fault, rethrown as is
      });
    },
    destroySource,
  );
  try {
    return { reply: await exchanged, complete, bytes };
  } catch (e) {
    // clamd refuses an over-long stream by replying "INSTREAM size limit exceeded. ERROR" and closing with
    // our data unread (a reset); the write of data still queued then often fails (EPIPE/ECONNRESET) before the
    // reply is read, and Node discards it. `complete` only says everything was handed to the socket.
    const code = ((e as AppError).cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'EPIPE' || code === 'ECONNRESET')
      throw unavailable(
        `clamd at ${addr.host}:${addr.port} reset the connection during the scan (${bytes} bytes handed over; clamd does this to a stream longer than its StreamMaxLength, or when it stops)`,
        e,
      );
    throw e;
  }
}

/**
 * Turn an INSTREAM reply into a verdict, strictly: "stream: OK" after the whole input was sent is clean,
 * "stream: <name> FOUND" is infected (ExtendedDetectionInfo's "(<hash>:<size>)" suffix is dropped);
 * anything else, including "... ERROR" replies such as "INSTREAM size limit exceeded. ERROR", throws
 * SCANNER_UNAVAILABLE.
 */
export function parseScanReply(r: InstreamReply): ScanResult {
  const text = r.reply.trim();
  if (text === 'stream: OK') {
    if (!r.complete) throw unavailable('clamd answered OK before the whole file was sent');
    return { verdict: 'clean' };
  }
  const found = /^stream: (\S.*?) FOUND$/.exec(text);
  if (found) return { verdict: 'infected', signature: found[1].replace(/\([0-9a-f]{32,64}:\d+\)$/, '') };
  if (/ERROR$/.test(text)) throw unavailable(`clamd could not scan the file: ${printable(text)}`);
  throw unavailable(`clamd sent an unexpected reply: ${printable(text)}`);
}

/** "ClamAV 1.4.6/27431/Tue Nov 25 09:34:02 2026" -> engine "1.4.6", database 27431; without a database part, none. */
export function parseVersion(reply: string): { engine: string; database?: number } | null {
  const m = /^ClamAV ([^/\s]+)(?:\/(\d+)(?:\/.*)?)?$/.exec(reply.trim());
  if (!m) return null;
  return m[2] ? { engine: m[1], database: Number(m[2]) } : { engine: m[1] };
}
