// Upload codes as typed: 75 random bits in 15 Crockford base32 characters plus a mod-37 check character,
// grouped in fours; reading ignores case, spaces and dashes and maps O->0, I/L->1; every single wrong
// character and every swap of neighbours is caught by the check character.
import t from 'tap';
import { ALPHABET, CODE_CHARS, RANDOM_BITS, checkValue, formatCode, generateCode, hashCode, parseCode } from '../../appliance/codes/code-format.ts';

const canon = (c: string) => c.replace(/-/g, '');

t.test('format of generated codes', async (t) => {
  t.ok(RANDOM_BITS >= 60, `${RANDOM_BITS} random bits`);
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const c = generateCode();
    seen.add(c);
    if (!/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/.test(c)) t.fail(`bad format: ${c}`);
    const p = parseCode(c);
    if (!p.ok || p.canonical !== canon(c)) t.fail(`does not parse back: ${c}`);
  }
  t.equal(seen.size, 2000, '2000 distinct codes');
  // Every character position varies (a fixed position would mean lost randomness).
  const codes = [...seen].map(canon);
  for (let pos = 0; pos < CODE_CHARS - 1; pos++) t.ok(new Set(codes.map((c) => c[pos])).size > 20, `position ${pos} takes many values`);
});

t.test('a fixed random source gives the expected code (top 75 bits, check value < 32)', async (t) => {
  const zeros = generateCode(() => Buffer.alloc(10));
  t.equal(zeros, '0000-0000-0000-0000');
  // 0xFF...: 15 x "Z" has check value (32^15 - 1) mod 37; if >= 32 the generator draws again.
  let calls = 0;
  const c = generateCode((n) => (calls++ === 0 ? Buffer.alloc(n, 0xff) : Buffer.alloc(n, 0x11)));
  const check = checkValue('Z'.repeat(15));
  if (check < 32) t.equal(c, formatCode('Z'.repeat(15) + ALPHABET[check]));
  else t.equal(calls, 2, 'drawn again when the check would be one of * ~ $ = U');
});

t.test('reading is forgiving: case, spaces, dashes, O/0, I/L/1', async (t) => {
  const c = generateCode();
  const flat = canon(c);
  const want = { ok: true, canonical: flat };
  t.same(parseCode(c.toLowerCase()), want);
  t.same(parseCode(`  ${flat.slice(0, 8)} ${flat.slice(8)} `), want);
  t.same(parseCode(flat.split('').join('-')), want);
  t.same(parseCode(c.replace(/-/g, '–')), want, 'en dashes');
  const withZero = formatCode('0'.repeat(14) + '1' + ALPHABET[checkValue('0'.repeat(14) + '1')]);
  t.same(parseCode(withZero.replace(/0/g, 'O').replace(/1/g, 'l')), { ok: true, canonical: canon(withZero) });
  t.same(parseCode(withZero.replace(/1/g, 'I')), { ok: true, canonical: canon(withZero) });
});

t.test('wrong input: empty, wrong length, foreign characters, wrong check', async (t) => {
  const flat = canon(generateCode());
  t.same(parseCode(''), { ok: false, reason: 'empty' });
  t.same(parseCode(' - '), { ok: false, reason: 'empty' });
  t.same(parseCode(flat.slice(0, 15)), { ok: false, reason: 'length' });
  t.same(parseCode(flat + '0'), { ok: false, reason: 'length' });
  t.same(parseCode(flat.slice(0, 15) + 'U'), { ok: false, reason: 'character' });
  t.same(parseCode(flat.slice(0, 4) + '!' + flat.slice(5)), { ok: false, reason: 'character' });
});

t.test('every single substitution and every adjacent swap is caught', async (t) => {
  let substitutions = 0;
  let swaps = 0;
  for (let n = 0; n < 40; n++) {
    const flat = canon(generateCode());
    for (let pos = 0; pos < CODE_CHARS; pos++) {
      for (const ch of ALPHABET) {
        if (ch === flat[pos]) continue;
        const typo = flat.slice(0, pos) + ch + flat.slice(pos + 1);
        const p = parseCode(typo);
        if (p.ok) t.fail(`substitution not caught: ${flat} -> ${typo}`);
        else substitutions++;
      }
    }
    for (let pos = 0; pos < CODE_CHARS - 1; pos++) {
      if (flat[pos] === flat[pos + 1]) continue;
      const typo = flat.slice(0, pos) + flat[pos + 1] + flat[pos] + flat.slice(pos + 2);
      const p = parseCode(typo);
      if (p.ok || p.reason !== 'check') t.fail(`swap not caught by the check character: ${flat} -> ${typo}`);
      else swaps++;
    }
  }
  t.ok(substitutions > 10000, `${substitutions} substitutions caught`);
  t.ok(swaps > 400, `${swaps} swaps caught`);
});

t.test('the stored hash: 32 bytes, stable, different per code', async (t) => {
  const a = canon(generateCode());
  const b = canon(generateCode());
  t.equal(hashCode(a).length, 32);
  t.same(hashCode(a), hashCode(a));
  t.notSame(hashCode(a), hashCode(b));
  t.notOk(hashCode(a).toString('hex').includes(Buffer.from(a).toString('hex')), 'the code is not inside its hash');
});
