// Log-in throttling: per address (IPv6 by /64) and per user name (any case, any address), sliding windows, the
// longer wait reported, a success clearing the name (not the address), bounded memory.
import t from 'tap';
import { createLoginThrottle, userKey } from '../../appliance/users/login-throttle.ts';

function clock() {
  let now = 5_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

t.test('per user name: from any address, in any case', async (t) => {
  const c = clock();
  const th = createLoginThrottle({ perAddress: 100, perUser: 3, windowMs: 60_000, now: c.now });
  th.fail('10.0.0.1', 'Alice');
  c.advance(1000);
  th.fail('10.0.0.2', 'alice ');
  c.advance(1000);
  t.equal(th.check('10.0.0.3', 'ALICE'), null, 'two failures: still allowed');
  th.fail('10.0.0.3', 'alice');
  const b = th.check('10.9.9.9', 'alice');
  t.match(b, { scope: 'user' }, 'the third failure blocks the name everywhere');
  t.equal(b!.retryAfterMs, 60_000 - 2000, 'until the oldest failure leaves the window');
  t.equal(th.check('10.0.0.1', 'bob'), null, 'other names are not blocked');
  c.advance(58_001);
  t.equal(th.check('10.0.0.1', 'alice'), null, 'the oldest failure left the window');
  t.equal(th.counts('10.0.0.1', 'alice').user, 2);
});

t.test('per address; IPv6 counted by /64; IPv4-mapped as IPv4', async (t) => {
  const c = clock();
  const th = createLoginThrottle({ perAddress: 2, perUser: 100, windowMs: 60_000, now: c.now });
  th.fail('2001:db8:1:2::10', 'a');
  th.fail('2001:db8:1:2:ffff::1', 'b');
  t.match(th.check('2001:db8:1:2::99', 'c'), { scope: 'address' }, 'same /64: blocked for every name');
  t.equal(th.check('2001:db8:1:3::1', 'c'), null, 'another /64 is not');
  th.fail('::ffff:192.0.2.7', 'x');
  th.fail('192.0.2.7', 'y');
  t.match(th.check('192.0.2.7', 'z'), { scope: 'address' });
});

t.test('both blocked: the longer wait; success clears the name, not the address', async (t) => {
  const c = clock();
  const th = createLoginThrottle({ perAddress: 3, perUser: 2, windowMs: 60_000, now: c.now });
  th.fail('10.0.0.1', 'x'); // address: t0
  c.advance(10_000);
  th.fail('10.0.0.1', 'alice'); // address t0+10s, alice t0+10s
  c.advance(10_000);
  th.fail('10.0.0.1', 'alice'); // address full (3), alice full (2)
  const b = th.check('10.0.0.1', 'alice');
  t.match(b, { scope: 'user', retryAfterMs: 50_000 }, 'the name waits longer (its oldest failure is newer)');
  th.succeed('alice');
  t.equal(th.counts('10.0.0.1', 'alice').user, 0, 'the name is cleared');
  t.match(th.check('10.0.0.1', 'alice'), { scope: 'address', retryAfterMs: 40_000 }, 'the address stays blocked');
});

t.test('memory is bounded', async (t) => {
  const c = clock();
  const th = createLoginThrottle({ perAddress: 1000, perUser: 2, windowMs: 60_000, maxKeys: 3, now: c.now });
  for (const n of ['a', 'b', 'c', 'd']) th.fail('10.0.0.1', n);
  t.equal(th.counts('10.0.0.1', 'a').user, 0, 'the least recently failed name was forgotten');
  t.equal(th.counts('10.0.0.1', 'd').user, 1);
  for (let i = 0; i < 10; i++) th.fail('10.0.0.2', 'd');
  t.equal(th.counts('10.0.0.2', 'd').user, 2, 'at most the limit of timestamps per key');
  t.equal(userKey('  ÄLICE\u00a0'), 'älice', 'names trimmed, NFKC, lower case');
});
