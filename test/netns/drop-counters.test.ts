/**
 * A guest's drops, by reason, on the simulated Xen host with real frames: each reason counts
 * what its rules dropped, and a guest's counters only grow while it exists: a repeated online,
 * an apply that rewrites its chains, a drift repair by the daemon and a backend switch all keep
 * them (the kernel starts a rewritten rule's counter from zero: xennet carries them over).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimHost, type SimGuest } from '../../src/sim/host.js';
import { framesPy } from './lib/frames.js';
import { sweepLeftovers } from './lib/netns.js';

const MAC = '00:16:3e:00:00:05';
/** The rule file: web01 with its addresses (a change to them rewrites its source checks, MAC and ARP checks included). */
const guestRules = (backend: 'xtables' | 'nftables', extra = '', ipv4 = '192.168.0.105', ipv6 = '"2001:db8::105"'): string => `version: 1\nbackend: ${backend}\nguests:\n  web01:\n    mac: "${MAC}"\n    ipv4: [${ipv4}]\n    ipv6: [${ipv6}]\n${extra}`;

interface Drops {
  total: number;
  spoof4: number;
  spoof6: number;
  mac: number;
}

for (const backend of ['nft', 'legacy', 'nftables'] as const)
describe(`drop counters by reason, kept while the guest exists (netns, ${backend === 'nftables' ? 'nftables backend' : `iptables-${backend}`})`, function () {
  this.timeout(240_000);
  const native = backend === 'nftables';
  const kind = native ? 'nftables' : 'xtables';
  const notOnLegacy = backend === 'legacy' ? (_title: string, _fn: () => Promise<void>): void => undefined : it;
  let host: SimHost;
  let web: SimGuest;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const xennet = (args: string[]) => host.xennet(args, env);
  const writeRules = (text: string): void => writeFileSync(join(dir, 'xennet.yaml'), text);

  const send = async (kindOfFrame: string, args: string[]): Promise<void> => {
    const r = await web.ns.exec('python3', [framesPy, 'send', 'eth0', kindOfFrame, ...args]);
    assert.equal(r.code, 0, r.stderr);
  };
  /** Forged IPv4 and IPv6 sources and a forged MAC, each a few frames. */
  const spoof = async (): Promise<void> => {
    await send('udp4', [MAC, 'ff:ff:ff:ff:ff:ff', '192.168.0.200', '192.168.0.1', '4000', '4001', 'forged-v4']);
    await send('udp6', [MAC, '33:33:00:00:00:01', '2001:db8::999', 'ff02::1', '4000', '4001', 'forged-v6']);
    await send('udp4', ['00:16:3e:99:99:99', 'ff:ff:ff:ff:ff:ff', '192.168.0.105', '192.168.0.1', '4000', '4001', 'forged-mac']);
  };
  const drops = async (): Promise<Drops> => {
    const r = await xennet(['status', '--json']);
    const s = JSON.parse(r.stdout) as { vifs: { name: string; drops: { packets: number; reasons: Record<string, { packets: number }> } }[] };
    const v = s.vifs.find((x) => x.name === web.vif);
    assert.ok(v, r.stdout + r.stderr);
    const of = (reason: string): number => v.drops.reasons[reason]?.packets ?? 0;
    return { total: v.drops.packets, spoof4: of('spoof4'), spoof6: of('spoof6'), mac: of('mac') };
  };
  /** Every reason's count at least what it was (and the total with them). */
  const kept = (now: Drops, before: Drops, what: string): void => {
    const fell = (['total', 'spoof4', 'spoof6', 'mac'] as const).filter((k) => now[k] < before[k]);
    assert.deepEqual(fell, [], `${what}: ${JSON.stringify(before)} -> ${JSON.stringify(now)}`);
  };

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-drops-'));
    writeRules(guestRules(kind));
    env = native ? { XENNET_RULES: join(dir, 'xennet.yaml') } : { XENNET_RULES: join(dir, 'xennet.yaml'), XENNET_IPTABLES: backend };
    host = await SimHost.create({ autostart: false });
    await host.takeover();
    web = await host.addGuest({ domid: 5, name: 'web01', mac: MAC, addresses: ['192.168.0.105/24', '2001:db8::105/64'] });
    const r = await host.runVifScript('vif-xennet', web, 'online', 'libxl', { env });
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await host?.stopDaemon().catch(() => undefined);
    await host?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('each forged frame counts under its reason (status --json and status GUEST), and an online that installs a changed policy keeps the counts', async () => {
    const zero = await drops();
    await spoof();
    const first = await drops();
    assert.ok(first.spoof4 > zero.spoof4 && first.spoof6 > zero.spoof6 && first.mac > zero.mac, JSON.stringify({ zero, first }));
    const text = (await xennet(['status', 'web01'])).stdout;
    assert.match(text, /spoofed IPv4 source \d+/);
    assert.match(text, /spoofed IPv6 source \d+/);
    assert.match(text, /spoofed MAC \d+/);
    // The guest gets a second address in the rule file, and the toolstack calls online again
    // (a repeated hotplug event): the hook writes its chains anew.
    writeRules(guestRules(kind, '', '192.168.0.105, 192.168.0.115'));
    const r = await host.runVifScript('vif-xennet', web, 'online', 'libxl', { env });
    assert.equal(r.code, 0, r.stderr);
    kept(await drops(), first, 'a repeated online');
  });

  it('an apply that rewrites its chains (a changed policy) keeps them, and they go on counting', async () => {
    await spoof();
    const before = await drops();
    writeRules(guestRules(kind, '    inbound: drop\n', '192.168.0.105', '"2001:db8::105", "2001:db8::115"'));
    const r = await xennet(['apply']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const after = await drops();
    kept(after, before, 'an apply');
    await spoof();
    const more = await drops();
    assert.ok(more.spoof4 > after.spoof4, `still counting: ${JSON.stringify({ after, more })}`);
  });

  notOnLegacy('a drift repair by the daemon keeps them (a rule inserted into its source check by someone else)', async () => {
    await host.startDaemon(env);
    try {
      await spoof();
    const before = await drops();
      const chain = 'XN-S-vif5.0';
      const r = native ? await host.dom0.exec('nft', ['insert', 'rule', 'bridge', 'xennet', chain, 'ip', 'saddr', '10.9.9.9', 'return']) : await host.dom0.exec('iptables', ['-I', chain, '1', '-s', '10.9.9.9', '-j', 'RETURN']);
      assert.equal(r.code, 0, r.stderr);
      const deadline = Date.now() + 30_000;
      while (!host.daemonLog.some((l) => l.includes('repaired the firewall')) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
      assert.ok(host.daemonLog.some((l) => l.includes('repaired the firewall')), host.daemonLog.join('\n'));
      kept(await drops(), before, 'a drift repair');
    } finally {
      await host.stopDaemon();
    }
  });

  notOnLegacy('a backend switch keeps them, on the backend it moves to', async () => {
    await spoof();
    const before = await drops();
    const other = native ? 'xtables' : 'nftables';
    writeRules(guestRules(other, '    inbound: drop\n', '192.168.0.105', '"2001:db8::105", "2001:db8::115"'));
    const r = await xennet(['apply']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const status = JSON.parse((await xennet(['status', '--json'])).stdout) as { backend: { kind: string } };
    assert.equal(status.backend.kind, other);
    kept(await drops(), before, 'a backend switch');
    // And back.
    writeRules(guestRules(kind, '    inbound: drop\n', '192.168.0.105', '"2001:db8::105", "2001:db8::115"'));
    const back = await xennet(['apply']);
    assert.equal(back.code, 0, back.stdout + back.stderr);
    kept(await drops(), before, 'a switch back');
  });
});
