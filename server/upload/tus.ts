/**
 * The resumable transfer: a tus 1.0 endpoint (@tus/server) at /upload/files, mounted in the Koa app behind
 * the session and CSRF middleware (the browser sends the session cookie and the X-CSRF-Token header; tus
 * needs no other authentication). Each tus upload is one file of an upload record (appliance/uploads):
 *   POST   creates it, only for a file of the session's own unfinished upload, with the size announced at
 *          START UPLOAD (Upload-Metadata: upload = reference, sop = SOP Instance UID; at most 2 KB);
 *   PATCH  appends a chunk; the response is sent once the chunk is fsynced (DurableFileStore), so an
 *          acknowledged offset survives a crash; the last chunk hands the file to the intake (a file without the
 *          DICOM Part 10 marker is refused at once: 415 with the reason);
 *   HEAD   the offset to resume at (a file already taken in answers "complete").
 * Other methods (GET, DELETE: cancelling is /upload/api/uploads/<ref>/cancel) are refused. Files live in
 * dataDir/staging/tus (not staging/incoming, which is swept at start): they survive a restart.
 */
import { IncomingMessage } from 'node:http';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';
import type { Context } from 'koa';
import { AppError, toAppError } from '../../appliance/errors.ts';
import type { Logger } from '../../appliance/log.ts';
import { fsyncPath } from '../../appliance/store/file-store.ts';
import { TUS_PATH, type Principal, type Uploads } from '../../appliance/uploads/uploads.ts';
import type { Config } from '../../config/schema.ts';
import { errorMessage } from '../web/errors.ts';
import { CSP } from '../web/security-headers.ts';

export const MAX_METADATA_BYTES = 2048;
const TUS_RESUMABLE = '1.0.0';

/**
 * The tus file store, with every chunk on disk (fsync) before its offset is acknowledged. It also notes the four
 * bytes at offset 128 as they pass (the DICOM Part 10 marker), so the intake need not read them back.
 */
export class DurableFileStore extends FileStore {
  private readonly markers = new Map<string, string>();

  /** The bytes at 128-131 of an upload, if they passed through this process (taken once). */
  takeMarker(fileId: string): string | undefined {
    const m = this.markers.get(fileId);
    this.markers.delete(fileId);
    return m;
  }

  override async write(readable: IncomingMessage | Readable, fileId: string, offset: number): Promise<number> {
    let source: IncomingMessage | Readable = readable;
    if (offset < 132) {
      let at = offset;
      const seen: number[] = [];
      source = readable.pipe(
        new Transform({
          transform: (chunk: Buffer, _enc, done) => {
            for (let i = Math.max(128, at); i < 132 && i < at + chunk.length; i++) seen[i - 128] = chunk[i - at];
            at += chunk.length;
            if (seen.length === 4 && !seen.includes(undefined as unknown as number)) this.markers.set(fileId, Buffer.from(seen).toString('latin1'));
            done(null, chunk);
          },
        }),
      );
      readable.on('error', (e) => source.destroy(e));
    }
    const end = await super.write(source, fileId, offset);
    try {
      await fsyncPath(path.join(this.directory, fileId));
    } catch (e) {
      // Removed while it was being written (the upload was cancelled): nothing left to make durable.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return end;
  }
}

interface RequestFacts {
  principal: Principal;
  ctx: Context;
}

/** A tus hook's refusal: the status and a JSON body the browser shows ({error, message} as everywhere). */
function refusal(ctx: Context, err: AppError): { status_code: number; body: string } {
  return { status_code: err.kind.http, body: JSON.stringify({ error: err.code, message: errorMessage(ctx, err) }) };
}

export interface TusEndpoint {
  /** The Koa handler for TUS_PATH and TUS_PATH/<id> (after the session and CSRF middleware). */
  handle(ctx: Context, principal: Principal): Promise<void>;
}

export function createTusEndpoint(deps: { config: Config; uploads: Uploads; log: Logger }): TusEndpoint {
  const { config, uploads, log } = deps;
  const facts = new WeakMap<IncomingMessage, RequestFacts>();
  const factsOf = (req: unknown): RequestFacts | undefined => {
    const node = (req as { runtime?: { node?: { req?: IncomingMessage } } }).runtime?.node?.req;
    return node ? facts.get(node) : undefined;
  };

  const datastore = new DurableFileStore({ directory: uploads.tusDir });
  const server = new Server({
    path: TUS_PATH,
    datastore,
    maxSize: config.upload.maxFileBytes,
    relativeLocation: true,
    // Same origin only: no CORS headers for anyone.
    allowedOrigins: [],
    disableTerminationForFinishedUploads: true,
    async onUploadCreate(req, upload) {
      const f = factsOf(req);
      if (!f) throw { status_code: 401, body: '{"error":"SESSION_EXPIRED"}' };
      try {
        if (upload.sizeIsDeferred) throw new AppError('BAD_REQUEST', 'The file\'s size must be given.');
        const meta = upload.metadata ?? {};
        const file = uploads.authorizeCreate(f.principal, { upload: meta.upload, sop: meta.sop }, upload.size);
        uploads.fileCreated(file, upload.id);
        return { metadata: { upload: String(meta.upload), sop: String(meta.sop) } };
      } catch (e) {
        throw refusal(f.ctx, toAppError(e));
      }
    },
    async onUploadFinish(req, upload) {
      const f = factsOf(req);
      const r = await uploads.received(upload.id, datastore.takeMarker(upload.id));
      if (r.ok) return {};
      const ctx = f?.ctx;
      const body = ctx ? refusal(ctx, r.error).body : JSON.stringify({ error: r.error.code, message: r.error.message });
      return { status_code: r.error.kind.http, body, headers: { 'Content-Type': 'application/json' } };
    },
    onResponseError(_req, err) {
      if (err instanceof Error) log.error({ err }, 'tus request failed');
      return undefined;
    },
  });

  /** What tus would say for a file whose bytes have all been taken in already: complete. */
  const complete = (ctx: Context, size: number, status: number) => {
    ctx.status = status;
    ctx.set('Tus-Resumable', TUS_RESUMABLE);
    ctx.set('Upload-Offset', String(size));
    ctx.set('Upload-Length', String(size));
    ctx.set('Cache-Control', 'no-store');
    ctx.body = status === 204 ? null : '';
  };

  return {
    async handle(ctx, principal) {
      const method = ctx.method;
      if (!['POST', 'HEAD', 'PATCH'].includes(method)) throw new AppError('NOT_FOUND');
      if (ctx.get('Upload-Metadata').length > MAX_METADATA_BYTES) throw new AppError('TOO_LARGE', 'The upload\'s metadata is too large.');
      const sub = ctx.path.slice(TUS_PATH.length);
      if (method === 'POST' ? sub !== '' && sub !== '/' : !/^\/[A-Za-z0-9_-]{1,64}$/.test(sub)) throw new AppError('NOT_FOUND');
      if (method !== 'POST') {
        const found = uploads.forTus(principal, sub.slice(1));
        if (!found) throw new AppError('NOT_FOUND');
        if (found.file.state !== 'receiving') {
          // Taken in already (or refused, or of an ended upload): nothing more to receive for this file.
          ctx.req.resume();
          if (found.file.state === 'expected' || found.file.state === 'discarded') throw new AppError('NOT_FOUND');
          return complete(ctx, found.file.size, method === 'HEAD' ? 200 : 204);
        }
      }
      // tus writes the response itself; give it our headers first (they merge with its own).
      ctx.status = 200;
      ctx.respond = false;
      const res = ctx.res;
      res.setHeader('Content-Security-Policy', CSP);
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Referrer-Policy', 'no-referrer');
      res.setHeader('Cache-Control', 'no-store');
      facts.set(ctx.req, { principal, ctx });
      try {
        await server.handle(ctx.req, res);
      } finally {
        facts.delete(ctx.req);
      }
      // Koa must neither answer again nor turn tus's own 404 into an error page.
      ctx.body = '';
    },
  };
}
