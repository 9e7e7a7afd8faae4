/** Set-Cookie written by hand (Koa's cookies refuse `Secure` on a plain connection behind a TLS proxy). */
import type { Context } from 'koa';

export interface CookieOptions {
  httpOnly?: boolean;
  secure: boolean;
  sameSite?: 'Strict' | 'Lax';
  /** Omitted: a browser-session cookie. */
  maxAgeSeconds?: number;
}

export function setCookie(ctx: Context, name: string, value: string, opts: CookieOptions): void {
  if (!/^[\w.-]+$/.test(name) || !/^[\w.~-]*$/.test(value)) throw new Error('cookie name or value with unsafe characters');
  const parts = [`${name}=${value}`, 'Path=/', `SameSite=${opts.sameSite ?? 'Strict'}`];
  if (opts.httpOnly !== false) parts.push('HttpOnly');
  if (opts.secure) parts.push('Secure');
  if (opts.maxAgeSeconds !== undefined) parts.push(`Max-Age=${Math.floor(opts.maxAgeSeconds)}`);
  ctx.append('Set-Cookie', parts.join('; '));
}

export function clearCookie(ctx: Context, name: string, opts: { secure: boolean }): void {
  setCookie(ctx, name, '', { secure: opts.secure, maxAgeSeconds: 0 });
}

/** The value of a request cookie (first of that name), or undefined. */
export function getCookie(ctx: Context, name: string): string | undefined {
  const header = ctx.get('Cookie');
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
