/** Address learning, the pure parts: what a logged packet says, and the bindings it makes. */
import assert from 'node:assert/strict';
import { nlAttr, u32be } from './lib/nlattr.js';
import { decide, expire, MAX_PER_PORT, type Binding } from '../../src/firewall/learning/bindings.js';
import { readLearnPacket } from '../../src/firewall/learning/packets.js';
import { learnedScript, parseLearnedJson } from '../../src/firewall/nftables/learned.js';
import { parseLoggedPacket } from '../../src/bridge/nl/nflog.js';
import { parsePolicy } from '../../src/config/load.js';
import { learnedAddressesByVif, readBindings, updateBindings } from '../../src/firewall/learning/state.js';
import { silentLogger } from '../../src/sys/log.js';
import { currentBootId } from '../../src/sys/boot.js';
import { compile } from '../../src/firewall/compile.js';
import { compileVifNft } from '../../src/firewall/nftables/compile.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import { learnedIpsetLines, learnedSetCreates, parseLearnedIpset, setsReadBy } from '../../src/firewall/xtables/learned.js';
import { parseCidr as cidrOf, type DomainName, type IfName, type Mac } from '../../src/net/index.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ip4 = (a: string): number[] => a.split('.').map(Number);
function ipv4Udp(src: string, dst: string, sport: number, dport: number, data: Buffer): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + data.length, 4);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + data.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from(ip4(src)).copy(ip, 12);
  Buffer.from(ip4(dst)).copy(ip, 16);
  return Buffer.concat([ip, udp, data]);
}
function bootp(op: number, ciaddr: string, yiaddr: string, options: number[]): Buffer {
  const b = Buffer.alloc(240);
  b[0] = op;
  b[1] = 1;
  b[2] = 6;
  Buffer.from(ip4(ciaddr)).copy(b, 12);
  Buffer.from(ip4(yiaddr)).copy(b, 16);
  b.writeUInt32BE(0x63825363, 236);
  return Buffer.concat([b, Buffer.from([...options, 255])]);
}
const ack = (yiaddr: string, lease: number): Buffer => ipv4Udp('192.168.0.1', '255.255.255.255', 67, 68, bootp(2, '0.0.0.0', yiaddr, [53, 1, 5, 51, 4, (lease >>> 24) & 255, (lease >>> 16) & 255, (lease >>> 8) & 255, lease & 255]));
const v6 = (a: string): Buffer => {
  const parts = a.split('::');
  const head = parts[0] ? parts[0].split(':') : [];
  const tail = parts[1] ? parts[1].split(':') : [];
  const words = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(parseInt(w, 16), i * 2));
  return b;
};
function ipv6(src: string, nh: number, payload: Buffer, hop = 64): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(payload.length, 4);
  h[6] = nh;
  h[7] = hop;
  v6(src).copy(h, 8);
  v6('ff02::1:2').copy(h, 24);
  return Buffer.concat([h, payload]);
}
function dhcp6Reply(type: number, address: string, valid: number): Buffer {
  const iaaddr = Buffer.alloc(28);
  iaaddr.writeUInt16BE(5, 0);
  iaaddr.writeUInt16BE(24, 2);
  v6(address).copy(iaaddr, 4);
  iaaddr.writeUInt32BE(valid, 24);
  const iana = Buffer.concat([Buffer.from([0, 3, 0, 12 + 28]), Buffer.alloc(12), iaaddr]);
  const msg = Buffer.concat([Buffer.from([type, 1, 2, 3]), iana]);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(type === 7 ? 547 : 546, 0);
  udp.writeUInt16BE(type === 7 ? 546 : 547, 2);
  udp.writeUInt16BE(8 + msg.length, 4);
  return ipv6('fe80::1', 17, Buffer.concat([udp, msg]));
}

describe('address learning: packets', () => {
  it('reads a DHCPACK\'s address and lease on its way to the guest, and nothing from a guest\'s own ACK', () => {
    assert.deepEqual(readLearnPacket(0x0800, ack('192.168.0.50', 3600), true), { kind: 'dhcp-ack', address: '192.168.0.50', leaseSeconds: 3600 });
    assert.deepEqual(readLearnPacket(0x0800, ack('192.168.0.50', 0xffffffff), true), { kind: 'dhcp-ack', address: '192.168.0.50', leaseSeconds: null });
    assert.equal(readLearnPacket(0x0800, ack('192.168.0.50', 3600), false), undefined, 'from the guest: not a reply');
    // An echoed client identifier (RFC 6842) of another hardware address: another client's lease.
    const withId = (id: number[]): Buffer => ipv4Udp('192.168.0.1', '255.255.255.255', 67, 68, bootp(2, '0.0.0.0', '192.168.0.50', [53, 1, 5, 51, 4, 0, 0, 14, 16, 61, id.length, ...id]));
    assert.deepEqual(readLearnPacket(0x0800, withId([1, 0, 0, 0, 0, 0, 0]), true), { kind: 'dhcp-ack', address: '192.168.0.50', leaseSeconds: 3600 }, 'its own (the chaddr)');
    assert.equal(readLearnPacket(0x0800, withId([1, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]), true), undefined, 'a LAN host\'s identifier');
    assert.deepEqual(readLearnPacket(0x0800, withId([255, 1, 2, 3, 4, 0, 1, 0, 1]), true)?.kind, 'dhcp-ack', 'an RFC 4361 identifier (IAID and DUID) is not a hardware address to compare');
  });

  it('refuses what does not parse whole: truncated, options past the end, no lease, unusable addresses, fragments', () => {
    const good = ack('192.168.0.50', 3600);
    for (let n = 0; n < good.length; n += 7) assert.equal(readLearnPacket(0x0800, good.subarray(0, n), true), undefined, `truncated at ${n}`);
    const noLease = ipv4Udp('192.168.0.1', '255.255.255.255', 67, 68, bootp(2, '0.0.0.0', '192.168.0.50', [53, 1, 5]));
    assert.equal(readLearnPacket(0x0800, noLease, true), undefined);
    const overrun = ipv4Udp('192.168.0.1', '255.255.255.255', 67, 68, bootp(2, '0.0.0.0', '192.168.0.50', [53, 1, 5, 51, 200, 0]));
    assert.equal(readLearnPacket(0x0800, overrun, true), undefined);
    for (const bad of ['0.0.0.0', '255.255.255.255', '127.0.0.1', '224.0.0.1']) assert.equal(readLearnPacket(0x0800, ack(bad, 60), true), undefined, bad);
    const frag = Buffer.from(good);
    frag.writeUInt16BE(0x2000, 6);
    assert.equal(readLearnPacket(0x0800, frag, true), undefined, 'a fragment');
    const offer = ipv4Udp('192.168.0.1', '255.255.255.255', 67, 68, bootp(2, '0.0.0.0', '192.168.0.50', [53, 1, 2, 51, 4, 0, 0, 1, 0]));
    assert.equal(readLearnPacket(0x0800, offer, true), undefined, 'an OFFER binds nothing');
  });

  it('reads the guest\'s DHCPRELEASE (ciaddr) and DHCPDECLINE (option 50)', () => {
    const release = ipv4Udp('192.168.0.50', '192.168.0.1', 68, 67, bootp(1, '192.168.0.50', '0.0.0.0', [53, 1, 7]));
    assert.deepEqual(readLearnPacket(0x0800, release, false), { kind: 'dhcp-release', address: '192.168.0.50' });
    const decline = ipv4Udp('0.0.0.0', '255.255.255.255', 68, 67, bootp(1, '0.0.0.0', '0.0.0.0', [53, 1, 4, 50, 4, 192, 168, 0, 51]));
    assert.deepEqual(readLearnPacket(0x0800, decline, false), { kind: 'dhcp-release', address: '192.168.0.51' });
  });

  it('reads a DHCPv6 Reply\'s IA_NA addresses and valid lifetimes, and the guest\'s Release', () => {
    assert.deepEqual(readLearnPacket(0x86dd, dhcp6Reply(7, '2001:db8::151', 3600), true), { kind: 'dhcpv6-reply', addresses: [{ address: '2001:db8::151', validSeconds: 3600 }] });
    assert.deepEqual(readLearnPacket(0x86dd, dhcp6Reply(8, '2001:db8::151', 0), false), { kind: 'dhcpv6-release', addresses: ['2001:db8::151'] });
    assert.equal(readLearnPacket(0x86dd, dhcp6Reply(2, '2001:db8::151', 3600), true), undefined, 'an Advertise binds nothing');
  });

  it('reads DAD (NS from ::, hop limit 255) and ARP probes (sender 0.0.0.0)', () => {
    const ns = Buffer.concat([Buffer.from([135, 0, 0, 0, 0, 0, 0, 0]), v6('2001:db8::77')]);
    assert.deepEqual(readLearnPacket(0x86dd, ipv6('::', 58, ns, 255), false), { kind: 'dad', address: '2001:db8::77' });
    assert.equal(readLearnPacket(0x86dd, ipv6('::', 58, ns, 64), false), undefined, 'hop limit below 255');
    assert.equal(readLearnPacket(0x86dd, ipv6('fe80::1', 58, ns, 255), false), undefined, 'not from ::');
    const arp = Buffer.alloc(28);
    arp.writeUInt16BE(1, 0);
    arp.writeUInt16BE(0x0800, 2);
    arp[4] = 6;
    arp[5] = 4;
    arp.writeUInt16BE(1, 6);
    Buffer.from(ip4('192.168.0.60')).copy(arp, 24);
    assert.deepEqual(readLearnPacket(0x0806, arp, false), { kind: 'arp-probe', address: '192.168.0.60' });
    Buffer.from(ip4('192.168.0.61')).copy(arp, 14);
    assert.equal(readLearnPacket(0x0806, arp, false), undefined, 'a sender address: not a probe');
  });

  it('reads announcements: a gratuitous ARP (request or reply) and an unsolicited NA to all nodes; not a plain request or a solicited NA', () => {
    const arp = (op: number, sender: string, target: string): Buffer => {
      const b = Buffer.alloc(28);
      b.writeUInt16BE(1, 0);
      b.writeUInt16BE(0x0800, 2);
      b[4] = 6;
      b[5] = 4;
      b.writeUInt16BE(op, 6);
      Buffer.from(ip4(sender)).copy(b, 14);
      Buffer.from(ip4(target)).copy(b, 24);
      return b;
    };
    assert.deepEqual(readLearnPacket(0x0806, arp(2, '192.168.0.70', '192.168.0.70'), false), { kind: 'announce', family: 'ipv4', address: '192.168.0.70' });
    assert.deepEqual(readLearnPacket(0x0806, arp(1, '192.168.0.70', '192.168.0.70'), false), { kind: 'announce', family: 'ipv4', address: '192.168.0.70' });
    assert.equal(readLearnPacket(0x0806, arp(1, '192.168.0.70', '192.168.0.1'), false), undefined, 'an ARP request from an address announces nothing');
    const na = (flags: number, dst: string): Buffer => {
      const body = Buffer.concat([Buffer.from([136, 0, 0, 0, flags, 0, 0, 0]), v6('2001:db8::70')]);
      const p = ipv6('fe80::1', 58, body, 255);
      v6(dst).copy(p, 24);
      return p;
    };
    assert.deepEqual(readLearnPacket(0x86dd, na(0x20, 'ff02::1'), false), { kind: 'announce', family: 'ipv6', address: '2001:db8::70' });
    assert.equal(readLearnPacket(0x86dd, na(0x60, 'ff02::1'), false), undefined, 'solicited');
    assert.equal(readLearnPacket(0x86dd, na(0x20, 'fe80::2'), false), undefined, 'not to all nodes');
  });

  it('an nflog message without payload or header says nothing; ports come from the physical devices', () => {
    assert.equal(parseLoggedPacket(Buffer.alloc(4)), undefined);
    const attr = nlAttr;
    const u32 = u32be;
    const msg = Buffer.concat([Buffer.alloc(4), attr(1, Buffer.from([0x08, 0x00, 0, 0])), attr(4, u32(2)), attr(6, u32(7)), attr(10, Buffer.from('XN learn\0')), attr(9, Buffer.from([1, 2, 3]))]);
    assert.deepEqual(parseLoggedPacket(msg), { prefix: 'XN learn', inPort: 7, ethertype: 0x0800, payload: Buffer.from([1, 2, 3]) });
    const lying = Buffer.from(msg);
    lying.writeUInt16LE(200, 4); // an attribute longer than the message
    assert.equal(parseLoggedPacket(lying), undefined);
  });
});

describe('address learning: bindings', () => {
  const now = 1_000_000;
  it('a lease binds for its time and renews; a release ends it', () => {
    let d = decide([], 'vif1.0', { kind: 'dhcp-ack', address: '192.168.0.50', leaseSeconds: 60 }, now);
    assert.deepEqual(d.bindings, [{ vif: 'vif1.0', family: 'ipv4', address: '192.168.0.50', how: 'dhcp', since: now, expires: now + 60_000 }]);
    assert.equal(d.write.length, 1);
    d = decide(d.bindings, 'vif1.0', { kind: 'dhcp-ack', address: '192.168.0.50', leaseSeconds: 120 }, now + 30_000);
    assert.equal(d.bindings[0]!.expires, now + 150_000, 'renewed');
    d = decide(d.bindings, 'vif1.0', { kind: 'dhcp-release', address: '192.168.0.50' }, now + 40_000);
    assert.deepEqual(d.bindings, []);
    assert.equal(d.remove.length, 1);
    assert.deepEqual(decide([], 'vif1.0', { kind: 'dhcp-release', address: '192.168.0.50' }, now).remove, [], 'releasing what is not bound changes nothing');
  });

  it('first come first served: an address another port holds (learned or declared) is refused', () => {
    const held = decide([], 'vif1.0', { kind: 'dad', address: '2001:db8::77' }, now).bindings;
    const d = decide(held, 'vif2.0', { kind: 'dad', address: '2001:db8::77' }, now);
    assert.deepEqual(d.bindings, held);
    assert.match(d.message ?? '', /refused: vif1\.0 holds it/);
    const declared = decide([], 'vif2.0', { kind: 'dhcp-ack', address: '192.168.0.9', leaseSeconds: 60 }, now, (f, a) => (f === 'ipv4' && a === '192.168.0.9' ? 'vif3.0' : undefined));
    assert.deepEqual(declared.bindings, []);
    assert.match(declared.message ?? '', /vif3\.0 holds it/);
  });

  it('a first-come binding never shortens a lease; a port holds at most MAX_PER_PORT, oldest first-come first out', () => {
    const lease = decide([], 'vif1.0', { kind: 'dhcpv6-reply', addresses: [{ address: '2001:db8::5', validSeconds: 60 }] }, now).bindings;
    const after = decide(lease, 'vif1.0', { kind: 'dad', address: '2001:db8::5' }, now + 1000);
    assert.deepEqual(after.bindings, lease);
    let bs: Binding[] = [];
    for (let i = 0; i < MAX_PER_PORT.ipv6 + 3; i++) bs = decide(bs, 'vif1.0', { kind: 'dad', address: `2001:db8::${(i + 16).toString(16)}` }, now + i).bindings;
    assert.equal(bs.length, MAX_PER_PORT.ipv6);
    assert.ok(!bs.some((b) => b.address === '2001:db8::10'), 'the oldest went');
  });

  it('a trusted lease takes the address from another port\'s learned binding, never from a declared one', () => {
    const squatted = decide([], 'vif1.0', { kind: 'announce', family: 'ipv4', address: '192.168.0.50' }, now).bindings;
    const d = decide(squatted, 'vif2.0', { kind: 'dhcp-ack', address: '192.168.0.50', leaseSeconds: 60 }, now);
    assert.deepEqual(d.bindings.map((b) => b.vif), ['vif2.0']);
    assert.deepEqual(d.remove.map((b) => b.vif), ['vif1.0']);
    assert.match(d.message ?? '', /taken from vif1\.0/);
    const declared = decide([], 'vif2.0', { kind: 'dhcp-ack', address: '192.168.0.50', leaseSeconds: 60 }, now, () => 'vif3.0');
    assert.deepEqual(declared.bindings, []);
    const byAnnounce = decide(squatted, 'vif2.0', { kind: 'announce', family: 'ipv4', address: '192.168.0.50' }, now);
    assert.deepEqual(byAnnounce.bindings.map((b) => b.vif), ['vif1.0'], 'first come keeps it against another first come');
  });

  it('a guarded binding also writes its keys (the identity guard of learned addresses)', () => {
    const b: Binding = { vif: 'vif1.0', family: 'ipv4', address: '192.168.0.5', how: 'dhcp', since: now, expires: null, guarded: true };
    assert.match(learnedScript([b], [], now), /add element bridge xennet learned_keys4 \{ 192\.168\.0\.5 \}/);
    assert.doesNotMatch(learnedScript([{ ...b, guarded: false }], [], now), /element bridge xennet learned_keys4/);
    const g6 = learnedScript([{ ...b, family: 'ipv6', address: '2001:db8::5' }], [], now);
    assert.match(g6, /learned_keys6 \{ 2001:db8::5 \}/);
    assert.match(g6, /learned_na_keys \{ 0x20010db8000000000000000000000005 \}/);
    assert.equal(decide([], 'vif1.0', { kind: 'dhcp-ack', address: '192.168.0.9', leaseSeconds: 60 }, now, undefined, true).bindings[0]!.guarded, true, 'a lease of a guarded guest is guarded');
    assert.equal(decide([], 'vif1.0', { kind: 'dad', address: '2001:db8::9' }, now, undefined, true).bindings[0]!.guarded, undefined, 'a first-come binding is not: the LAN host that holds the address keeps it');
  });

  it('an ended lease holds nothing: it neither refuses another port nor counts against the limit', () => {
    const ended = decide([], 'vif1.0', { kind: 'dhcp-ack', address: '192.168.0.50', leaseSeconds: 60 }, now).bindings;
    const later = now + 3_600_000;
    const d = decide(ended, 'vif2.0', { kind: 'arp-probe', address: '192.168.0.50' }, later);
    assert.deepEqual(d.bindings.map((b) => b.vif), ['vif2.0']);
    assert.deepEqual(d.remove.map((b) => b.vif), ['vif1.0'], 'the ended one goes from the record');
    let full: Binding[] = [];
    for (let i = 0; i < MAX_PER_PORT.ipv4; i++) full = decide(full, 'vif1.0', { kind: 'dhcp-ack', address: `192.168.1.${i + 1}`, leaseSeconds: 60 }, now).bindings;
    assert.equal(decide(full, 'vif1.0', { kind: 'dhcp-ack', address: '192.168.2.1', leaseSeconds: 60 }, now).bindings.length, MAX_PER_PORT.ipv4, 'full of live leases: refused');
    assert.ok(decide(full, 'vif1.0', { kind: 'dhcp-ack', address: '192.168.2.1', leaseSeconds: 60 }, later).bindings.some((b) => b.address === '192.168.2.1'), 'ended ones make room');
  });

  it('a DHCPv6 Reply with valid lifetime 0 ends the binding; expire() splits ended ones', () => {
    const b = decide([], 'vif1.0', { kind: 'dhcpv6-reply', addresses: [{ address: '2001:db8::5', validSeconds: 60 }] }, now).bindings;
    assert.deepEqual(decide(b, 'vif1.0', { kind: 'dhcpv6-reply', addresses: [{ address: '2001:db8::5', validSeconds: 0 }] }, now).bindings, []);
    const { live, ended } = expire(b, now + 60_000);
    assert.deepEqual([live.length, ended.length], [0, 1]);
  });

  it('the kernel script adds, re-times and removes elements; the listing is read back', () => {
    const b: Binding = { vif: 'vif1.0', family: 'ipv6', address: '2001:db8::5', how: 'dad', since: now, expires: now + 10_500 };
    const script = learnedScript([b], [], now);
    assert.match(script, /add element bridge xennet learned_ip6 \{ 2001:db8::5 \. "vif1\.0" timeout 11s \}/);
    assert.match(script, /learned_na \{ 0x20010db8000000000000000000000005 \. "vif1\.0" timeout 11s \}/);
    assert.equal(learnedScript([{ ...b, expires: now - 1 }], [], now), '', 'an ended binding is not written');
    const json = JSON.stringify({ nftables: [{ set: { name: 'learned_ip4', elem: [{ elem: { val: { concat: ['192.168.0.5', 'vif1.0'] }, timeout: 60, expires: 42 } }, { concat: ['192.168.0.6', 'vif2.0'] }] } }] });
    assert.deepEqual(parseLearnedJson(json, 'learned_ip4'), [
      { address: '192.168.0.5', vif: 'vif1.0', expiresMs: 42_000 },
      { address: '192.168.0.6', vif: 'vif2.0', expiresMs: null },
    ]);
    assert.deepEqual(parseLearnedJson('not json', 'learned_ip4'), []);
  });

  it('a record that is not a binding is left out, the others kept (one bad line never blocks a restore)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-learned-'));
    try {
      const good = { vif: 'vif1.0', family: 'ipv4', address: '192.168.0.5', how: 'dhcp', since: 1, expires: null };
      const bad = [
        { ...good, family: 'ipv6', address: '1:2' },
        { ...good, address: '192.168.000.5' },
        { ...good, family: 'ipv6', address: '2001:DB8::1' },
        { ...good, address: '192.168.0.0/24' },
        { ...good, vif: 'vif1.0; rm -rf /' },
        { ...good, how: 'guess' },
      ];
      writeFileSync(join(dir, 'learned.json'), JSON.stringify({ version: 1, bindings: [good, ...bad] }));
      assert.deepEqual(readBindings({ XENNET_STATE_DIR: dir }), [good]);
      writeFileSync(join(dir, 'learned.json'), '{"version": 2}');
      assert.deepEqual(readBindings({ XENNET_STATE_DIR: dir }), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a vif name outlives its domain: what an earlier domain learned is not the next one\'s, and a record from before this boot holds nothing', () => {
    const now = 1_000_000;
    const old = decide([], 'web0', { kind: 'dhcp-ack', address: '192.168.0.50', leaseSeconds: 600 }, now, undefined, false, 7);
    assert.equal(old.bindings[0]!.domid, 7, 'a binding records its domain');
    // Domain 9 now has the vif web0 (domain 7's offline never ran): anything it does first ends 7's.
    const d = decide(old.bindings, 'web0', { kind: 'dad', address: '2001:db8::9' }, now + 1000, undefined, false, 9);
    assert.deepEqual(d.remove.map((b) => b.address), ['192.168.0.50']);
    assert.deepEqual(d.bindings.map((b) => `${b.address} ${b.domid}`), ['2001:db8::9 9']);
    const dir = mkdtempSync(join(tmpdir(), 'xnt-learned-'));
    try {
      const env = { XENNET_STATE_DIR: dir };
      writeFileSync(join(dir, 'learned.json'), JSON.stringify({ version: 1, boot: currentBootId(), bindings: old.bindings }));
      assert.deepEqual([...learnedAddressesByVif(env, undefined, now, () => 7).keys()], ['web0']);
      assert.deepEqual([...learnedAddressesByVif(env, undefined, now, () => 9).keys()], [], 'not for domain 9\'s vif of that name');
      writeFileSync(join(dir, 'learned.json'), JSON.stringify({ version: 1, boot: 'an-earlier-boot', bindings: old.bindings }));
      assert.deepEqual(readBindings(env), [], 'written before this boot: every domain it names is gone');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a record that would not change is not written, nor made when there is nothing to record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-learned-'));
    try {
      const env = { XENNET_STATE_DIR: dir };
      const log = silentLogger;
      await updateBindings(env, log, (bindings) => ({ bindings, write: [], remove: [] }));
      assert.equal(existsSync(join(dir, 'learned.json')), false);
      const b: Binding = { vif: 'vif1.0', family: 'ipv4', address: '192.168.0.5', how: 'dhcp', since: 1, expires: null };
      writeFileSync(join(dir, 'learned.json'), JSON.stringify({ version: 1, boot: currentBootId(), bindings: [b] }));
      const before = statSync(join(dir, 'learned.json')).mtimeMs;
      await new Promise((r) => setTimeout(r, 20));
      await updateBindings(env, log, (bindings) => ({ bindings, write: [], remove: [] }));
      assert.equal(statSync(join(dir, 'learned.json')).mtimeMs, before, 'unchanged: not written');
      writeFileSync(join(dir, 'learned.json'), JSON.stringify({ version: 1, bindings: [b] }));
      await updateBindings(env, log, (bindings) => ({ bindings, write: [], remove: [] }));
      assert.equal((JSON.parse(readFileSync(join(dir, 'learned.json'), 'utf8')) as { boot?: string }).boot, currentBootId(), 'a record without its boot is written with it');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('xtables: a learning guest\'s sources are its own sets, its ARP senders and NA targets its recorded bindings, and what learning reads goes to the daemon at a rate per port', () => {
    const policy = parsePolicy('version: 1\ndefaults:\n  learn_addresses: true\n', 'x.yaml');
    const facts = { name: 'vif7.0' as IfName, bridge: 'xenbr0' as IfName, mac: '00:16:3e:00:00:07' as Mac, ipv4: [], ipv6: [] };
    const none = compile([resolveVif(policy, facts)]);
    const bound = compile([resolveVif(policy, { ...facts, learned: { ipv4: ['192.168.0.7'], ipv6: ['2001:db8::7', 'fe80::7'] } })]);
    const s4 = bound.ipv4.chains.get('XN-S-vif7.0')!;
    assert.deepEqual(s4.slice(0, 2), ['-m set --match-set xn4-vif7.0 src -j RETURN', '-s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN']);
    assert.equal(s4.at(-1), '-j DROP');
    const s6 = bound.ipv6.chains.get('XN-S-vif7.0')!;
    assert.equal(s6[0], '-m set --match-set xn6-vif7.0 src -j RETURN');
    assert.ok(!s6.some((r) => r.includes('fe80::216:3eff:fe00:7')), 'no EUI-64 link-local of its own: it is bound through its DAD');
    // Its recorded bindings are its ARP senders and NA targets; with none, only probes.
    const e = bound.ebnat.chains.get('XN-E-vif7.0')!;
    assert.ok(e.includes('-p ARP --arp-ip-src 192.168.0.7 -j RETURN'));
    assert.ok(!none.ebnat.chains.get('XN-E-vif7.0')!.some((r) => r.includes('192.168.0.7')));
    assert.equal(bound.ipv6.chains.get('XN-N-vif7.0')!.filter((r) => r.endsWith('-j RETURN')).length, 2);
    assert.equal(none.ipv6.chains.get('XN-N-vif7.0')!.filter((r) => r.endsWith('-j RETURN')).length, 0);
    // Hand-overs: its DAD, ARP probes and client messages (nat), its DHCPACKs by chaddr (u32), NA
    // and ARP-probe defences and DHCPv6 replies to its MAC from a trusted port (filter).
    assert.equal(e.filter((r) => r.includes('--limit 20/sec --limit-burst 40 -j XN-LEARN')).length, 6);
    const i4 = bound.ipv4.chains.get('XN-I-vif7.0')!;
    assert.ok(i4.every((r) => r.includes('0x0>>0x16&0x3c@0x24=0x163e00&&0x0>>0x16&0x3c@0x28>>0x10=0x7&&') && r.includes('-j NFLOG --nflog-prefix "XN learn" --nflog-group 30830')), i4.join('\n'));
    assert.deepEqual(bound.eb.chains.get('XN-L-vif7.0'), [
      '-p ARP --mark 0x100000/0x100000 -j RETURN',
      '-p ARP --arp-op Reply --arp-ip-dst 0.0.0.0 --limit 20/sec --limit-burst 40 -j XN-DEFEND',
      '-p IPv6 --mark 0x100000/0x500000 -j RETURN',
      '-p IPv6 -d 00:16:3e:00:00:07 --ip6-proto udp --ip6-sport 547 --ip6-dport 546 --limit 20/sec --limit-burst 40 -j XN-LEARN',
    ]);
    assert.deepEqual(bound.eb.roots, [{ chain: 'FORWARD', rule: '-j XN-LT' }]);
    // NAs to all nodes (defences of a DAD) are handed over once per frame as it enters the bridge,
    // at a rate per guest port; from other ports (the uplink: the whole LAN), per source address.
    assert.ok(!bound.ipv6.chains.get('XN-I-vif7.0')!.some((r) => r.includes('XN defend')), 'not once per port the frame is flooded to');
    assert.deepEqual(bound.ipv6raw.chains.get('XN-NAD'), [
      '-m physdev --physdev-in vif7.0 -m limit --limit 20/sec --limit-burst 40 -j NFLOG --nflog-prefix "XN defend" --nflog-group 30830',
      '-m physdev --physdev-in vif7.0 -j RETURN',
      '-m hashlimit --hashlimit-upto 20/sec --hashlimit-burst 40 --hashlimit-mode srcip --hashlimit-name xn-nad -j NFLOG --nflog-prefix "XN defend" --nflog-group 30830',
    ]);
    assert.ok(bound.ipv6raw.roots.some((r) => r.rule === '-i xenbr0 -d ff02::1/128 -p ipv6-icmp -m icmp6 --icmpv6-type 136 -m physdev --physdev-is-in -j XN-NAD'));
    assert.ok(bound.ipv4.chains.get('XN-TO')!.some((r) => r.includes('-g XN-I-vif7.0')), 'a learning guest is in the to-guest tree (inbound accept or not)');
    // The sets its rules read are made before them.
    assert.deepEqual(setsReadBy([...s4, ...s6].join('\n')), ['xn4-vif7.0', 'xn6-vif7.0']);
    assert.deepEqual(learnedSetCreates(['xn4-vif7.0', 'xn6-vif7.0']), ['create xn4-vif7.0 hash:ip family inet timeout 0', 'create xn6-vif7.0 hash:ip family inet6 timeout 0']);
  });

  it('a learning guest\'s DHCP client passes from any source with its own chaddr (a renewal from the address it holds), and no guest sends client messages with another\'s', () => {
    const policy = parsePolicy('version: 1\nguests:\n  relay:\n    dhcp_server: true\n', 'x.yaml');
    const facts = { name: 'vif7.0' as IfName, bridge: 'xenbr0' as IfName, mac: '00:16:3e:00:00:07' as Mac, ipv4: [], ipv6: [] };
    const learner = resolveVif(policy, facts);
    const declared = resolveVif(policy, { ...facts, name: 'vif8.0' as IfName, ipv4: [cidrOf('192.168.0.8')] });
    const relay = resolveVif(policy, { ...facts, name: 'vif9.0' as IfName, domain: 'relay' as DomainName });
    const x = compile([learner, declared, relay]);
    const mine = '-p udp -m udp --sport 68 --dport 67 -m u32 ! --u32 "0x0>>0x16&0x3c@0x24=0x163e00&&0x0>>0x16&0x3c@0x28>>0x10=0x7" -j DROP';
    assert.ok(x.ipv4.chains.get('XN-O-vif7.0')!.includes(mine));
    assert.ok(x.ipv4.chains.get('XN-O-vif8.0')!.includes(mine), 'a guest with declared addresses too');
    assert.ok(!x.ipv4.chains.get('XN-O-vif9.0')!.some((r) => r.includes('u32')), 'a dhcp_server guest (a relay forwards others\' messages) is not checked');
    const anySource = '-p udp -m udp --sport 68 --dport 67 -m u32 --u32 "0x0>>0x16&0x3c@0x24=0x163e00&&0x0>>0x16&0x3c@0x28>>0x10=0x7" -j RETURN';
    assert.ok(x.ipv4.chains.get('XN-S-vif7.0')!.includes(anySource));
    assert.ok(!x.ipv4.chains.get('XN-S-vif8.0')!.includes(anySource), 'a guest with declared addresses sends from them');
    assert.ok(x.ipv6.chains.get('XN-S-vif7.0')!.includes('-s fe80::/10 -d ff02::1:2/128 -p udp -m udp --sport 546 --dport 547 -j RETURN'));
    const n = compileVifNft(learner, 'mark');
    assert.ok(n.chains.get('XN-D4-vif7.0')!.includes('ether type ip udp sport 68 udp dport 67 @th,288,48 != 0x163e000007 counter drop'), n.chains.get('XN-D4-vif7.0')!.join('\n'));
    assert.ok(n.chains.get('XN-S-vif7.0')!.includes('ether type ip udp sport 68 udp dport 67 @th,288,48 0x163e000007 return'), 'with its own chaddr (a message too short for one fails the match)');
    assert.ok(n.chains.get('XN-S-vif7.0')!.includes('ip6 saddr fe80::/10 ip6 daddr ff02::1:2 udp sport 546 udp dport 547 return'));
    assert.ok(!compileVifNft(relay, 'mark').chains.get('XN-O-vif9.0')!.some((r) => r.includes('@th,288,48')));
  });

  it('xtables: bindings are written to the guest\'s sets with the time they have left, and read back from `ipset save`', () => {
    const lease: Binding = { vif: 'vif7.0', family: 'ipv4', address: '192.168.0.7', how: 'dhcp', since: 0, expires: 61_000 };
    const dad: Binding = { vif: 'vif7.0', family: 'ipv6', address: 'fe80::7', how: 'dad', since: 0, expires: null };
    assert.deepEqual(learnedIpsetLines([lease, dad], [{ ...lease, address: '192.168.0.8' }], 1000), ['del xn4-vif7.0 192.168.0.8', 'add xn4-vif7.0 192.168.0.7 timeout 60', 'add xn6-vif7.0 fe80::7 timeout 0'], 'an element written again is re-timed in place (no del before it: nothing may drop in between)');
    assert.deepEqual(learnedIpsetLines([lease], [], 61_000), [], 'an ended lease is not written');
    // A lease longer than the kernel takes (ipset: 2147483 s) has no end there; the daemon ends it.
    const month = { ...lease, expires: 1000 + 30 * 86_400_000 };
    assert.deepEqual(learnedIpsetLines([month], [], 1000), ['add xn4-vif7.0 192.168.0.7 timeout 0']);
    assert.match(learnedScript([month], [], 1000), /add element bridge xennet learned_ip4 \{ 192\.168\.0\.7 \. "vif7\.0" \}\n/);
    const saved = 'create xn4-vif7.0 hash:ip family inet hashsize 1024 maxelem 65536 timeout 0\nadd xn4-vif7.0 192.168.0.7 timeout 59\ncreate xn6-vif7.0 hash:ip family inet6 hashsize 1024 maxelem 65536 timeout 0\nadd xn6-vif7.0 fe80::7 timeout 0\ncreate other hash:ip family inet\nadd other 10.0.0.1\n';
    assert.deepEqual(parseLearnedIpset(saved), [
      { vif: 'vif7.0', family: 'ipv4', address: '192.168.0.7', expiresMs: 59_000 },
      { vif: 'vif7.0', family: 'ipv6', address: 'fe80::7', expiresMs: null },
    ]);
  });
});
