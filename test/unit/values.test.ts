import assert from 'node:assert/strict';
import fc from 'fast-check';
import { inetNtop6, InvalidValue, parseCidr, parseDomainName, parseGuestAddressList, parseIfName, parseMac, printable, shown } from '../../src/net/index.js';
import { run } from '../../src/sys/exec.js';

describe('value types (src/net): one parser each, canonical or refused', () => {
  it('IfName: kernel-valid and safe in restore text and chain names', () => {
    for (const ok of ['vif5.0', 'eth0', 'web_0', 'a', 'x'.repeat(15), 'vif5.0-emu']) assert.equal(parseIfName(ok), ok);
    for (const bad of ['', 'x'.repeat(16), 'a b', 'a;b', 'a/b', 'a:b', 'vif+', '-x', '.x', 'a\nb', 'a"b', 'ä']) assert.throws(() => parseIfName(bad), /interface name/, JSON.stringify(bad));
  });

  it('Mac: unicast, not all-zero, not the backend address; lower case', () => {
    assert.equal(parseMac('00:16:3E:AA:BB:CC'), '00:16:3e:aa:bb:cc');
    for (const [bad, why] of [
      ['00:00:00:00:00:00', /all-zero/],
      ['ff:ff:ff:ff:ff:ff', /broadcast/],
      ['01:00:5e:00:00:01', /multicast/],
      ['33:33:00:00:00:01', /multicast/],
      ['fe:ff:ff:ff:ff:ff', /backend interfaces/],
      ['00:16:3e:00:00:01\n', /not a MAC/],
      [' 00:16:3e:00:00:01', /not a MAC/],
      ['0:16:3e:0:0:1', /not a MAC/],
      ['00-16-3e-00-00-01', /not a MAC/],
    ] as [string, RegExp][]) assert.throws(() => parseMac(bad), why, JSON.stringify(bad));
  });

  it('Cidr: strict input, canonical output, no /0, no host bits', () => {
    const t = (s: string, o = {}): string => {
      const c = parseCidr(s, 'a', o);
      return `${c.addr}/${c.len}`;
    };
    assert.equal(t('10.0.0.1'), '10.0.0.1/32');
    assert.equal(t('10.0.0.0/8'), '10.0.0.0/8');
    assert.equal(t('2001:DB8:0:0:0:0:0:1'), '2001:db8::1/128');
    assert.equal(t('2001:db8:0:1::/64'), '2001:db8:0:1::/64');
    assert.equal(t('1:0:0:1:0:0:0:1'), '1:0:0:1::1/128', 'the first of two equal zero runs is not the one compressed when the later is longer');
    assert.equal(t('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1/128');
    assert.equal(t('::ffff:0:0/96'), '::ffff:0.0.0.0/96', 'glibc writes IPv4-mapped prefixes with a dotted quad');
    for (const bad of ['10.1', '167772161', '0xa.0.0.1', '010.0.0.1', '10.0.0.256', '10.0.0.1/33', '10.0.0.1/08', '0.0.0.0/0', '::/0', 'fe80::1%eth0', '::ffff:1.2.3.4', '10.0.0.5/24', '1::2::3', '', '10.0.0.1 ', '10.0.0.1/']) {
      assert.throws(() => parseCidr(bad), InvalidValue, JSON.stringify(bad));
    }
    for (const bad of ['0.0.0.0', '127.0.0.1', '224.0.0.1', '255.255.255.255', '::', '::1', 'ff02::1', '::ffff:a00:1']) assert.throws(() => parseCidr(bad, 'a', { guest: true }), /not an address a guest/, bad);
    assert.throws(() => parseCidr('2001:db8::1', 'a', { family: 'ipv4' }), /is not an IPv4 address/);
  });

  it('inet_ntop6 writes exactly what glibc (and so ip6tables-save) writes', async () => {
    const samples = fc.sample(
      fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
      { numRuns: 300, seed: 7 },
    );
    const hex = samples.map((w) => w.map((x) => x.toString(16)).join(':'));
    const py = await run('python3', ['-c', 'import socket,sys\nfor l in sys.stdin.read().split():\n print(socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, l)))'], { input: hex.join('\n') });
    assert.equal(py.code, 0, py.stderr);
    const glibc = py.stdout.trim().split('\n');
    samples.forEach((w, i) => {
      const bytes = w.flatMap((x) => [x >> 8, x & 0xff]);
      assert.equal(inetNtop6(bytes), glibc[i], hex[i]);
    });
  });

  it('Xen ip lists: space or comma separated guest addresses', () => {
    assert.deepEqual(parseGuestAddressList('10.0.0.1 2001:db8::1,10.0.1.0/24').map((c) => `${c.addr}/${c.len}`), ['10.0.0.1/32', '2001:db8::1/128', '10.0.1.0/24']);
    assert.throws(() => parseGuestAddressList('10.0.0.1\n10.0.0.2'), /not an IPv4 or IPv6 address/);
  });

  it('DomainName and printable: no control characters reach a terminal', () => {
    assert.equal(parseDomainName('web 01'), 'web 01');
    for (const bad of ['', 'a\nb', 'a\x1b[31m', 'a\u202eb', 'x'.repeat(129)]) assert.throws(() => parseDomainName(bad), JSON.stringify(bad));
    assert.equal(printable('a\x1b[2Jb\nc\u202e'), 'a\\u001b[2Jb\\u000ac\\u202e');
    // Quoted as JSON quotes it: a backslash or quote in the value cannot end the quote or fake an escape.
    for (const v of ['plain', 'a\\" then b', '\\u001b', 'a"b', 'a\x1b[31mb\\']) assert.equal(JSON.parse(shown(v)), v, JSON.stringify(v));
    assert.equal(shown('x'.repeat(100), 10), `"${'x'.repeat(10)}..."`);
  });
});
