/**
 * Upload codes as people read and type them: 15 Crockford base32 characters (75 random bits from a
 * cryptographic source) and one check character, grouped in fours: `7K3M-Q9TX-2HWD-R8PB`.
 *
 * The check character is Crockford's mod-37 check symbol of the 75-bit number. Because 37 is prime, it catches
 * every single wrong character and every swap of two neighbouring characters. Crockford's five extra check
 * symbols (`* ~ $ = U`) would be odd to read out over the phone, so a code whose check value is 32-36 is
 * simply drawn again: the check is then always one of the 32 ordinary characters (costs 0.2 bits: 74.8 remain).
 *
 * Reading is forgiving: case, spaces and dashes do not matter, and O is read as 0, I and L as 1.
 */
import { createHash, randomBytes } from 'node:crypto';

export const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const DATA_CHARS = 15;
export const CODE_CHARS = DATA_CHARS + 1;
export const RANDOM_BITS = DATA_CHARS * 5;

export type CodeParse = { ok: true; canonical: string } | { ok: false; reason: 'empty' | 'length' | 'character' | 'check' };

function value(chars: string): bigint {
  let v = 0n;
  for (const ch of chars) v = v * 32n + BigInt(ALPHABET.indexOf(ch));
  return v;
}

/** The check value (0-36) of 15 data characters. */
export function checkValue(data: string): number {
  return Number(value(data) % 37n);
}

/** `7K3MQ9TX2HWDR8PB` -> `7K3M-Q9TX-2HWD-R8PB`. */
export function formatCode(canonical: string): string {
  return canonical.match(/.{1,4}/g)!.join('-');
}

/** A new code, formatted. `random` is for tests only. */
export function generateCode(random: (n: number) => Buffer = randomBytes): string {
  for (;;) {
    const bytes = random(10); // 80 bits; the top 75 are used
    let v = 0n;
    for (const b of bytes) v = (v << 8n) | BigInt(b);
    v >>= 5n;
    let data = '';
    for (let i = 0; i < DATA_CHARS; i++) {
      data = ALPHABET[Number(v & 31n)] + data;
      v >>= 5n;
    }
    const check = checkValue(data);
    if (check < 32) return formatCode(data + ALPHABET[check]);
  }
}

/** Read what someone typed: the canonical 16 characters, or why it cannot be a code. */
export function parseCode(input: string): CodeParse {
  const s = input
    .toUpperCase()
    .replace(/[\s\-‐‑‒–—]/g, '')
    .replace(/O/g, '0')
    .replace(/[IL]/g, '1');
  if (s === '') return { ok: false, reason: 'empty' };
  if (![...s].every((ch) => ALPHABET.includes(ch))) return { ok: false, reason: 'character' };
  if (s.length !== CODE_CHARS) return { ok: false, reason: 'length' };
  const data = s.slice(0, DATA_CHARS);
  if (ALPHABET[checkValue(data)] !== s[DATA_CHARS]) return { ok: false, reason: 'check' };
  return { ok: true, canonical: s };
}

/** What is stored: SHA-256 of the canonical code (75 random bits make an offline search hopeless). */
export function hashCode(canonical: string): Buffer {
  return createHash('sha256').update(`uplink-upload-code:v1:${canonical}`).digest();
}
