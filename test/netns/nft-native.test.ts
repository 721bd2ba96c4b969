/**
 * The nftables tables read natively (nfnetlink, no `nft`) are what `nft` prints, parsed: for a
 * host with every kind of guest (declared addresses and the identity guard, learning, isolation,
 * allow rules, drop logging), after apply and after a hook's commit. A rule someone else wrote
 * or changed is not taken for xennet's (the read falls back to `nft`, and the chain differs).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SimHost, xennetCli, type GuestSpec, type SimGuest } from '../../src/sim/host.js';
import { run } from '../../src/sys/exec.js';
import { sweepLeftovers } from './lib/netns.js';

const readsJs = fileURLToPath(new URL('./lib/nft-reads-main.js', import.meta.url));
const snapshotJs = fileURLToPath(new URL('./lib/status-snapshot-main.js', import.meta.url));
const macOf = (d: number): string => `00:16:3e:00:02:${d.toString(16).padStart(2, '0')}`;
const spec = (d: number, name: string, declared = true): GuestSpec => ({ domid: d, name, mac: macOf(d), addresses: [`192.168.0.${100 + d}/24`, `2001:db8::${100 + d}/64`], ...(declared ? { xenstoreIp: `192.168.0.${100 + d} 2001:db8::${100 + d}` } : {}) });

interface Live {
  chains: [string, string[]][];
  counters: [string, { packets: number; bytes: number }[]][];
  policies: [string, string][];
}
interface Reads {
  text: Live;
  native: Live | undefined;
  nativeMs: number;
}

describe('nftables read natively (netns): the same tables as nft prints them', function () {
  this.timeout(300_000);
  let host: SimHost;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  const xennet = (args: string[]) => host.xennet(args, env);
  const reads = async (): Promise<Reads> => {
    const r = await host.dom0.exec('node', [readsJs]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Reads;
  };
  const online = async (g: SimGuest): Promise<void> => {
    const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
    assert.equal(r.code, 0, `online ${g.vif}: ${r.stderr}`);
  };
  /** The two reads agree: chains, rules and policies exactly; counters in shape (traffic may count between the reads). */
  const agree = (r: Reads, what: string): void => {
    assert.ok(r.native, `${what}: the native read knows every rule (${JSON.stringify(r.text.chains.filter(([, rules]) => rules.some((l) => l.includes('(not as xennet wrote it)'))).map(([c]) => c))})`);
    assert.deepEqual(r.native.chains, r.text.chains, what);
    assert.deepEqual(r.native.policies, r.text.policies, what);
    assert.deepEqual(r.native.counters.map(([c, l]) => [c, l.length]), r.text.counters.map(([c, l]) => [c, l.length]), what);
    const textCounters = new Map(r.text.counters);
    for (const [c, l] of r.native.counters) l.forEach((n, i) => assert.ok(n.packets >= textCounters.get(c)![i]!.packets, `${what}: ${c} rule ${i}'s counter`));
  };

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-nft-native-'));
    writeFileSync(join(dir, 'xennet.yaml'), `version: 1\nbackend: nftables\nguests:\n  iso:\n    isolation: true\n    log_drops: true\n  web:\n    inbound: drop\n    allow_in: [ { proto: tcp, ports: [80, 443], from: [192.168.0.0/24] }, { proto: icmp } ]\n`);
    env = { XENNET_RULES: join(dir, 'xennet.yaml') };
    host = await SimHost.create({ autostart: false });
    await host.takeover();
  });

  after(async () => {
    await host?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('after apply, after a hook\'s commit and a guest\'s traffic: every chain, rule, element and counter alike', async () => {
    const guests = [await host.addGuest(spec(1, 'web')), await host.addGuest(spec(2, 'iso')), await host.addGuest(spec(3, 'dhcp1', false))];
    for (const g of guests) await online(g);
    const r = await xennet(['apply']);
    assert.equal(r.code, 0, r.stderr);
    const first = await reads();
    assert.ok(first.text.chains.some(([c]) => c === 'XN-CLAIMS'), 'the guard\'s keys are there');
    assert.ok(first.text.chains.some(([c, l]) => c.startsWith('XN-E-') && l.some((x) => x.startsWith('@id_ip6_port '))), 'a port\'s claims are there');
    agree(first, 'after apply');
    // A hook's commit, and traffic that counts.
    const late = await host.addGuest(spec(4, 'web'));
    await online(late);
    for (const g of guests) await g.ns.ping('192.168.0.1');
    // And traffic the firewall drops (a made-up source address): counters that are not zero.
    await guests[0]!.ns.ip('addr', 'add', '192.168.0.250/24', 'dev', 'eth0');
    assert.equal(await guests[0]!.ns.ping('192.168.0.1', { source: '192.168.0.250', waitSeconds: 1 }), false);
    const after = await reads();
    agree(after, 'after a hook');
    const total = (l: Live): number => l.counters.reduce((n, [, list]) => n + list.reduce((m, c) => m + c.packets, 0), 0);
    assert.ok(total(after.text) > 0 && total(after.native!) >= total(after.text), `counters read natively: ${total(after.native!)} packets, nft: ${total(after.text)}`);
  });

  it('status read from a network snapshot shows what the snapshot holds, not what is live a moment later (the daemon keys a remembered status on that snapshot)', async () => {
    const r = await host.dom0.exec('node', [snapshotJs, 'vif1.0'], { env });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { live: string[]; snapshot: string[]; bridgeNetfilter: Record<string, string> };
    assert.ok(!out.live.some((p) => /br_netfilter|rp_filter/.test(p)), `control: live, nothing is wrong: ${out.live.join('; ')}`);
    assert.equal(out.bridgeNetfilter['net.bridge.bridge-nf-call-iptables'], '0');
    assert.ok(out.snapshot.some((p) => /net\.bridge\.bridge-nf-call-iptables is 0/.test(p)), out.snapshot.join('; '));
    assert.ok(out.snapshot.some((p) => /vif1\.0: dom0's IP stack is open on this guest port \(ipv4 rp_filter is not 1\)/.test(p)), out.snapshot.join('; '));
  });

  it('status, plan and apply read the tables without nft: with the program hidden status sees the same firewall and problems, a flushed chain shows as drifted, plan shows it and apply writes it back; a rule not as xennet wrote it needs nft to be read, and they say so', async () => {
    // A private mount namespace where /usr/sbin/nft is /bin/false (nothing of the machine changes).
    const withoutNft = (args: string[]) =>
      run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', 'mount --bind /bin/false /usr/sbin/nft && exec "$@"', 'hide-nft', 'ip', 'netns', 'exec', host.dom0.name, 'node', xennetCli, ...args], { env: host.env(env), timeoutMs: 120_000 });
    const hidden = await run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', 'mount --bind /bin/false /usr/sbin/nft && exec /usr/sbin/nft --version'], { timeoutMs: 20_000 });
    assert.notEqual(hidden.code, 0, 'the control: nft is hidden there');
    const status = await withoutNft(['status', '--json']);
    const s = JSON.parse(status.stdout) as { ok: boolean; problems: string[]; vifs: { name: string; firewall: string }[] };
    const withNft = JSON.parse((await xennet(['status', '--json'])).stdout) as { problems: string[] };
    assert.deepEqual(s.problems, withNft.problems, 'the same problems as with nft');
    assert.ok(!s.problems.some((p) => /firewall|drift|nft/.test(p)), status.stdout);
    assert.ok(s.vifs.length >= 3 && s.vifs.every((v) => v.firewall === 'in-sync'), status.stdout);
    // The control: a guest's chain flushed (with nft, outside) shows as drifted without nft too.
    assert.equal((await host.dom0.exec('nft', ['flush', 'chain', 'bridge', 'xennet', 'XN-O-vif2.0'])).code, 0);
    const drifted = JSON.parse((await withoutNft(['status', '--json'])).stdout) as { vifs: { name: string; firewall: string }[] };
    assert.equal(drifted.vifs.find((v) => v.name === 'vif2.0')?.firewall, 'drifted');
    const plan = await withoutNft(['plan']);
    assert.equal(plan.code, 2, plan.stdout + plan.stderr);
    assert.match(plan.stdout, /XN-O-vif2\.0/);
    const apply = await withoutNft(['apply']);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    assert.equal((await withoutNft(['plan'])).code, 0, 'written back: nothing left to change');
    assert.equal((await xennet(['plan'])).code, 0, 'and nft agrees');
    // A rule another program added: only what nft prints can say what it is.
    assert.equal((await host.dom0.exec('nft', ['insert', 'rule', 'bridge', 'xennet', 'XN-O-vif2.0', 'accept'])).code, 0);
    const foreign = await withoutNft(['plan']);
    assert.notEqual(foreign.code, 0);
    assert.match(foreign.stderr, /nft list table (bridge|inet) xennet failed: exit 1/);
    assert.notEqual((await withoutNft(['apply'])).code, 0);
    assert.equal((await xennet(['apply'])).code, 0);
  });

  it('a rule another program added, or replaced keeping the comment, is not taken for xennet\'s: the native read falls back or nft\'s reading marks it, and plan and apply write the chain again', async () => {
    const chain = 'XN-O-vif1.0';
    const r = await host.dom0.exec('nft', ['insert', 'rule', 'bridge', 'xennet', chain, 'accept']);
    assert.equal(r.code, 0, r.stderr);
    const after = await reads();
    assert.equal(after.native, undefined, 'an untagged rule: no native answer');
    const plan = await xennet(['plan']);
    assert.equal(plan.code, 2, `plan sees the change:\n${plan.stdout}${plan.stderr}`);
    assert.match(plan.stdout, /XN-O-vif1\.0/);
    assert.equal((await xennet(['apply'])).code, 0);
    agree(await reads(), 'after the repair');
    // A rule replaced by hand that keeps the comment of the rule it replaces: its expressions are
    // not those of the digest written with it (it has none), so the native read does not answer,
    // and status, plan and apply go by what nft prints, where its tag is not its text's.
    const listed = (await host.dom0.exec('nft', ['-a', 'list', 'chain', 'bridge', 'xennet', chain])).stdout;
    const first = /comment "(xn:[^"]+)" # handle (\d+)/.exec(listed)!;
    assert.equal((await host.dom0.exec('nft', ['replace', 'rule', 'bridge', 'xennet', chain, 'handle', first[2]!, 'accept', 'comment', `"${first[1]}"`])).code, 0);
    const replaced = await reads();
    assert.equal(replaced.native, undefined, 'the native read does not take it for the rule written');
    assert.ok(replaced.text.chains.find(([c]) => c === chain)![1].some((l) => l === 'accept # (not as xennet wrote it)'), 'nft\'s reading marks it');
    const st = await xennet(['status', '--json']);
    const vif = (JSON.parse(st.stdout) as { vifs: { name: string; firewall: string }[] }).vifs.find((v) => v.name === 'vif1.0');
    assert.equal(vif?.firewall, 'drifted', 'status sees it');
    const plan2 = await xennet(['plan']);
    assert.equal(plan2.code, 2, 'plan sees it');
    assert.match(plan2.stdout, /XN-O-vif1\.0/);
    assert.equal((await xennet(['apply'])).code, 0);
    assert.equal((await xennet(['plan'])).code, 0, 'apply put the rule back: nothing left to change');
    agree(await reads(), 'after the second repair');
  });

  it('a chain made in the inet table under a guest\'s chain name (empty, or with a rule) is not the guest\'s: plan shows it by its family, apply deletes it and converges, and the guest\'s chain stays', async () => {
    const nft = async (...args: string[]): Promise<string> => {
      const r = await host.dom0.exec('nft', args);
      assert.equal(r.code, 0, `nft ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const guestChain = await nft('list', 'chain', 'bridge', 'xennet', 'XN-O-vif1.0');
    await nft('list', 'table', 'inet', 'xennet'); // the control: the table is there (web's inbound: drop)
    for (const rule of [[], ['accept']]) {
      await nft('add', 'chain', 'inet', 'xennet', 'XN-O-vif1.0');
      if (rule.length > 0) await nft('add', 'rule', 'inet', 'xennet', 'XN-O-vif1.0', ...rule);
      const r = await reads();
      assert.ok(r.text.chains.some(([c]) => c === 'inet:XN-O-vif1.0'), JSON.stringify(r.text.chains.map(([c]) => c)));
      if (rule.length === 0) agree(r, 'an empty chain: read natively alike');
      else assert.equal(r.native, undefined, 'a rule nobody tagged: read through nft');
      const plan = await xennet(['plan']);
      assert.equal(plan.code, 2, plan.stdout + plan.stderr);
      assert.match(plan.stdout, /inet:XN-O-vif1\.0/);
      const apply = await xennet(['apply']);
      assert.equal(apply.code, 0, apply.stdout + apply.stderr);
      const again = await xennet(['plan']);
      assert.equal(again.code, 0, `converged: ${again.stdout}`);
      assert.notEqual((await host.dom0.exec('nft', ['list', 'chain', 'inet', 'xennet', 'XN-O-vif1.0'])).code, 0, 'deleted from the inet table');
      assert.equal(await nft('list', 'chain', 'bridge', 'xennet', 'XN-O-vif1.0'), guestChain, 'the guest\'s chain is as it was');
    }
  });

  it('strays that would block their own removal or hide under xennet\'s names (helper-36): an inet map that jumps to a chain of a guest\'s name, a bridge chain named like a guest\'s elements that drops everything; plan names them, apply deletes them, and the guests pass again', async () => {
    const nft = async (...args: string[]): Promise<void> => {
      const r = await host.dom0.exec('nft', args);
      assert.equal(r.code, 0, `nft ${args.join(' ')}: ${r.stderr}`);
    };
    const web = [...host.guests.values()].find((g) => g.vif === 'vif1.0')!;
    assert.ok(await web.ns.ping('192.168.0.1'), 'the control: the guest passes');
    await nft('add', 'chain', 'inet', 'xennet', 'XN-O-vif1.0');
    await nft('add', 'map', 'inet', 'xennet', 'from_guest', '{ type ifname : verdict; }');
    await nft('add', 'element', 'inet', 'xennet', 'from_guest', '{ "vif1.0" : jump XN-O-vif1.0 }');
    await nft('add', 'chain', 'bridge', 'xennet', 'XN-E-vif1.0', '{ type filter hook forward priority -400; policy drop; }');
    assert.equal(await web.ns.ping('192.168.0.1', { waitSeconds: 1 }), false, 'the control: the stray chain drops its frames');
    // (A stray chain with a hook is read through nft: the native reader knows only xennet's hooks.)
    const r = await reads();
    assert.equal(r.native, undefined);
    const keys = r.text.chains.map(([c]) => c).filter((c) => c.includes(':'));
    assert.deepEqual(keys.sort(), ['bridge:XN-E-vif1.0', 'inet:XN-O-vif1.0', 'inet:map from_guest']);
    const plan = await xennet(['plan']);
    assert.equal(plan.code, 2, plan.stdout + plan.stderr);
    for (const k of keys) assert.ok(plan.stdout.includes(k), `${k}:\n${plan.stdout}`);
    const apply = await xennet(['apply']);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    assert.equal((await xennet(['plan'])).code, 0, 'converged');
    assert.ok(await web.ns.ping('192.168.0.1'), 'the guest passes again');
    assert.notEqual((await host.dom0.exec('nft', ['list', 'map', 'inet', 'xennet', 'from_guest'])).code, 0, 'the inet map is gone');
    // A stray map that jumps to the chain of a guest that leaves: the guest's removal (a hook's
    // commit, from the record) is refused while the map holds the jump; the whole table is then
    // reconciled, the map emptied first, and the guest's chains go.
    const late = [...host.guests.values()].find((g) => g.vif === 'vif4.0')!;
    await nft('add', 'map', 'bridge', 'xennet', 'mymap', '{ type ifname : verdict; }');
    await nft('add', 'element', 'bridge', 'xennet', 'mymap', '{ "vif4.0" : jump XN-O-vif4.0 }');
    const off = await host.runVifScript('vif-xennet', late, 'offline', 'libxl', { env });
    assert.equal(off.code, 0, off.stderr);
    assert.notEqual((await host.dom0.exec('nft', ['list', 'chain', 'bridge', 'xennet', 'XN-O-vif4.0'])).code, 0, 'the leaving guest\'s chain is gone');
    assert.notEqual((await host.dom0.exec('nft', ['list', 'map', 'bridge', 'xennet', 'mymap'])).code, 0, 'and the stray map');
  });
});
