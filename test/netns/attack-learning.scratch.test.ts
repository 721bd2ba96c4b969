/* SCRATCH (review): attacks on address learning. Delete when done. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SimHost, type GuestSpec, type SimGuest } from '../../src/sim/host.js';
import { start } from '../../src/sys/exec.js';
import { framesPy } from './lib/frames.js';

const atk = '/tmp/xnt-atk/atk.py';
const macOf = (d: number): string => `00:16:3e:00:06:${d.toString(16).padStart(2, '0')}`;
const spec = (d: number, name: string): GuestSpec => ({ domid: d, name, mac: macOf(d), addresses: [] });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (...a: unknown[]) => console.log('   >>', ...a);

describe('ATTACK learning', function () {
  this.timeout(150_000);
  let host: SimHost;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const rulesFile = (): string => join(dir, 'xennet.yaml');
  const DEFAULT = '  dyn1:\n    learn_addresses: true\n  dyn2:\n    learn_addresses: true\n  dyn3:\n    learn_addresses: true\n  peer: {}\n';
  const writeRules = (guests = DEFAULT, backend = 'nftables'): void => writeFileSync(rulesFile(), `version: 1\nbackend: ${backend}\nguests:\n${guests}`);
  const xennet = (args: string[]) => host.xennet(args, env);
  const online = async (g: SimGuest): Promise<void> => {
    const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
    assert.equal(r.code, 0, `online ${g.vif}: ${r.stderr}`);
  };
  const offline = async (g: SimGuest) => host.runVifScript('vif-xennet', g, 'offline', 'libxl', { env });
  const status = async (): Promise<any> => JSON.parse((await xennet(['status', '--json'])).stdout);
  const learned = async (g: SimGuest): Promise<string[]> => ((await status()).vifs.find((v: any) => v.name === g.vif)?.learned ?? []).filter((b: any) => !b.address.startsWith('fe80:')).map((b: any) => `${b.address} ${b.how}`).sort();
  const until = async (what: string, ok: () => Promise<boolean>, ms = 8000): Promise<boolean> => {
    const t0 = performance.now();
    while (!(await ok())) {
      if (performance.now() - t0 > ms) { log(`timed out waiting for ${what}`); return false; }
      await sleep(100);
    }
    return true;
  };
  const nftSet = async (set: string) => (await host.dom0.exec('nft', ['list', 'set', 'bridge', 'xennet', set])).stdout;
  const sets = async () => { const out: string[] = []; for (const s of ['learned_ip4', 'learned_ip6', 'learned_na', 'learned_keys4', 'learned_keys6', 'learned_na_keys']) { const t = await nftSet(s); const m = t.match(/elements = \{([^}]*)\}/s); out.push(`${s}: ${m ? m[1]!.replace(/\s+/g, ' ').trim() : '-'}`); } return out.join('\n'); };
  const py = async (g: SimGuest | 'lan', args: string[]) => { const ns = g === 'lan' ? host.lan : g.ns; const r = await ns.exec('python3', args); assert.equal(r.code, 0, r.stderr); };
  const lanMac = async () => (await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;
  const addAddress = async (g: SimGuest, cidr: string) => g.ns.ip('addr', 'add', cidr, 'dev', 'eth0', ...(cidr.includes(':') ? ['nodad'] : []));
  const daemonTail = (n = 15) => host.daemonLog.slice(-n).join('\n');

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'xnt-atk-'));
    env = { XENNET_RULES: rulesFile() };
  });
  beforeEach(async () => {
    writeRules();
    host = await SimHost.create();
    await host.takeover();
    await host.startDaemon(env);
  });
  afterEach(async () => {
    await host?.destroy();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('A gateway hijack: a learning guest announces the gateway 192.168.0.1 / 2001:db8::1 and dom0 192.168.0.2', async () => {
    const att = await host.addGuest(spec(50, 'dyn1'));
    const peer = await host.addGuest({ ...spec(52, 'peer'), addresses: ['192.168.0.139/24', '2001:db8::139/64'], xenstoreIp: '192.168.0.139 2001:db8::139' });
    await online(att); await online(peer);
    log('control peer->gw v4', await peer.ns.ping('192.168.0.1'), 'v6', await peer.ns.ping('2001:db8::1'), 'dom0->gw', await host.dom0.ping('192.168.0.1'));
    await py(att, [framesPy, 'send', 'eth0', 'garp', att.mac, att.mac, '192.168.0.1']);
    await py(att, [framesPy, 'send', 'eth0', 'ns-dad', att.mac, '2001:db8::1']);
    await py(att, [framesPy, 'send', 'eth0', 'garp', att.mac, att.mac, '192.168.0.2']);
    await until('bindings', async () => (await learned(att)).length >= 3);
    log('attacker learned:', await learned(att));
    log(await sets());
    await host.dom0.exec('ip', ['neigh', 'flush', 'all']);
    await peer.ns.exec('ip', ['neigh', 'flush', 'all']);
    log('after: peer->gw v4', await peer.ns.ping('192.168.0.1'), 'v6', await peer.ns.ping('2001:db8::1'), 'dom0->gw v4', await host.dom0.ping('192.168.0.1'), 'dom0->gw v6', await host.dom0.ping('2001:db8::1'));
    // poisoning: the attacker's further announcements now pass
    await py(att, [framesPy, 'send', 'eth0', 'garp', att.mac, att.mac, '192.168.0.1']);
    await py(att, [framesPy, 'send', 'eth0', 'na', att.mac, 'fe80::216:3eff:fe00:632', '2001:db8::1']);
    await sleep(300);
    log('peer neigh:', (await peer.ns.exec('ip', ['neigh', 'show'])).stdout.trim().replace(/\n/g, ' | '));
    log('dom0 neigh:', (await host.dom0.exec('ip', ['neigh', 'show'])).stdout.trim().replace(/\n/g, ' | '));
    log('drops (XN-PRE):', (await host.dom0.exec('nft', ['list', 'chain', 'bridge', 'xennet', 'XN-PRE'])).stdout.split('\n').filter((l) => l.includes('learned_keys')).join('\n'));
    const s = await xennet(['status']);
    log('status exit', s.code, s.stdout.split('\n').filter((l) => /learn|LEARN|192.168.0.[12] |2001:db8::1 /.test(l)).join('\n'));
  });

  it('B broadcast DHCPACK: chaddr ignored, every learning port that sees it binds yiaddr', async () => {
    const v = await host.addGuest(spec(60, 'dyn1'));
    const a = await host.addGuest(spec(61, 'dyn2'));
    await online(v); await online(a);
    const lm = await lanMac();
    // 1. a broadcast ACK for v (chaddr v) from the LAN server
    await py('lan', [atk, 'ack', 'lan0', lm, 'ff:ff:ff:ff:ff:ff', '192.168.0.1', '192.168.0.180', '3600', v.mac]);
    await sleep(1500);
    log('v:', await learned(v), 'a:', await learned(a));
    // 2. a broadcast ACK for a LAN host (chaddr not any guest's) for 192.168.0.3, which the LAN uses
    await host.lan.ip('addr', 'add', '192.168.0.3/24', 'dev', 'lan0');
    log('control dom0 -> 192.168.0.3', await host.dom0.ping('192.168.0.3'));
    await py('lan', [atk, 'ack', 'lan0', lm, 'ff:ff:ff:ff:ff:ff', '192.168.0.1', '192.168.0.3', '3600', '02:00:00:00:00:99']);
    await sleep(1500);
    log('v:', await learned(v), 'a:', await learned(a));
    await host.dom0.exec('ip', ['neigh', 'flush', 'all']);
    log('after: dom0 -> 192.168.0.3 (a LAN host)', await host.dom0.ping('192.168.0.3'));
    log(await sets());
  });

  it('B2 real dnsmasq: the attacker asks for the victim\'s lease (chaddr = victim, broadcast flag) and takes its binding', async function () {
    if (!existsSync('/usr/sbin/dnsmasq') || !existsSync('/usr/sbin/dhclient')) this.skip();
    const v = await host.addGuest(spec(62, 'dyn1'));
    const a = await host.addGuest(spec(63, 'dyn2'));
    await online(v); await online(a);
    const leases = mkdtempSync(join(tmpdir(), 'xnt-dhcp-'));
    const dnsmasq = start('ip', ['netns', 'exec', host.lan.name, 'dnsmasq', '--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=lan0', '--bind-interfaces', '--user=root', '--group=root', `--dhcp-leasefile=${join(leases, 'dnsmasq.leases')}`, '--dhcp-range=192.168.0.151,192.168.0.160,1h']);
    try {
      await sleep(500);
      writeFileSync(join(leases, 'dhclient.conf'), 'timeout 15;\nretry 1;\n');
      const r = await v.ns.exec('dhclient', ['-4', '-1', '-v', '-sf', '/bin/true', '-cf', join(leases, 'dhclient.conf'), '-lf', join(leases, 'v.leases'), '-pf', join(leases, 'v.pid'), 'eth0'], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      const addr = /fixed-address ([0-9.]+);/.exec(readFileSync(join(leases, 'v.leases'), 'utf8'))![1]!;
      await until('v binding', async () => (await learned(v)).includes(`${addr} dhcp`));
      await addAddress(v, `${addr}/24`);
      log('victim', addr, 'reaches gw', await v.ns.ping('192.168.0.1', { source: addr }));
      await py(a, [atk, 'dhcpreq', 'eth0', a.mac, v.mac, addr, '192.168.0.1']);
      await sleep(2000);
      log('after attack: v:', await learned(v), 'a:', await learned(a));
      log('victim reaches gw', await v.ns.ping('192.168.0.1', { source: addr }));
      await addAddress(a, `${addr}/24`);
      log('attacker reaches gw from victim address', await a.ns.ping('192.168.0.1', { source: addr }));
      log(daemonTail(6));
    } finally {
      dnsmasq.kill('SIGKILL');
      try { process.kill(Number(readFileSync(join(leases, 'v.pid'), 'utf8').trim()), 'SIGKILL'); } catch { /* */ }
      rmSync(leases, { recursive: true, force: true });
    }
  });
});
