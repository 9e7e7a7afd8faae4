/**
 * Password hashing for console users: scrypt (node:crypto, no native add-on) at OWASP's recommended cost,
 * N = 2^17, r = 8, p = 1 (128 MiB and most of a second per hash on a small machine), a 16-byte random salt and
 * a 32-byte key, stored in PHC string form:
 *
 *   $scrypt$ln=17,r=8,p=1$<salt, base64 without padding>$<key, base64 without padding>
 *
 * The parameters travel with each hash, so a later, higher cost applies to new passwords while old hashes
 * still verify (`needsRehash` tells the login to upgrade them). Keys are compared in constant time. Passwords
 * are normalised (Unicode NFKC) first, so the same password typed on another keyboard layout still matches.
 *
 * scrypt runs on libuv's thread pool (never blocking the event loop); at most `MAX_CONCURRENT` hashes run at
 * once, so a burst of logins cannot take more than a few hundred MiB.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export const SCRYPT_COST = { ln: 17, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
const MAX_CONCURRENT = 2;
/** Bounds on parameters read from a stored hash (a damaged or hostile row must not exhaust memory). */
const LIMITS = { lnMin: 10, lnMax: 20, rMax: 32, pMax: 16 };

export interface ScryptParams {
  ln: number;
  r: number;
  p: number;
}

let running = 0;
const waiting: (() => void)[] = [];

async function withSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_CONCURRENT) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function derive(password: string, salt: Buffer, params: ScryptParams, keyLen: number): Promise<Buffer> {
  const N = 2 ** params.ln;
  const opts: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 128 * N * params.r + 32 * 1024 * 1024 };
  return withSlot(
    () =>
      new Promise<Buffer>((resolve, reject) =>
        scrypt(password.normalize('NFKC'), salt, keyLen, opts, (err, key) => (err ? reject(err) : resolve(key))),
      ),
  );
}

const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

/** A new hash of the password (fresh salt, current cost). */
export async function hashPassword(password: string, params: ScryptParams = SCRYPT_COST): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, params, KEY_BYTES);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

/** The parts of a stored hash, or null if it is not one of ours (or its parameters are out of bounds). */
export function parseHash(stored: string): { params: ScryptParams; salt: Buffer; key: Buffer } | null {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,64})\$([A-Za-z0-9+/]{16,128})$/.exec(stored);
  if (!m) return null;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.ln < LIMITS.lnMin || params.ln > LIMITS.lnMax || params.r < 1 || params.r > LIMITS.rMax || params.p < 1 || params.p > LIMITS.pMax) return null;
  const salt = Buffer.from(m[4], 'base64');
  const key = Buffer.from(m[5], 'base64');
  if (salt.length < 8 || key.length < 16) return null;
  return { params, salt, key };
}

/** Whether the password matches the stored hash (false for a hash that cannot be read). Constant-time compare. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) return false;
  const key = await derive(password, parsed.salt, parsed.params, parsed.key.length);
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}

/** A hash made at a lower cost than today's: hash the password again at the next successful login. */
export function needsRehash(stored: string, cost: ScryptParams = SCRYPT_COST): boolean {
  const parsed = parseHash(stored);
  if (!parsed) return true;
  const { ln, r, p } = parsed.params;
  return ln < cost.ln || r < cost.r || p < cost.p;
}

const dummies = new Map<string, Promise<string>>();

/**
 * Spend the time a real check takes, for a user name that does not exist (or a disabled user), so the answer
 * time does not tell which names exist. Always false.
 */
export async function verifyNothing(password: string, cost: ScryptParams = SCRYPT_COST): Promise<false> {
  const key = `${cost.ln},${cost.r},${cost.p}`;
  let dummy = dummies.get(key);
  if (!dummy) dummies.set(key, (dummy = hashPassword('uplink-no-such-user', cost)));
  await verifyPassword(password, await dummy);
  return false;
}

/** Rules for a new password; null when it is acceptable, else the rule it breaks (for the message). */
export function passwordProblem(password: string, opts: { minLength: number; userName?: string }): string | null {
  const chars = [...password.normalize('NFKC')];
  if (chars.length < opts.minLength) return `The password must be at least ${opts.minLength} characters long.`;
  if (chars.length > 1024) return 'The password must be at most 1024 characters long.';
  if (/[\x00-\x1f\x7f]/.test(password)) return 'The password must not contain control characters.';
  if (opts.userName && password.trim().toLowerCase() === opts.userName.trim().toLowerCase()) return 'The password must not be the user name.';
  if (new Set(chars).size < 4) return 'The password needs more different characters.';
  return null;
}
