/**
 * Static files from views/static under /static/: the CSS, htmx (copied in by views/build.mjs) and the browser
 * bundle. Revalidated on every use (`no-cache` with an ETag), so a rebuilt bundle is picked up at once;
 * dotfiles and anything outside the folder are never served.
 */
import { createReadStream, statSync } from 'node:fs';
import path from 'node:path';
import type { Middleware } from 'koa';

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

export function createStatic(opts: { root: string; prefix: string }): Middleware {
  const root = path.resolve(opts.root);
  return async (ctx, next) => {
    if (!ctx.path.startsWith(opts.prefix) || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    let rel: string;
    try {
      rel = decodeURIComponent(ctx.path.slice(opts.prefix.length));
    } catch {
      return next();
    }
    if (rel.includes('\0') || rel.split('/').some((seg) => seg === '..' || seg.startsWith('.'))) return next();
    const file = path.resolve(root, rel);
    if (!file.startsWith(root + path.sep)) return next();
    let st;
    try {
      st = statSync(file);
    } catch {
      return next();
    }
    if (!st.isFile()) return next();
    const etag = `W/"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('ETag', etag);
    ctx.set('Last-Modified', st.mtime.toUTCString());
    ctx.type = TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    if (ctx.get('If-None-Match') === etag) {
      ctx.status = 304;
      return;
    }
    if (ctx.method === 'HEAD') {
      ctx.status = 200;
      ctx.length = st.size;
      return;
    }
    ctx.body = createReadStream(file);
    ctx.length = st.size;
  };
}
