/**
 * Request bodies of forms and small JSON documents, read once (cached on the context) with a size cap.
 * Other content types (e.g. tus chunks) are never read here: their routes stream them.
 */
import type { Context } from 'koa';
import { AppError } from '../../appliance/errors.ts';

const FORM = 'application/x-www-form-urlencoded';
const JSON_TYPE = 'application/json';

async function readRaw(ctx: Context, limit: number): Promise<string> {
  const cached = ctx.state.rawBody as Promise<string> | undefined;
  if (cached) return cached;
  const p = (async () => {
    const declared = Number(ctx.get('Content-Length') || 0);
    if (declared > limit) throw new AppError('TOO_LARGE', 'The form is too large.');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw new AppError('TOO_LARGE', 'The form is too large.');
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  })();
  ctx.state.rawBody = p;
  return p;
}

export function isForm(ctx: Context): boolean {
  return ctx.is(FORM) === FORM;
}

export function isJson(ctx: Context): boolean {
  return ctx.is(JSON_TYPE) === JSON_TYPE;
}

/** The fields of an urlencoded form (empty when the request is not one). */
export async function readForm(ctx: Context, limit = 64 * 1024): Promise<URLSearchParams> {
  if (!isForm(ctx)) return new URLSearchParams();
  return new URLSearchParams(await readRaw(ctx, limit));
}

/** A JSON body; BAD_REQUEST if it is not JSON. */
export async function readJson(ctx: Context, limit = 1024 * 1024): Promise<unknown> {
  if (!isJson(ctx)) throw new AppError('BAD_REQUEST', 'Expected a JSON body.');
  const text = await readRaw(ctx, limit);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AppError('BAD_REQUEST', 'The body is not valid JSON.');
  }
}
