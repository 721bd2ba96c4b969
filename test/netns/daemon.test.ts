/**
 * The resident controller on the simulated Xen host: hooks served through the daemon and by the
 * in-process fallback, a daemon killed in the middle of a boot storm, rule-file changes, drift
 * repaired and proven by traffic, bad requests refused, SIGTERM.
 */
import assert from 'node:assert/strict';
import { chmodSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { SimHost, xennetCli, type GuestSpec, type SimGuest } from '../../src/sim/host.js';
import { run, start } from '../../src/sys/exec.js';
import { loadIndex } from '../../src/firewall/store.js';
import { silentLogger } from '../../src/sys/log.js';
import { pidAlive, readPidFile } from '../../src/sys/process.js';
import { arrives, hex } from './lib/frames.js';
import { guestRulesPresent, inboundDrops, installedOnce } from './lib/installed.js';
import { sweepLeftovers } from './lib/netns.js';

const macOf = (d: number): string => `00:16:3e:00:${(3 + (d >> 8)).toString(16).padStart(2, '0')}:${(d & 255).toString(16).padStart(2, '0')}`;
const ipOf = (d: number): string => `192.168.0.${d >= 200 ? d - 150 : 100 + d}`;
const spec = (d: number, extra: Partial<GuestSpec> = {}): GuestSpec => ({ domid: d, name: `g${d}`, mac: macOf(d), addresses: [`${ipOf(d)}/24`], xenstoreIp: ipOf(d), ...extra });

interface Stats {
  pid: number;
  lockHeld: boolean;
  lockWaiting: number;
  hookCalls: number;
  repairs: number;
  badRequests: number;
  policy: { state: string; problem?: string };
  backends: { prepared: number; lookedAgain: number } | null;
  drift: { reads: number; unchanged: number; lookups: number };
  names?: { followed: number } | null;
}

describe('xennet daemon (netns): hooks in milliseconds, fallback, storms, drift', function () {
  this.timeout(600_000);
  let host: SimHost;
  let dir: string;
  let rules: string;
  let env: NodeJS.ProcessEnv;

  const hook = (g: SimGuest, cmd: string, extra: NodeJS.ProcessEnv = {}) => host.runVifScript('vif-xennet', g, cmd, 'libxl', { env: { ...env, ...extra } });
  const online = async (g: SimGuest): Promise<string> => {
    const r = await hook(g, 'online');
    assert.equal(r.code, 0, `online ${g.vif}: ${r.stderr}`);
    return r.stderr;
  };
  const ask = (line: string, waitMs = 8000): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = connect(join(host.runDir, 'daemon.sock'));
      let buf = '';
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error('no answer'));
      }, waitMs);
      s.on('connect', () => s.write(line));
      s.on('data', (b: Buffer) => (buf += b.toString('utf8')));
      s.on('close', () => {
        clearTimeout(t);
        resolve(buf.trim());
      });
      s.on('error', (e) => (buf ? resolve(buf.trim()) : reject(e)));
    });
  const stats = async (): Promise<Stats> => (JSON.parse(await ask('{"v":1,"cmd":"stats"}\n')) as { result: Stats }).result;
  const gw = async (): Promise<string> => (await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;
  const spoofed = async (g: SimGuest, marker: string): Promise<boolean> => arrives(g.ns, host.lan, 'lan0', hex(marker), 'udp4', [g.mac, await gw(), '192.168.0.250', '192.168.0.1', '4000', '4001', marker]);
  const until = async (what: string, ok: () => Promise<boolean> | boolean, ms = 10_000): Promise<number> => {
    const t0 = performance.now();
    while (!(await ok())) {
      if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return performance.now() - t0;
  };
  const attached = async (name: string): Promise<boolean> => (await host.dom0.ipJson<{ ifname: string; master?: string }[]>('link', 'show')).some((l) => l.ifname === name && l.master === 'xenbr0');

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-daemon-'));
    rules = join(dir, 'xennet.yaml');
  });

  beforeEach(async () => {
    writeFileSync(rules, 'version: 1\nguests:\n  web:\n    inbound: drop\n');
    env = { XENNET_RULES: rules };
    host = await SimHost.create({ autostart: false });
    await host.takeover();
  });

  afterEach(async () => {
    await host?.destroy();
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves the hook: the firewall is prepared when the backend appears, the hook attaches; the guest works and cannot spoof', async () => {
    await host.startDaemon(env);
    const g = await host.addGuest(spec(1, { name: 'web' }));
    await until('the firewall prepared', async () => (await stats()).backends?.prepared === 1);
    assert.equal(await attached(g.vif), false, 'prepared, not attached');
    const out = await online(g);
    assert.match(out, /online vif1\.0 \(web\) on bridge xenbr0/);
    const s = await stats();
    assert.equal(s.hookCalls, 1, 'the daemon ran it');
    assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-status`), 'connected');
    assert.ok(await g.ns.ping('192.168.0.1'), 'the guest reaches the gateway');
    assert.equal(await spoofed(g, 'daemon-spoof'), false);
    assert.ok(await inboundDrops(host.dom0, 'vif1.0'), 'its inbound: drop');
    // offline through the daemon: answered once the vif is off the bridge, its rules go right after
    const off = await hook(g, 'offline');
    assert.equal(off.code, 0, off.stderr);
    assert.equal(await attached(g.vif), false);
    await until('the rules removed', async () => !(await guestRulesPresent(host.dom0, 'vif1.0')), 5000);
    host.removeDevice(g);
    const st = await host.xennet(['status', '--json'], env);
    assert.equal(st.code, 0, st.stdout);
    assert.match(st.stdout, /"running": true/);
  });

  it('a guest whose backend goes while its interface is attached, the interface then deleted with no offline (a toolstack that crashed): its rules go all the same, within seconds', async () => {
    await host.startDaemon(env);
    const g = await host.addGuest(spec(1, { name: 'web' }));
    assert.match(await online(g), /online vif1\.0 \(web\) on bridge xenbr0/);
    host.removeDevice(g);
    // The daemon sees the backend go while the interface is still attached: its offline may come.
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok(await guestRulesPresent(host.dom0, 'vif1.0'), 'kept while attached');
    // Looked at again every 5 s, once, however many events come for the gone backend.
    const before = (await stats()).backends!.lookedAgain;
    for (let i = 0; i < 30; i++) {
      host.xenstored.write(`${g.backendPath}/x`, '1');
      host.xenstored.rm(g.backendPath);
    }
    await new Promise((r) => setTimeout(r, 11_000));
    const looked = (await stats()).backends!.lookedAgain - before;
    assert.ok(looked >= 1 && looked <= 3, `looked at again ${looked} times in 11 s`);
    await host.dom0.ip('link', 'del', g.vif);
    await until('the rules removed', async () => !(await guestRulesPresent(host.dom0, 'vif1.0')), 15_000);
    const st = JSON.parse((await host.xennet(['status', '--json'], env)).stdout) as { problems: string[] };
    assert.deepEqual(st.problems, []);
  });

  it('a guest with a vifname waiting for its hook: its prepared rules are its own while xenstore says so (its backend, its hook not finished, its MAC): status shows it, plan keeps them; otherwise they are stale', async () => {
    await host.startDaemon(env);
    await online(await host.addGuest(spec(5)));
    const g = await host.addGuest(spec(4, { vifname: 'web4' }));
    await until('the firewall prepared', async () => (await stats()).backends?.prepared === 2);
    assert.ok(await guestRulesPresent(host.dom0, 'web4'), 'prepared under the vifname');
    type Status = { problems: string[]; staleChains: string[]; vifs: { name: string; firewall: string; hotplugStatus: string | null }[] };
    const read = async (): Promise<Status> => JSON.parse((await host.xennet(['status', '--json', '--fresh'], env)).stdout) as Status;
    let s = await read();
    assert.deepEqual(s.staleChains, [], s.problems.join('\n'));
    assert.deepEqual(s.vifs.map((v) => [v.name, v.firewall, v.hotplugStatus]), [['vif5.0', 'in-sync', 'connected'], ['web4', 'in-sync', '']]);
    // Its hook has not run: that is the one problem (no stale chains, no guard or dispatch out of
    // line with the rules, and its link down until the hook brings it up is part of it).
    assert.deepEqual(s.problems, ['web4: hotplug-status is "", not "connected": its hook has not finished, and its interface (vif4.0 until the hook renames it) is on no bridge yet; its rules are in place']);
    const plan = await host.xennet(['plan'], env);
    assert.equal(plan.code, 0, `nothing to change, nothing to remove: ${plan.stdout}${plan.stderr}`);
    // The daemon stopped, and the backend's MAC is not the one the rules were made for (a new guest
    // of the domain that left them): they are not its.
    await host.stopDaemon();
    host.xenstored.write(`${g.backendPath}/mac`, '00:16:3e:00:00:99');
    s = await read();
    assert.ok(s.staleChains.some((c) => c.endsWith('-web4')), `another MAC: ${s.staleChains.join(', ')}`);
    assert.ok(s.problems.some((p) => p.startsWith('backend 4/0 (g4): its hook has not finished (hotplug-status ""): its interface vif4.0 is on no bridge;')), s.problems.join('\n'));
    // No MAC in xenstore is not the MAC the rules were made for either.
    host.xenstored.rm(`${g.backendPath}/mac`);
    assert.ok((await read()).staleChains.some((c) => c.endsWith('-web4')), 'no MAC');
    host.xenstored.write(`${g.backendPath}/mac`, g.mac);
    assert.deepEqual((await read()).staleChains, [], 'its own MAC again');
    // Its hook failed: xenstore no longer says the rules wait for it.
    host.xenstored.write(`${g.backendPath}/hotplug-status`, 'error');
    s = await read();
    assert.ok(s.staleChains.some((c) => c.endsWith('-web4')), `stale once its hook failed: ${s.staleChains.join(', ')}`);
    assert.ok(!s.problems.some((p) => p.includes('has not finished')), s.problems.join('\n'));
    assert.ok(s.problems.some((p) => p.startsWith('backend 4/0 (g4): its hook failed')), s.problems.join('\n'));
    host.xenstored.write(`${g.backendPath}/hotplug-status`, '');
    await online(g);
    s = await read();
    assert.ok(s.problems.length === 0, s.problems.join('\n'));
  });

  it('without a daemon, or with one that is stopped or hung, the hook runs in-process with the same result', async () => {
    const a = await host.addGuest(spec(2));
    const t0 = performance.now();
    await online(a);
    assert.ok(performance.now() - t0 < 10_000);
    assert.ok(await a.ns.ping('192.168.0.1'));
    await host.startDaemon(env);
    const pid = readPidFile(join(host.runDir, 'daemon.pid'));
    assert.ok(pid !== undefined, 'the daemon wrote its pid file');
    // Hung while idle (a daemon hung while it holds the hotplug lock holds up everyone, Xen's
    // scripts too, as any lock holder would).
    await until('the daemon idle', async () => !(await stats()).lockHeld);
    process.kill(pid, 'SIGSTOP');
    try {
      const b = await host.addGuest(spec(3));
      const t1 = performance.now();
      await online(b);
      assert.ok(performance.now() - t1 < 6000, `a hung daemon holds the hook ${Math.round(performance.now() - t1)} ms`);
      assert.ok(await b.ns.ping('192.168.0.1'));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    assert.equal((await stats()).hookCalls, 0, 'the hung daemon ran none of it when it woke up');
    const code = await host.stopDaemon('SIGTERM');
    assert.equal(code, 0);
    assert.equal(existsSync(join(host.runDir, 'daemon.sock')), false, 'SIGTERM removes the socket');
    const c = await host.addGuest(spec(4));
    await online(c);
    assert.ok(await c.ns.ping('192.168.0.1'));
    assert.equal((await host.xennet(['plan'], env)).code, 0, 'the rules are exactly what the rule file says');
  });

  // 32 guests: the ones the killed daemon leaves fall back to 32 Node.js processes at once, each
  // within Xen's 40 s; with 64 on this 2-core machine the first ones ran out of their budget
  // waiting for the lock (as designed: reported, exit 1) and the test failed at random.
  it('a daemon killed in the middle of a 32-guest boot storm: every guest ends connected, its rules in exactly once', async () => {
    await host.startDaemon(env);
    const guests: SimGuest[] = [];
    for (let i = 0; i < 32; i++) guests.push(await host.addGuest(spec(200 + i)));
    const runs = guests.map((g) => hook(g, 'online'));
    await until('the first calls served', async () => (await stats().catch(() => ({ hookCalls: 0 }))).hookCalls >= 8, 60_000);
    await host.stopDaemon('SIGKILL');
    const results = await Promise.all(runs);
    results.forEach((r, i) => assert.equal(r.code, 0, `${guests[i]!.vif}: ${r.stderr}`));
    for (const g of guests) {
      assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-status`), 'connected', g.vif);
      assert.ok(await attached(g.vif), `${g.vif} attached`);
    }
    assert.deepEqual(await installedOnce(host.dom0, guests.map((g) => g.vif)), []);
    const plan = await host.xennet(['plan'], env);
    assert.equal(plan.code, 0, `nothing pending: ${plan.stdout}`);
    assert.ok(await guests[0]!.ns.ping('192.168.0.1') && (await guests[31]!.ns.ping('192.168.0.1')));
    assert.equal(await spoofed(guests[15]!, 'storm-spoof'), false);
  });

  it('rule-file changes: a valid one is used by the next hook; an invalid, a deleted and a 10 MB one keep the last good policy, and status says so', async () => {
    await host.startDaemon(env);
    const a = await host.addGuest(spec(5, { name: 'web' }));
    await online(a);
    writeFileSync(rules, 'version: 1\nguests:\n  web:\n    inbound: drop\n  app:\n    inbound: drop\n');
    await until('the new file loaded', async () => (await stats()).policy.state === 'valid' && /loaded \(it changed\)/.test(host.daemonLog.join('\n')));
    const b = await host.addGuest(spec(6, { name: 'app' }));
    await online(b);
    assert.ok(await inboundDrops(host.dom0, 'vif6.0'), 'the new policy applies to the next guest');
    for (const [what, change] of [
      ['invalid', () => writeFileSync(rules, 'version: 1\nguests:\n  app:\n    inbound: maybe\n')],
      ['10 MB', () => writeFileSync(rules, `version: 1\n# ${'x'.repeat(10 * 1024 * 1024)}\n`)],
      ['deleted', () => rmSync(rules)],
    ] as const) {
      change();
      await until(`the ${what} file noticed`, async () => (await stats()).policy.state === 'kept');
      const st = await host.xennet(['status', '--json'], env);
      assert.equal(st.code, 1, what);
      assert.match(st.stdout, /the daemon keeps the policy loaded at/, what);
      const c = await host.addGuest(spec(what === 'invalid' ? 7 : what === '10 MB' ? 8 : 9, { name: 'app' }));
      const calls = (await stats()).hookCalls;
      await online(c);
      assert.equal((await stats()).hookCalls, calls + 1, `${what}: the daemon served the hook`);
      assert.ok(await inboundDrops(host.dom0, c.vif), `${what}: the last good policy is in force`);
      writeFileSync(rules, 'version: 1\nguests:\n  web:\n    inbound: drop\n  app:\n    inbound: drop\n');
      process.kill((await stats()).pid, 'SIGHUP');
      await until('the good file again', async () => (await stats()).policy.state === 'valid');
    }
  });

  it('without the daemon, a hook keeps the last good policy as the daemon does: a rule file that turns invalid or is deleted, said in the hook\'s log and in status', async () => {
    writeFileSync(rules, 'version: 1\nguests:\n  app:\n    inbound: drop\n');
    await online(await host.addGuest(spec(51, { name: 'app' })));
    assert.ok(await inboundDrops(host.dom0, 'vif51.0'));
    for (const [what, change, domid] of [
      ['invalid', () => writeFileSync(rules, 'version: 1\nguests:\n  app:\n    inbound: maybe\n'), 52],
      ['deleted', () => rmSync(rules), 53],
    ] as const) {
      change();
      const err = await online(await host.addGuest(spec(domid, { name: 'app' })));
      assert.match(err, /cannot be used .*the last good policy \(validated [^)]+\) stays in force/, what);
      assert.ok(await inboundDrops(host.dom0, `vif${domid}.0`), `${what}: the last good policy is in force`);
      const st = await host.xennet(['status', '--json'], env);
      assert.equal(st.code, 1, what);
      assert.match(st.stdout, /guests are firewalled by the last good policy/, what);
    }
    writeFileSync(rules, 'version: 1\n');
  });

  it('xtables: a flush of the root jumps, XN-FORWARD or a guest\'s chain is repaired within seconds, and the rules bite again', async () => {
    // (nftables: the backend's own test below flushes the ruleset and a dispatch entry.)
    writeFileSync(rules, 'version: 1\nbackend: xtables\nguests:\n  web:\n    inbound: drop\n');
    await host.startDaemon(env);
    const g = await host.addGuest(spec(10));
    await online(g);
    assert.equal(await spoofed(g, 'before'), false);
    for (const [tool, args] of [
      ['iptables', ['-F', 'FORWARD']],
      ['iptables', ['-F', 'XN-FORWARD']],
      ['ebtables', ['-t', 'nat', '-F', 'XN-E-vif10.0']],
      ['iptables', ['-F', 'XN-S-vif10.0']],
    ] as const) {
      const before = (await stats()).repairs;
      const r = await host.dom0.exec(tool, [...args]);
      assert.equal(r.code, 0, r.stderr);
      const ms = await until(`${tool} ${args.join(' ')} repaired`, async () => (await stats()).repairs > before, 5000);
      assert.ok(ms <= 5000, `repaired in ${Math.round(ms)} ms`);
      assert.equal(await spoofed(g, `after-${args.join('')}`), false, `${tool} ${args.join(' ')}: the guest's rules bite again`);
    }
    assert.match(host.daemonLog.join('\n'), /repaired the firewall after a change by another program: .*XN-FORWARD/);
    assert.equal((await host.xennet(['plan'], env)).code, 0);
  });

  it('drift while idle: the periodic check reads no rules when nothing was committed since a clean one; a commit by another program is read at once', async () => {
    await host.startDaemon(env);
    const g = await host.addGuest(spec(13));
    await online(g);
    // Another program commits (anything: the generation moves): a check reads at once, finds
    // nothing of xennet's changed, and remembers what it saw.
    const before = (await stats()).drift;
    assert.equal((await host.dom0.exec('nft', ['add', 'table', 'ip', 'xnt-other'])).code, 0);
    await until('a read after the commit', async () => (await stats()).drift.reads > before.reads, 5000);
    await new Promise((r) => setTimeout(r, 2000));
    const quiet = (await stats()).drift;
    // The periodic check (every 30 s) comes while nothing changes: it reads nothing.
    await until('the periodic check', async () => (await stats()).drift.unchanged > quiet.unchanged, 40_000);
    assert.equal((await stats()).drift.reads, quiet.reads, 'no read of the rules');
    assert.equal((await stats()).drift.lookups, quiet.lookups, 'nor of the index (the backend of the last check, the index the same)');
    // The control: what another program breaks is still found and repaired.
    const repairs = (await stats()).repairs;
    assert.equal((await host.dom0.exec('nft', ['flush', 'chain', 'bridge', 'xennet', 'XN-S-vif13.0'])).code, 0, 'the default backend, nftables');
    await until('the repair', async () => (await stats()).repairs > repairs, 5000);
    assert.equal(await spoofed(g, 'idle-after'), false);
  });

  it('nftables backend: the daemon prepares and serves hooks, repairs a flush ruleset, a lost dispatch entry and an emptied constant set within seconds, and follows an apply that moves the firewall back to xtables', async () => {
    writeFileSync(rules, 'version: 1\nbackend: nftables\nguests:\n  web:\n    inbound: drop\n');
    await host.startDaemon(env);
    const g = await host.addGuest(spec(11, { name: 'web' }));
    await until('the firewall prepared', async () => (await stats()).backends?.prepared === 1);
    await online(g);
    assert.equal((await stats()).hookCalls, 1, 'the daemon ran it');
    const nft = async (...args: string[]): Promise<string> => {
      const r = await host.dom0.exec('nft', args);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };
    assert.match(await nft('list', 'table', 'bridge', 'xennet'), /chain XN-I-vif11\.0 \{/);
    assert.doesNotMatch((await host.dom0.exec('iptables-save', [])).stdout, /XN-/, 'nothing in the xtables tables');
    assert.ok(await g.ns.ping('192.168.0.1'), 'replies to its own connections come back (connection state)');
    assert.equal(await spoofed(g, 'nft-before'), false);
    for (const args of [['flush', 'ruleset'], ['delete', 'element', 'bridge', 'xennet', 'from_guest', '{ "vif11.0" }'], ['flush', 'set', 'bridge', 'xennet', 'ip_types']]) {
      const before = (await stats()).repairs;
      await nft(...args);
      const ms = await until(`nft ${args.join(' ')} repaired`, async () => (await stats()).repairs > before, 5000);
      assert.ok(ms <= 5000, `repaired in ${Math.round(ms)} ms`);
      assert.equal(await spoofed(g, `nft-after-${args[0]}`), false, `nft ${args.join(' ')}: the guest's rules bite again`);
    }
    assert.match(host.daemonLog.join('\n'), /repaired the firewall after a change by another program: .*nftables chain XN-PRE restored/);
    // A flushed ruleset is every chain: the log line names a few and counts the rest.
    assert.match(host.daemonLog.join('\n'), /repaired the firewall after a change by another program: nftables chain XN-PRE restored(; [^;\n]+){5}; and \d+ more$/m);
    // The operator moves the firewall back: the daemon checks and serves the backend now installed.
    writeFileSync(rules, 'version: 1\nbackend: xtables\nguests:\n  web:\n    inbound: drop\n');
    const moved = await host.xennet(['apply'], env);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal((await host.dom0.exec('nft', ['list', 'table', 'bridge', 'xennet'])).code, 1, 'the nftables table is gone');
    assert.match((await host.dom0.exec('iptables-save', [])).stdout, /-A XN-I-vif11\.0 .*-j DROP/);
    const before = (await stats()).repairs;
    assert.equal((await host.dom0.exec('iptables', ['-F', 'XN-S-vif11.0'])).code, 0);
    await until('the xtables chain repaired', async () => (await stats()).repairs > before, 5000);
    assert.equal(await spoofed(g, 'moved-back'), false);
    const g2 = await host.addGuest(spec(12));
    await online(g2);
    assert.match((await host.dom0.exec('iptables-save', [])).stdout, /:XN-O-vif12\.0/, 'the next hook installs on xtables');
    assert.equal((await host.xennet(['plan'], env)).code, 0);
  });

  it('status through the daemon: remembered while nothing it reads changes; a link, xenstore, the ruleset, the rule file, a br_netfilter or guest-port setting changed just before is seen at once; --fresh reads anew; xtables is always read', async () => {
    await host.startDaemon(env);
    const [a, b] = [await host.addGuest(spec(21)), await host.addGuest(spec(22))];
    await online(a);
    await online(b);
    type Status = { ok: boolean; problems: string[]; notes: string[]; vifs: { name: string; domain: string | null; up: boolean; policy: string | null; hotplugStatus: string | null }[]; backend: { kind: string } | null };
    type Answer = { status: Status; read: { at: string; remembered: boolean } };
    const status = async (fresh = false): Promise<Answer> => {
      const r = JSON.parse(await ask(`{"v":1,"cmd":"status"${fresh ? ',"fresh":true' : ''}}\n`, 30_000)) as { ok: boolean; result: Answer };
      assert.ok(r.ok, JSON.stringify(r));
      return r.result;
    };
    const vif = (s: Answer, name: string): Status['vifs'][number] => s.status.vifs.find((v) => v.name === name)!;
    // Once the daemon's own work after a change is done (a busy machine may take a while), the
    // next answer is the last one remembered.
    const remembered = async (): Promise<[Answer, Answer]> => {
      let before = await status();
      for (let i = 0; i < 20; i++) {
        const now = await status();
        if (now.read.remembered) return [before, now];
        before = now;
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error('status was never remembered');
    };
    const [first, again] = await remembered();
    assert.equal(again.read.at, first.read.at);
    assert.deepEqual(again.status, first.status);
    assert.equal(first.status.backend?.kind, 'nftables');
    // Each change is made just before the request: the answer must show it.
    await host.dom0.ip('link', 'set', 'vif21.0', 'down');
    let s = await status();
    assert.equal(s.read.remembered, false, 'a link went down');
    assert.equal(vif(s, 'vif21.0').up, false);
    assert.ok(s.status.problems.some((p) => p.startsWith('vif21.0: link is down')), s.status.problems.join('\n'));
    await host.dom0.ip('link', 'set', 'vif21.0', 'up');
    assert.equal(vif(await status(), 'vif21.0').up, true, 'and up again');
    await remembered();
    host.xenstored.write(`${b.backendPath}/hotplug-status`, 'busy');
    s = await status();
    assert.equal(vif(s, 'vif22.0').hotplugStatus, 'busy', 'a xenstore write');
    host.xenstored.write(`${b.backendPath}/hotplug-status`, 'connected');
    assert.equal(vif(await status(), 'vif22.0').hotplugStatus, 'connected');
    await remembered();
    // A guest writing its own nodes (data/, as often as it likes) changes nothing status shows.
    for (let i = 0; i < 5; i++) host.xenstored.write(`/local/domain/21/data/junk${i}`, 'x');
    assert.equal((await status()).read.remembered, true, "a guest's own xenstore nodes");
    host.xenstored.write('/local/domain/22/name', 'renamed22');
    assert.equal(vif(await status(), 'vif22.0').domain, 'renamed22', "a domain's name");
    // The daemon moves the renamed domain's vif to its policy (a commit, an index write): wait for
    // it, or it lands in the middle of what follows.
    await until('the renamed vif moved', async () => ((await stats()).names?.followed ?? 0) >= 1);
    assert.equal((await host.dom0.exec('nft', ['add', 'table', 'inet', 'xnt-other'])).code, 0);
    assert.equal((await status()).read.remembered, false, 'a commit to nf_tables (any table)');
    writeFileSync(rules, 'version: 1\nguests:\n  web:\n    inbound: drop\n  g21:\n    inbound: drop\n');
    s = await status();
    assert.equal(vif(s, 'vif21.0').policy, 'g21', 'the rule file changed');
    assert.ok(s.status.problems.some((p) => p.startsWith('vif21.0') && p.includes('drifted')), 'its rules are not yet what the file says');
    await host.dom0.exec('sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=0']);
    s = await status();
    assert.ok(s.status.problems.some((p) => p.includes('bridge-nf-call-iptables is 0')), 'a br_netfilter setting');
    await host.dom0.exec('sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=1']);
    assert.ok(!(await status()).status.problems.some((p) => p.includes('bridge-nf-call-iptables')), 'and back');
    await remembered();
    await host.dom0.exec('sysctl', ['-qw', 'net.ipv4.conf.vif21/0.drop_unicast_in_l2_multicast=0']);
    s = await status();
    assert.ok(s.status.problems.some((p) => p.startsWith("vif21.0: dom0's IP stack is open on this guest port")), `a guest port's sysctl: ${s.status.problems.join('\n')}`);
    await host.dom0.exec('sysctl', ['-qw', 'net.ipv4.conf.vif21/0.drop_unicast_in_l2_multicast=1']);
    assert.ok(!(await status()).status.problems.some((p) => p.startsWith('vif21.0: dom0')), 'and back');
    await remembered();
    // The takeover's journal rewritten as a start cut short, and nothing else: status shows it.
    const journal = join(host.env(env)['XENNET_STATE_DIR']!, 'takeover-xenbr0.json');
    const kept = readFileSync(journal, 'utf8');
    assert.match(kept, /"phase": "up"/);
    writeFileSync(journal, kept.replace('"phase": "up"', '"phase": "starting"'));
    s = await status();
    assert.ok(s.status.problems.some((p) => p.startsWith('a start of xenbr0 (taking over eth0) was interrupted')), `the takeover journal: ${s.status.problems.join('\n')}`);
    // A command holding the takeover's lock: its work in progress (a note). Then it dies (a crash,
    // its journal and lock left as they were): the remembered note must not outlive it.
    const lock = join(host.env(env)['XENNET_STATE_DIR']!, 'takeover-xenbr0.lock');
    const holder = start('flock', ['--close', lock, 'sleep', '60']);
    try {
      await until('flock(1) holds the lock', async () => (await status()).status.notes.some((n) => n === `a start of xenbr0 (taking over eth0) is running now (pid ${holder.pid}): the host's network is changing`));
      await remembered();
      holder.kill('SIGKILL');
      await until('the holder is gone', async () => !pidAlive(holder.pid!));
      s = await status();
      assert.ok(s.status.problems.some((p) => p.startsWith('a start of xenbr0 (taking over eth0) was interrupted')), `a dead holder: ${s.status.problems.join('\n')}`);
    } finally {
      holder.kill('SIGKILL');
      rmSync(lock, { force: true });
    }
    writeFileSync(journal, kept);
    assert.ok(!(await status()).status.problems.some((p) => p.includes('was interrupted')), 'and back');
    await remembered();
    assert.equal((await status(true)).read.remembered, false, 'fresh: read anew');
    // The CLI says how old what it shows is.
    const cli = await host.xennet(['status'], env);
    assert.match(cli.stdout, /read by the daemon \d+ s ago \(.*\); nothing it reads has changed since, the drop counters are as of then/);
    // `status` and `status --json` are answered before the command line parser loads (the daemon
    // renders them), and print what the full command prints (`--rules` names the same file, and
    // takes the full command). Which modules load, Node's ESM loader says (NODE_DEBUG=esm).
    const loads = { ...env, NODE_DEBUG: 'esm' };
    const sameDaemonLine = (t: string): string => t.replace(/^( {2}daemon: .*|.*read by the daemon .*)$/gm, (l) => l.replace(/\d+/g, '#'));
    for (const json of [false, true]) {
      const form = json ? ['--json'] : [];
      const quick = await host.xennet(['status', ...form], loads);
      const full = await host.xennet(['status', ...form, '--rules', rules], loads);
      assert.equal(quick.code, full.code, `${quick.stdout}\n${full.stdout}`);
      assert.ok(/\/yargs\//.test(full.stderr) && /status\/render\.js/.test(full.stderr), 'the control: the full command loads yargs and the renderer, and NODE_DEBUG=esm shows it');
      assert.ok(!/\/yargs\//.test(quick.stderr) && !/status\/render\.js/.test(quick.stderr), `the quick path loads neither (json ${json})`);
      const quickOut = quick.stdout.replace(/^ESM \d+: .*$/gm, '');
      const fullOut = full.stdout.replace(/^ESM \d+: .*$/gm, '');
      if (!json) assert.equal(sameDaemonLine(quickOut), sameDaemonLine(fullOut));
      else {
        // The daemon's own figures (uptime, RSS, requests counted) move between two requests, and
        // when it read the host may too (a check of its own in between).
        const { daemon: _q, read: _qr, ...q } = JSON.parse(quickOut) as Record<string, unknown>;
        const { daemon: _f, read: _fr, ...f } = JSON.parse(fullOut) as Record<string, unknown>;
        assert.deepEqual(q, f);
      }
    }
    // On xtables (ipset and iptables-legacy commit no nf_tables generation) nothing is remembered.
    writeFileSync(rules, 'version: 1\nbackend: xtables\n');
    assert.equal((await host.xennet(['apply'], env)).code, 0);
    for (let i = 0; i < 3; i++) {
      s = await status();
      assert.equal(s.status.backend?.kind, 'xtables');
      assert.equal(s.read.remembered, false, 'xtables: read every time');
    }
    assert.equal((await host.dom0.exec('nft', ['delete', 'table', 'inet', 'xnt-other'])).code, 0);
  });

  it('plan and apply through the daemon: a plan with nothing to change is remembered while nothing it reads changes, and an apply then has nothing to do; a change by hand or to the rule file is planned anew, and after an apply the daemon plans again by itself', async () => {
    await host.startDaemon(env);
    const [a, b] = [await host.addGuest(spec(31)), await host.addGuest(spec(32))];
    await online(a);
    await online(b);
    type Plan = { pending: boolean; changes: unknown[]; vifs: { name: string }[]; asOf?: string; applied?: { tables: string[] } };
    const request = async (cmd: 'plan' | 'apply'): Promise<Plan> => {
      const r = JSON.parse(await ask(`{"v":1,"cmd":"${cmd}"}\n`, 60_000)) as { ok: boolean; result: Plan };
      assert.ok(r.ok, JSON.stringify(r));
      return r.result;
    };
    // Once the daemon's own work after a change is done, a plan finds nothing to change and the next is remembered.
    const remembered = async (): Promise<[Plan, Plan]> => {
      let before = await request('plan');
      for (let i = 0; i < 20; i++) {
        const now = await request('plan');
        if (now.asOf !== undefined) return [before, now];
        before = now;
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error('the plan was never remembered');
    };
    const [first, again] = await remembered();
    assert.equal(again.pending, false);
    assert.deepEqual({ ...again, asOf: undefined }, { ...first, asOf: undefined }, 'the remembered plan is the plan');
    assert.deepEqual(again.vifs.map((v) => v.name).sort(), ['vif31.0', 'vif32.0']);
    const ruleset = async (): Promise<string> => (await host.dom0.exec('nft', ['list', 'ruleset'])).stdout;
    const before = await ruleset();
    const counts = (await stats()) as unknown as { status: { plans: { remembered: number; computed: number } } };
    const applied = await request('apply');
    assert.ok(applied.asOf !== undefined, 'an apply with nothing to change: answered from the plan');
    assert.deepEqual(applied.applied, { tables: [] });
    assert.equal(await ruleset(), before, 'and nothing written');
    const after = (await stats()) as unknown as { status: { plans: { remembered: number; computed: number } } };
    assert.equal(after.status.plans.computed, counts.status.plans.computed, 'no plan computed for it');
    // A change by hand (a commit to nf_tables): planned anew, just after it.
    assert.equal((await host.dom0.exec('nft', ['add', 'table', 'inet', 'xnt-plan'])).code, 0);
    assert.equal((await request('plan')).asOf, undefined, 'a commit to nf_tables (any table)');
    await remembered();
    assert.equal((await host.dom0.exec('nft', ['delete', 'table', 'inet', 'xnt-plan'])).code, 0);
    await remembered();
    // The rule file changed: planned anew, with the change; applied (not from memory); then the
    // daemon plans by itself, and the next plan is remembered.
    writeFileSync(rules, 'version: 1\nguests:\n  g31:\n    inbound: drop\n');
    const changed = await request('plan');
    assert.equal(changed.asOf, undefined);
    assert.equal(changed.pending, true, 'the change is pending');
    const done = await request('apply');
    assert.equal(done.asOf, undefined);
    assert.ok((done.applied?.tables.length ?? 0) > 0, 'applied');
    await until('the plan after the apply remembered', async () => (await request('plan')).asOf !== undefined, 20_000);
    const cli = await host.xennet(['plan'], env);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /planned by the daemon at \S+: nothing to change then, and nothing it reads has changed since/);
    // The daemon's plan is of the network its key was read from (a setting that flips and flips
    // back while it plans cannot leave a plan remembered under a key it was not made of): a plan
    // given a snapshot in which a port is open says so, whatever the kernel says now.
    const snap = await host.dom0.exec('node', [fileURLToPath(new URL('./lib/plan-snapshot-main.js', import.meta.url)), 'vif31.0'], { env: host.env(env) });
    assert.equal(snap.code, 0, snap.stderr);
    assert.ok((JSON.parse(snap.stdout) as string[]).some((w) => w.startsWith("vif31.0: dom0's IP stack is open on this guest port")), snap.stdout);
    // A guest that learns its addresses (on DHCP): a no-change apply also puts back bindings a
    // set lost, which a plan does not compare: planned and applied anew every time.
    await online(await host.addGuest({ domid: 36, name: 'g36', mac: macOf(36), addresses: [] }));
    for (let i = 0; i < 4; i++) {
      assert.equal((await request('plan')).asOf, undefined, 'a learning guest: never remembered');
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal((await request('apply')).asOf, undefined);
  });

  it('status through the daemon, what nothing announces: a link that is down, a read that failed, a rule file rewritten with its mtime put back or replaced by a dangling link; many first requests at once', async () => {
    await host.startDaemon(env);
    // Many requests at once while nothing is remembered yet: one watch, no listener pile-up.
    await Promise.all(Array.from({ length: 30 }, () => ask('{"v":1,"cmd":"status"}\n', 30_000)));
    assert.doesNotMatch(host.daemonLog.join('\n'), /MaxListenersExceeded/);
    await online(await host.addGuest(spec(24)));
    // A guest on DHCP (no address anywhere): it learns its addresses.
    const learner = await host.addGuest({ domid: 26, name: 'g26', mac: macOf(26), addresses: [] });
    await online(learner);
    type Answer = { status: { problems: string[]; notes: string[]; xenstore: string | null; rules: { state: string }; vifs: { name: string; policy: string | null }[]; bridges: { name: string; nfCallIptables: boolean }[] }; read: { remembered: boolean } };
    const status = async (extra = ''): Promise<Answer> => (JSON.parse(await ask(`{"v":1,"cmd":"status"${extra}}\n`, 30_000)) as { result: Answer }).result;
    const settled = async (extra = ''): Promise<void> => {
      for (let i = 0; i < 20; i++) if ((await status(extra)).read.remembered) return;
      throw new Error('status was never remembered');
    };
    await settled();
    // A bridge that is down: the kernel announces a change of its options to nobody.
    await host.dom0.ip('link', 'set', 'xenbr0', 'down');
    assert.equal((await status()).read.remembered, false, 'a bridge went down');
    await settled();
    await host.dom0.ip('link', 'set', 'xenbr0', 'type', 'bridge', 'nf_call_iptables', '0');
    assert.equal((await status()).status.bridges.find((b) => b.name === 'xenbr0')!.nfCallIptables, false, 'an option of the bridge while down');
    await host.dom0.ip('link', 'set', 'xenbr0', 'type', 'bridge', 'nf_call_iptables', '1');
    await host.dom0.ip('link', 'set', 'xenbr0', 'up');
    await settled();
    // A port of the bridge that is down and no guest's becomes one by its alias (xennet's mark),
    // which the kernel does not announce either.
    await host.dom0.ip('link', 'add', 'xnt-up9', 'type', 'veth', 'peer', 'name', 'xnt-up9p');
    await host.dom0.ip('link', 'set', 'xnt-up9', 'master', 'xenbr0');
    await settled();
    await host.dom0.ip('link', 'set', 'xnt-up9', 'alias', 'xennet:vif30.0');
    assert.ok((await status()).status.vifs.some((v) => v.name === 'xnt-up9'), 'a down link marked as a guest port');
    await host.dom0.ip('link', 'del', 'xnt-up9');
    await settled();
    // A binding in the kernel nobody recorded, added with a 2 s timeout: the kernel drops it
    // without a word (no new generation); the answer shown until then cannot outlive it.
    assert.equal((await host.dom0.exec('nft', ['add', 'element', 'bridge', 'xennet', 'learned_ip4', '{ 192.168.0.77 . "vif26.0" timeout 2s }'])).code, 0);
    const unrecorded = (s: Answer): boolean => s.status.problems.some((p) => p.includes('vif26.0 192.168.0.77'));
    assert.ok(unrecorded(await status()), 'the binding nobody recorded is a problem');
    await new Promise((r) => setTimeout(r, 2600));
    assert.equal(unrecorded(await status()), false, 'and no longer once the kernel dropped it');
    await settled();
    // A recorded binding the kernel lacks, ending in 2 s: a problem until then, and not after.
    const learnedFile = join(host.env(env)['XENNET_STATE_DIR']!, 'learned.json');
    writeFileSync(learnedFile, JSON.stringify({ version: 1, bindings: [{ vif: 'vif26.0', family: 'ipv4', address: '192.168.0.78', how: 'dhcp', since: Date.now(), expires: Date.now() + 2000, domid: 26 }] }));
    const missingOne = (s: Answer): boolean => s.status.problems.some((p) => p.startsWith('learned bindings recorded but not in the kernel') && p.includes('vif26.0 192.168.0.78'));
    assert.ok(missingOne(await status()), 'recorded, not in the kernel');
    assert.ok(missingOne(await status()));
    await new Promise((r) => setTimeout(r, 2300));
    assert.equal(missingOne(await status()), false, 'and no longer once it ended');
    // A read that could not reach xenstore is not what the host is like once it can.
    const socket = host.xenstoreSocket;
    renameSync(socket, `${socket}.away`);
    try {
      assert.equal((await host.dom0.exec('nft', ['add', 'table', 'inet', 'xnt-partial'])).code, 0);
      const without = await status();
      assert.equal(without.status.xenstore, null, 'this read had no xenstore');
    } finally {
      renameSync(`${socket}.away`, socket);
    }
    const back = await status();
    assert.equal(back.read.remembered, false, 'a partial read is not remembered');
    assert.notEqual(back.status.xenstore, null);
    assert.equal((await host.dom0.exec('nft', ['delete', 'table', 'inet', 'xnt-partial'])).code, 0);
    await settled();
    // The rule file rewritten in place, same size, its mtime put back (cp -p, rsync -t --inplace).
    const before = statSync(rules);
    const text = readFileSync(rules, 'utf8');
    writeFileSync(rules, text.replace('web:', 'g24:'));
    utimesSync(rules, before.atime, before.mtime);
    assert.equal(statSync(rules).size, before.size);
    assert.equal((await status()).status.vifs.find((v) => v.name === 'vif24.0')!.policy, 'g24', 'the rule file changed in place');
    // A rule file that is missing (the defaults), then a link to a missing file (invalid).
    const missing = join(dir, 'absent.yaml');
    rmSync(missing, { force: true });
    const absentOk = `,"rules":${JSON.stringify(missing)},"rulesAbsentOk":true`;
    await settled(absentOk);
    symlinkSync('/nonexistent-xnt/xennet.yaml', missing);
    try {
      assert.equal((await status(absentOk)).status.rules.state, 'invalid', 'a dangling link is not a missing file');
    } finally {
      rmSync(missing, { force: true });
    }
  });

  it('status through the daemon on a host where iptables-legacy has a table (whose changes nothing announces): read every time', async function () {
    if (!existsSync('/usr/sbin/iptables-legacy')) this.skip(); // test:nft-only hides it
    await host.startDaemon(env);
    await online(await host.addGuest(spec(23)));
    const remembered = async (): Promise<boolean> => (JSON.parse(await ask('{"v":1,"cmd":"status"}\n', 30_000)) as { result: { read: { remembered: boolean } } }).result.read.remembered;
    let seen = false;
    for (let i = 0; i < 20 && !seen; i++) seen = await remembered();
    assert.ok(seen, 'remembered before (the control)');
    // A table of iptables-legacy's in dom0's namespace (it stays until the namespace goes).
    assert.equal((await host.dom0.exec('iptables-legacy', ['-t', 'mangle', '-nL'])).code, 0);
    for (let i = 0; i < 3; i++) assert.equal(await remembered(), false, 'iptables-legacy in use');
  });

  it('a call still running at the 35 s budget fails as the in-process hook fails it: exit 1, hotplug-error naming the step, hotplug-status=error; going on after, it attaches and reports nothing', async () => {
    // The step takes 37 s: past the watchdog (35 s), the call goes on.
    await host.startDaemon({ ...env, XENNET_TEST_STALL_AT: 'vif:imported@37000' });
    const g = await host.addGuest(spec(41));
    const t0 = performance.now();
    const r = await hook(g, 'online');
    const s = (performance.now() - t0) / 1000;
    assert.equal(r.code, 1, r.stderr);
    assert.ok(s < 40, `within libxl's 40 s (${s.toFixed(1)} s)`);
    assert.match(r.stderr, /gave up after 35 s while imported/);
    assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-status`), 'error');
    assert.match(host.xenstored.read(`${g.backendPath}/hotplug-error`) ?? '', /gave up after 35 s while imported/);
    assert.equal((await stats()).hookCalls, 1, 'the daemon took it (and it ran nowhere else)');
    await until('the call given up', () => host.daemonLog.some((l) => l.includes('the call was given up on (at its budget, or its client is gone)')), 15_000);
    assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-status`), 'error', 'never connected after the failure was reported');
    assert.equal(await attached(g.vif), false, 'and not attached');
  });

  it('refuses bad requests and keeps serving: garbage JSON, an unknown command, a silent client, FIFO lines naming no request, a garbage request file', async () => {
    await host.startDaemon(env);
    const silent = connect(join(host.runDir, 'daemon.sock'));
    try {
      assert.match(await ask('not json\n'), /"ok":false.*not JSON/);
      assert.match(await ask('{"v":1,"cmd":"format-disk"}\n'), /"ok":false.*unknown command/);
      assert.match(await ask('{"v":2}\n'), /"ok":false.*protocol version/);
      for (const render of ['true', '{"json":false,"color":false,"width":1e9}', '{"json":"yes","color":false,"width":80}', '{"json":false,"color":false,"width":80.5}']) {
        assert.match(await ask(`{"v":1,"cmd":"status","render":${render}}\n`), /"ok":false.*\\"render\\"/, render);
      }
      assert.match(await ask(`${'x'.repeat(70_000)}\n`), /"ok":false.*larger than/);
      // bytes, not characters: 25,000 characters of three bytes each
      assert.match(await ask(`{"v":1,"cmd":"stats","x":"${'✓'.repeat(25_000)}"}\n`), /"ok":false.*larger than/);
      // A character of two bytes split between two writes is read whole.
      const request = Buffer.from('{"v":1,"cmd":"format-dïsk"}\n');
      const cut = request.indexOf(Buffer.from('ï')) + 1;
      const split = await new Promise<string>((resolve, reject) => {
        const s = connect(join(host.runDir, 'daemon.sock'));
        const chunks: Buffer[] = [];
        s.on('connect', () => s.write(request.subarray(0, cut), () => setTimeout(() => s.write(request.subarray(cut)), 100)));
        s.on('data', (b: Buffer) => chunks.push(b));
        s.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
        s.on('error', reject);
      });
      assert.match(split, /"ok":false.*unknown command.*format-dïsk/);
      const fifo = join(host.runDir, 'daemon.fifo');
      writeFileSync(fifo, '/etc/shadow\n../../x\n\n');
      const req = join(host.runDir, 'req', '9999999.123'); // no such client: nowhere to answer
      writeFileSync(req, 'garbage\0');
      writeFileSync(fifo, `${req}\n`);
      await until('the bad lines counted', async () => (await stats()).badRequests >= 6);
      // A line whose character of two bytes comes in two writes is read whole (it names no request).
      const line = Buffer.from('/naïve/line\n');
      writeFileSync(fifo, line.subarray(0, line.indexOf(Buffer.from('ï')) + 1));
      await new Promise((r) => setTimeout(r, 100));
      writeFileSync(fifo, line.subarray(line.indexOf(Buffer.from('ï')) + 1));
      await until('the split line logged', () => host.daemonLog.some((l) => l.includes('ve/line"')));
      assert.ok(host.daemonLog.some((l) => l.includes('"/naïve/line"')), host.daemonLog.filter((l) => l.includes('ve/line"')).join('\n'));
      assert.equal(existsSync(req), false, 'a request the daemon cannot answer is removed');
      const g = await host.addGuest(spec(11));
      await online(g);
      assert.equal((await stats()).hookCalls, 1, 'a silent client blocks nobody');
    } finally {
      silent.destroy();
    }
  });

  it('xenstored restarting does not stop the daemon: the next hook works through a new connection', async () => {
    await host.startDaemon(env);
    const a = await host.addGuest(spec(12));
    await online(a);
    await host.xenstored.close();
    await host.xenstored.listen();
    const b = await host.addGuest(spec(13));
    await online(b);
    assert.equal((await stats()).hookCalls, 2);
    assert.ok(await b.ns.ping('192.168.0.1'));
  });

  it('status: a daemon that does not answer (stopped), or that ended without being stopped, is a problem (exit 1) and the host is read without it; one stopped on purpose is none', async () => {
    await host.startDaemon(env);
    const g = await host.addGuest(spec(18));
    await online(g);
    const status = async (): Promise<{ code: number; problems: string[]; vifs: { name: string; firewall: string }[]; ms: number }> => {
      const t0 = performance.now();
      const r = await host.xennet(['status', '--json'], env);
      return { code: r.code, ...(JSON.parse(r.stdout) as { problems: string[]; vifs: { name: string; firewall: string }[] }), ms: performance.now() - t0 };
    };
    assert.equal((await status()).code, 0, 'control: a daemon that answers');
    const pid = (await stats()).pid;
    process.kill(pid, 'SIGSTOP');
    let stopped;
    try {
      stopped = await status();
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    assert.equal(stopped.code, 1);
    assert.ok(stopped.problems.some((p) => p.startsWith(`the xennet daemon (pid ${pid}) took the request and did not answer within 10 s (stopped or hung?)`)), JSON.stringify(stopped.problems));
    // One wait of 10 s: not after the old 120 s, nor twice (the quick path's wait, then the full command's).
    assert.ok(stopped.ms < 19_000, `answered in ${Math.round(stopped.ms)} ms`);
    assert.deepEqual(stopped.vifs.map((v) => [v.name, v.firewall]), [[g.vif, 'in-sync']], 'the host was read without it');
    assert.equal((await status()).code, 0, 'continued, it answers again');
    // This host's hooks start no daemon (autostart.off): a daemon gone is what its operator asked for.
    await host.stopDaemon('SIGKILL');
    const off = await status();
    assert.equal(off.code, 0, JSON.stringify(off.problems));
    host.setAutostart(true);
    const killed = await status();
    assert.equal(killed.code, 1);
    assert.ok(killed.problems.some((p) => p.startsWith(`the xennet daemon (pid ${pid}) ended without being stopped (killed, or it crashed`)), JSON.stringify(killed.problems));
    await host.startDaemon(env);
    assert.equal(await host.stopDaemon('SIGTERM'), 0);
    const asked = await status();
    assert.equal(asked.code, 0, `a daemon asked to stop is not missed: ${JSON.stringify(asked.problems)}`);
  });

  it('a hook that starts while xenstored is away for a moment (restarting) waits for it, through the daemon and in-process (found by the soak)', async () => {
    await host.startDaemon(env);
    const [a, b] = [await host.addGuest(spec(14)), await host.addGuest(spec(15))];
    for (const [g, path] of [[a, 'daemon'], [b, 'in-process']] as const) {
      if (path === 'in-process') assert.equal(await host.stopDaemon('SIGTERM'), 0);
      await host.xenstored.close();
      const call = hook(g, 'online');
      await new Promise((r) => setTimeout(r, 1000));
      await host.xenstored.listen();
      const r = await call;
      assert.equal(r.code, 0, `${path}: ${r.stderr}`);
      assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-status`), 'connected', path);
      assert.ok(await g.ns.ping('192.168.0.1'), path);
    }
  });
  it('a flush while the state directory cannot be written is repaired all the same: the rules are what the index records (found by the soak)', async function () {
    const fw = join(host.dir, 'state', 'firewall');
    await host.startDaemon(env);
    const g = await host.addGuest(spec(17));
    await online(g);
    // Every file and directory there immutable, as a full filesystem makes them (the journal too:
    // a line appended to it needs no new file).
    if ((await run('chattr', ['-R', '+i', fw])).code !== 0) this.skip();
    try {
      const before = (await stats()).repairs;
      assert.equal((await host.dom0.exec('nft', ['flush', 'ruleset'])).code, 0);
      await until('the flush repaired', async () => (await stats()).repairs > before, 8000);
      assert.equal(await spoofed(g, 'ro-state-spoof'), false, 'the guest\'s rules bite again');
      assert.ok(host.daemonLog.some((l) => /the firewall's state cannot be written .*putting the rules back as recorded/.test(l)), host.daemonLog.slice(-5).join('\n'));
    } finally {
      await run('chattr', ['-R', '-i', fw]);
    }
  });

  it('a guest that leaves while its cleanup cannot be written (a full or unwritable state directory) loses its rules once it can (found by the soak)', async function () {
    const fw = join(host.dir, 'state', 'firewall');
    await host.startDaemon(env);
    const g = await host.addGuest(spec(16));
    await online(g);
    assert.ok(await guestRulesPresent(host.dom0, g.vif));
    // No file can be made in the firewall's state directory (as with ENOSPC).
    // Every file and directory there immutable, as a full filesystem makes them (the journal too:
    // a line appended to it needs no new file).
    if ((await run('chattr', ['-R', '+i', fw])).code !== 0) this.skip();
    try {
      const off = await hook(g, 'offline');
      host.removeDevice(g);
      await host.dom0.ip('link', 'del', g.vif);
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(off.code !== 0 || (await guestRulesPresent(host.dom0, g.vif)), `control: the departure could not be recorded (offline: ${off.code} ${off.stderr})`);
    } finally {
      await run('chattr', ['-R', '-i', fw]);
    }
    await until('the departed guest\'s rules removed', async () => !(await guestRulesPresent(host.dom0, g.vif)), 12_000);
    assert.equal((await host.xennet(['plan'], env)).code, 0, 'nothing left to change');
  });

  it('an offline whose removal could not be committed (the state directory full) is committed once it can, with no hook and no departure to trigger it (found by the soak)', async function () {
    const fw = join(host.dir, 'state', 'firewall');
    await host.startDaemon(env);
    const g = await host.addGuest(spec(19));
    await online(g);
    // The index cannot be written (no file made there, its journal not appended to); staging
    // (in pending/) can.
    const index = ['index.json', 'index.journal'].map((f) => join(fw, f)).filter((f) => existsSync(f));
    if ((await run('chattr', ['+i', fw, ...index])).code !== 0) this.skip();
    try {
      // The offline detaches the vif and stages the removal; the daemon's commit of it fails.
      const off = await hook(g, 'offline');
      assert.equal(off.code, 0, off.stderr);
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(await guestRulesPresent(host.dom0, g.vif), 'control: the removal could not be committed');
    } finally {
      await run('chattr', ['-i', fw, ...index]);
    }
    // Its backend stays (the toolstack has not removed it yet): only a retry can finish the removal.
    await until('the removal committed', async () => !(await guestRulesPresent(host.dom0, g.vif)), 12_000);
    assert.ok(host.daemonLog.filter((l) => /committing staged firewall changes failed/.test(l)).length === 1, `said once: ${host.daemonLog.filter((l) => /staged/.test(l)).join(' | ')}`);
    assert.ok(host.daemonLog.some((l) => /committing staged firewall changes works again/.test(l)));
  });

  it('a daemon killed while it commits a guest\'s removal finishes it once it runs again: the guest\'s chains go, none is adopted back into the record (found by an adversarial review)', async () => {
    const g = await host.addGuest(spec(20));
    await online(g); // in-process: no daemon yet
    const pid = await host.startDaemon({ ...env, XENNET_TEST_KILL_AT: 'firewall:written-ahead' });
    const off = await hook(g, 'offline');
    assert.equal(off.code, 0, off.stderr);
    await until('the daemon to die at its kill point (the removal written ahead)', () => !pidAlive(pid), 8000);
    await host.stopDaemon('SIGKILL');
    assert.ok(await guestRulesPresent(host.dom0, g.vif), 'control: its chains are still live');
    await host.startDaemon(env);
    await until('the removal finished', async () => !(await guestRulesPresent(host.dom0, g.vif)), 12_000);
    // The record as any reader has it (index.json with the daemon's journal replayed).
    const { index } = loadIndex(host.env(), silentLogger);
    assert.equal(index.dirty, false);
    assert.equal(Object.hasOwn(index.vifs, g.vif), false, `not adopted back: ${Object.keys(index.vifs).join(' ')}`);
    const plan = await host.xennet(['plan'], env);
    assert.equal(plan.code, 0, plan.stdout);
  });

  // Found by an adversarial review of the daemon (operator mistakes, crashes at the worst moment).

  it('a second daemon, refused, leaves the running one\'s socket, FIFO and pid file; the first keeps serving', async () => {
    await host.startDaemon(env);
    const first = (await stats()).pid;
    const r = await host.xennet(['daemon'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`another xennet daemon \\(pid ${first}\\) runs`));
    for (const f of ['daemon.pid', 'daemon.sock', 'daemon.fifo']) assert.ok(existsSync(join(host.runDir, f)), `${f} is still there`);
    const g = await host.addGuest(spec(14));
    await online(g);
    assert.equal((await stats()).hookCalls, 1, 'the hook went to the first daemon');
  });

  it('two daemons started at the same moment: one serves, the other is refused from its first step', async () => {
    const both = [0, 1].map(() => start('ip', ['netns', 'exec', host.dom0.name, 'node', xennetCli, 'daemon'], { env: host.env(env) }));
    const logs = both.map((c) => {
      const lines: string[] = [];
      c.stderr?.on('data', (b: Buffer) => lines.push(b.toString('utf8')));
      c.stdout?.resume();
      return lines;
    });
    const exits = both.map((c) => new Promise<number | null>((resolve) => c.on('close', (code) => resolve(code))));
    try {
      const first = await Promise.race(exits.map((e, i) => e.then((code) => ({ i, code }))));
      assert.equal(first.code, 1, logs[first.i]!.join(''));
      assert.match(logs[first.i]!.join(''), /another xennet daemon \(pid \d+\) runs/);
      const other = both[1 - first.i]!;
      await until('the other serves', () => readPidFile(join(host.runDir, 'daemon.pid')) === other.pid);
      assert.equal((await stats()).pid, other.pid);
    } finally {
      for (const c of both) c.kill('SIGTERM');
      await Promise.all(exits);
    }
    assert.equal(existsSync(join(host.runDir, 'daemon.lock')), false, 'the lock goes with the daemon');
  });

  it('a stale pid file (its daemon died, the pid went to another program) does not keep the daemon from starting; a FIFO in its place does not hang the hook', async () => {
    mkdirSync(host.runDir, { recursive: true, mode: 0o700 });
    const other = start('sleep', ['60']);
    try {
      writeFileSync(join(host.runDir, 'daemon.pid'), `${other.pid}\n`);
      await host.startDaemon(env, undefined, { keepPidFile: true });
      assert.match(host.daemonLog.join('\n'), new RegExp(`names pid ${other.pid}, which runs no daemon: a stale pid file`));
      assert.equal(pidAlive(other.pid!), true, 'the other program is left alone');
      const g = await host.addGuest(spec(16));
      await online(g);
      assert.equal((await stats()).hookCalls, 1, 'served by the daemon');
      await host.stopDaemon('SIGTERM');
      const r = await run('mkfifo', [join(host.runDir, 'daemon.pid')]);
      assert.equal(r.code, 0, r.stderr);
      const t0 = performance.now();
      const off = await hook(g, 'offline');
      assert.equal(off.code, 0, off.stderr);
      assert.ok(performance.now() - t0 < 8000, 'the hook did not wait on the FIFO');
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('the run directory: a trailing slash names the same daemon; a shared directory (mode 1777) is refused, not chmodded', async () => {
    const slash = { ...env, XENNET_RUN_DIR: `${host.runDir}//` };
    await host.startDaemon(slash);
    const g = await host.addGuest(spec(15));
    const r = await hook(g, 'online', slash);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await stats()).hookCalls, 1, 'served by the daemon');
    await host.stopDaemon('SIGTERM');
    const shared = join(host.dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const refused = await host.xennet(['daemon'], { ...env, XENNET_RUN_DIR: shared });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /not a directory of the daemon's own/);
    assert.equal(statSync(shared).mode & 0o7777, 0o1777, 'its mode is untouched');
  });

  it('a prepare that waited for the lock while the hook installed a newer policy never puts its older rules back', async () => {
    writeFileSync(rules, 'version: 1\n'); // P1: every guest on the defaults (inbound accept)
    const other = await host.addGuest(spec(16));
    const web = await host.addGuest(spec(17, { name: 'web' }));
    const lockDir = join(host.dir, 'hotplug-lock');
    mkdirSync(lockDir, { recursive: true });
    // A Xen script holds the hotplug lock while the daemon starts and prepares both vifs (P1).
    const xen = start('flock', ['-x', join(lockDir, 'iptables'), 'sleep', '6']);
    xen.stdout?.resume();
    xen.stderr?.resume();
    const xenDone = new Promise((r) => xen.on('close', r));
    try {
      await new Promise((r) => setTimeout(r, 300));
      await host.startDaemon(env);
      await until('the prepares waiting for the lock', async () => (await stats()).lockWaiting >= 1);
      // The operator tightens web's policy (P2) while the guest boots; its hook compiles P2.
      writeFileSync(rules, 'version: 1\nguests:\n  web:\n    inbound: drop\n');
      await until('P2 loaded', () => host.daemonLog.some((l) => /rule file .* loaded \(it changed\)/.test(l)), 15_000);
      const run = hook(web, 'online');
      // The daemon took the call; it runs after the prepare of the same backend (one call per backend at a time).
      await until('the hook taken', async () => (await stats()).hookCalls >= 1, 15_000);
      const r = await run;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /inbound drop/);
      await until('the lock idle', async () => !(await stats()).lockHeld && (await stats()).lockWaiting === 0, 15_000);
      assert.ok(await inboundDrops(host.dom0, web.vif), 'the hook\'s rules (P2) stay');
      assert.equal((await host.xennet(['plan'], env)).code, 0, 'nothing pending');
      void other;
    } finally {
      xen.kill();
      await xenDone;
    }
  });

  it('a daemon stopped long enough to fill its FIFO: the next hook still falls back within seconds', async () => {
    await host.startDaemon(env);
    await until('idle', async () => !(await stats()).lockHeld);
    const pid = (await stats()).pid;
    process.kill(pid, 'SIGSTOP');
    try {
      const fd = openSync(join(host.runDir, 'daemon.fifo'), constants.O_WRONLY | constants.O_NONBLOCK);
      try {
        for (let n = 0; ; n++) writeSync(fd, `${join(host.runDir, 'req')}/x${String(n).padStart(8, '0')}\n`);
      } catch {
        /* full */
      } finally {
        closeSync(fd);
      }
      const g = await host.addGuest(spec(18));
      const t0 = performance.now();
      const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env, timeoutMs: 15_000 });
      assert.equal(r.code, 0, `in-process: ${r.stderr}`);
      assert.ok(performance.now() - t0 < 12_000, 'not blocked on the full FIFO');
      assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-status`), 'connected');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('a daemon paused while another program commits a great deal to nf_tables lives on and still repairs (a listener of the kernel\'s announcements overran, and the netlink binding aborted the process: found measuring the daemon\'s memory under repairs)', async () => {
    await host.startDaemon(env);
    const g = await host.addGuest(spec(19));
    await online(g);
    await until('idle', async () => !(await stats()).lockHeld);
    const pid = (await stats()).pid;
    // 10,000 rules with long comments, added and deleted three times: the kernel would announce
    // some 20 MB of them, more than any socket buffer here holds (8 MiB at most).
    const flood = join(dir, 'flood.nft');
    const comment = 'x'.repeat(100);
    writeFileSync(flood, ['add table ip xnt-flood', 'add chain ip xnt-flood c', ...Array.from({ length: 10_000 }, (_, i) => `add rule ip xnt-flood c ip saddr 10.9.${i >> 8}.${i & 255} counter accept comment "${comment}"`), ''].join('\n'));
    process.kill(pid, 'SIGSTOP');
    try {
      for (let round = 0; round < 3; round++) {
        assert.equal((await host.dom0.exec('nft', ['-f', flood])).code, 0);
        assert.equal((await host.dom0.exec('nft', ['delete', 'table', 'ip', 'xnt-flood'])).code, 0);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await stats()).pid, pid, 'the same daemon answers');
    // The control: it still sees another program's change and repairs it.
    const repairs = (await stats()).repairs;
    assert.equal((await host.dom0.exec('nft', ['flush', 'chain', 'bridge', 'xennet', 'XN-S-vif19.0'])).code, 0);
    await until('the repair', async () => (await stats()).repairs > repairs, 5000);
    assert.equal(await spoofed(g, 'after-flood'), false);
  });

  it('an offline that comes while the daemon still runs the online the toolstack gave up on waits for it: no port is left on the bridge, and no rules (found by the soak: a port on the bridge without its rules)', async () => {
    await host.startDaemon({ ...env, XENNET_TEST_STALL_AT: 'vif:imported:online@3000' });
    const g = await host.addGuest(spec(17));
    // The toolstack kills the online's client (its timeout); the daemon goes on with the call.
    const killed = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env, timeoutMs: 1000 });
    assert.ok(killed.timedOut || killed.signal, 'the client was killed while the daemon ran the call');
    const t0 = performance.now();
    const off = await host.runVifScript('vif-xennet', g, 'offline', 'libxl', { env });
    assert.equal(off.code, 0, off.stderr);
    assert.ok(performance.now() - t0 > 1000, 'the offline waited for the online still running');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await attached(g.vif), false, 'not attached after its offline');
    assert.equal(await guestRulesPresent(host.dom0, g.vif), false, 'and no rules of it');
  });

  it('an online whose client the toolstack killed is not carried on: a device added again at the same path meanwhile gets nothing of it, only its own hook\'s answer (found by an adversarial review)', async () => {
    await host.startDaemon({ ...env, XENNET_TEST_STALL_AT: 'vif:imported:online@3000' });
    const g = await host.addGuest(spec(18));
    const killed = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env, timeoutMs: 1000 });
    assert.ok(killed.timedOut || killed.signal, 'the client was killed while the daemon ran the call');
    // The toolstack goes on: the device removed and added again at the same path (xl
    // network-detach, then network-attach), its interface still there.
    host.removeDevice(g);
    host.addDevice(g);
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-status`), '', 'nothing written for the new device');
    assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-error`), undefined);
    assert.equal(await attached(g.vif), false, 'nothing attached');
    const on = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
    assert.equal(on.code, 0, on.stderr);
    assert.equal(host.xenstored.read(`${g.backendPath}/hotplug-status`), 'connected');
    assert.equal(await attached(g.vif), true);
  });

  it('SIGTERM while a drift check runs: the daemon repairs nothing after it stopped, and exits', async () => {
    const g = await host.addGuest(spec(19));
    await host.startDaemon(env);
    await online(g);
    await until('idle', async () => !(await stats()).lockHeld);
    assert.equal((await host.dom0.exec('nft', ['flush', 'chain', 'bridge', 'xennet', 'XN-S-vif19.0'])).code, 0);
    await new Promise((r) => setTimeout(r, 320)); // the check starts after its 300 ms debounce
    const code = await Promise.race([host.stopDaemon('SIGTERM'), new Promise<string>((r) => setTimeout(() => r('still running after 15 s'), 15_000))]);
    assert.equal(code, 0);
    const stopped = host.daemonLog.findIndex((l) => /: stopped$/.test(l));
    assert.ok(stopped >= 0, host.daemonLog.join('\n'));
    assert.ok(!host.daemonLog.slice(stopped + 1).some((l) => /repaired/.test(l)), 'no repair after "stopped"');
  });

  it('systemctl reload (the unit\'s ExecReload: daemon --reload) while the daemon starts does not kill it; once it runs, it re-reads the file', async () => {
    const child = start('ip', ['netns', 'exec', host.dom0.name, 'node', xennetCli, 'daemon'], { env: host.env(env) });
    child.stdout?.resume();
    child.stderr?.resume();
    const exit = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    try {
      const early = await host.xennet(['daemon', '--reload'], env);
      assert.equal(early.code, 0, early.stderr);
      await until('the daemon serving', () => existsSync(join(host.runDir, 'daemon.pid')), 20_000);
      const reload = await host.xennet(['daemon', '--reload'], env);
      assert.equal(reload.code, 0, reload.stderr);
      assert.match(reload.stdout, /re-read/);
      const g = await host.addGuest(spec(20));
      await online(g);
      assert.equal((await stats()).hookCalls, 1);
    } finally {
      child.kill('SIGTERM');
      await exit;
    }
  });
});

describe('xennet daemon (netns): started by the first hook that finds none', function () {
  this.timeout(300_000);
  let host: SimHost | undefined;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  /** The `xennet daemon` processes in dom0 (pids), read from /proc. */
  const daemons = async (h: SimHost): Promise<number[]> => {
    const r = await run('ip', ['netns', 'pids', h.dom0.name]);
    const pids = r.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number);
    return pids.filter((p) => {
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv.includes('daemon') && !/^Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8').replace(/^.*\) /, ''));
      } catch {
        return false;
      }
    });
  };
  /** Exactly one daemon runs in dom0 (else the processes found, to say what they were). */
  const oneDaemon = async (h: SimHost): Promise<number> => {
    const found = await daemons(h);
    const what = (p: number): string => {
      try {
        return `${p} [${readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ')}] ppid ${readFileSync(`/proc/${p}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1]}`;
      } catch {
        return `${p} (gone)`;
      }
    };
    assert.equal(found.length, 1, `one daemon, found: ${found.map(what).join('; ')}`);
    return found[0]!;
  };
  const online = async (h: SimHost, g: SimGuest): Promise<{ stderr: string; ms: number }> => {
    const t0 = performance.now();
    const r = await h.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
    assert.equal(r.code, 0, `online ${g.vif}: ${r.stderr}`);
    assert.equal(h.xenstored.read(`${g.backendPath}/hotplug-status`), 'connected');
    return { stderr: r.stderr, ms: performance.now() - t0 };
  };

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-autostart-'));
    writeFileSync(join(dir, 'xennet.yaml'), 'version: 1\n');
    env = { XENNET_RULES: join(dir, 'xennet.yaml') };
  });

  afterEach(async () => {
    await host?.destroy();
    host = undefined;
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a storm of hooks with no daemon: one daemon is started, every call is handed to it, and it goes with the host', async () => {
    host = await SimHost.create();
    await host.takeover();
    const h = host;
    assert.deepEqual(await daemons(h), [], 'no daemon before the first hook');
    const guests: SimGuest[] = [];
    for (let d = 40; d < 48; d++) guests.push(await h.addGuest({ domid: d, name: `auto${d}`, mac: macOf(d), addresses: [`${ipOf(d)}/24`], xenstoreIp: ipOf(d) }));
    await Promise.all(guests.map((g) => online(h, g)));
    const running = await daemons(h);
    assert.equal(running.length, 1, `exactly one daemon started: ${running.join(' ')}`);
    assert.equal(readPidFile(join(h.runDir, 'daemon.pid')), running[0]);
    // Every call went through it (one run in-process would be missing from its count).
    const st = JSON.parse((await h.xennet(['status', '--json'], env)).stdout) as { daemon?: { running: boolean; hookCalls?: number } };
    assert.equal(st.daemon?.running, true);
    assert.equal(st.daemon?.hookCalls, guests.length, JSON.stringify(st.daemon));
    assert.ok(await guests[0]!.ns.ping('192.168.0.1'), 'the guest reaches the gateway');
    assert.ok(await guestRulesPresent(h.dom0, guests[7]!.vif), 'its firewall is installed');
    // Its log is in the run directory (the simulated host has no syslog), each line with its time.
    assert.match(readFileSync(join(h.runDir, 'daemon.log'), 'utf8'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z xennet-daemon: listening on/m);
    await h.destroy();
    host = undefined;
    assert.ok(!existsSync(`/proc/${running[0]!}`) || /^Z/.test(readFileSync(`/proc/${running[0]!}/stat`, 'utf8').replace(/^.*\) /, '')), 'the daemon ended with its host');
  });

  it('autostart.off keeps hooks in-process; a daemon that cannot start leaves the call in-process, and no other hook tries for 30 s', async () => {
    host = await SimHost.create({ autostart: false });
    await host.takeover();
    const h = host;
    const [a, b, c] = [await h.addGuest(spec(50)), await h.addGuest(spec(51)), await h.addGuest(spec(52))];
    assert.doesNotMatch((await online(h, a)).stderr, /daemon/);
    assert.deepEqual(await daemons(h), [], 'the switch is off: no daemon');
    // A daemon that cannot start: its socket's path is taken by a directory it will not remove.
    h.setAutostart(true);
    mkdirSync(join(h.runDir, 'daemon.sock', 'x'), { recursive: true });
    const first = await online(h, b);
    assert.match(first.stderr, /could not start the xennet daemon \(its log: .*daemon\.log\); running this call in-process/);
    assert.deepEqual(await daemons(h), []);
    assert.match(readFileSync(join(h.runDir, 'daemon.log'), 'utf8'), /daemon\.sock/, 'the daemon said why');
    assert.ok(existsSync(join(h.runDir, 'autostart.failed')));
    const second = await online(h, c);
    assert.doesNotMatch(second.stderr, /could not start/, 'not tried again at once');
    assert.ok(second.ms < first.ms + 5000);
    assert.ok(await c.ns.ping('192.168.0.1'));
  });

  // Found by an adversarial review of the autostart (a careless operator, a hostile environment).

  it('a run directory that is not the daemon\'s own (mode 0755), or a lock file that is a FIFO: nothing written there, the call runs in-process at once', async () => {
    host = await SimHost.create();
    await host.takeover();
    const h = host;
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'untouched\n');
    mkdirSync(h.runDir, { recursive: true, mode: 0o700 });
    chmodSync(h.runDir, 0o755);
    symlinkSync(victim, join(h.runDir, 'autostart.failed'));
    const a = await h.addGuest(spec(53));
    const r = await online(h, a);
    assert.match(r.stderr, /is not the daemon's own directory .*running this call in-process/);
    assert.equal(readFileSync(victim, 'utf8'), 'untouched\n', 'no write through a link in a directory that is not the daemon\'s');
    chmodSync(h.runDir, 0o700);
    rmSync(join(h.runDir, 'autostart.failed'));
    await run('mkfifo', [join(h.runDir, 'autostart.lock')]);
    const b = await h.addGuest(spec(54));
    const rb = await online(h, b);
    assert.ok(rb.ms < 10_000, `a FIFO for a lock held the hook ${Math.round(rb.ms)} ms`);
    assert.match(rb.stderr, /autostart\.lock a plain file/);
    assert.deepEqual(await daemons(h), []);
  });

  it('the daemon a hook starts has the host\'s settings only: a first hook with XENNET_FIREWALL=off does not switch off the firewall of the guests after it', async () => {
    host = await SimHost.create();
    await host.takeover();
    const h = host;
    const [a, b] = [await h.addGuest(spec(55)), await h.addGuest(spec(56))];
    const ra = await h.runVifScript('vif-xennet', a, 'online', 'libxl', { env: { ...env, XENNET_FIREWALL: 'off' } });
    assert.equal(ra.code, 0, ra.stderr);
    await oneDaemon(h);
    await online(h, b);
    assert.ok(await guestRulesPresent(h.dom0, b.vif), 'the next guest is firewalled');
    const environ = readFileSync(`/proc/${(await daemons(h))[0]!}/environ`, 'utf8').split('\0');
    assert.ok(!environ.some((v) => v.startsWith('XENNET_FIREWALL=')), environ.join(' '));
  });

  it('a descriptor the toolstack left open to the hook (a wrapper\'s lock) does not go to the daemon it starts', async () => {
    host = await SimHost.create();
    await host.takeover();
    const h = host;
    const g = await h.addGuest(spec(57));
    const lock = join(dir, 'wrapper.lock');
    const call = h.vifScriptCall('vif-xennet', g, 'online', 'libxl', { env });
    // A wrapper that holds a lock around the toolstack, as `flock 9; xl create` does.
    const r = await h.dom0.exec('bash', ['-c', 'exec 9>"$0"; flock 9; "$@"', lock, call.file, ...call.argv], { env: call.env });
    assert.equal(r.code, 0, r.stderr);
    await oneDaemon(h);
    assert.equal((await run('flock', ['-n', lock, 'true'])).code, 0, 'the wrapper\'s lock is free once it exited (the daemon does not hold it)');
  });

  it('a daemon a hook started that dies (SIGKILL, a crash) runs again within seconds with no hook to start it; one asked to stop (SIGTERM) stays stopped (found by the soak: a host without systemd kept no daemon until the next guest came)', async () => {
    host = await SimHost.create();
    await host.takeover();
    const h = host;
    const g = await h.addGuest(spec(59));
    await online(h, g);
    const [first] = await daemons(h);
    assert.ok(first, 'a daemon started');
    process.kill(first, 'SIGKILL');
    const t0 = performance.now();
    let next: number | undefined;
    while (next === undefined || next === first) {
      if (performance.now() - t0 > 15_000) throw new Error('no daemon again within 15 s of the kill');
      await new Promise((r) => setTimeout(r, 100));
      next = (await daemons(h)).find((p) => p !== first && readPidFile(join(h.runDir, 'daemon.pid')) === p);
    }
    const st = JSON.parse((await h.xennet(['status', '--json'], env)).stdout) as { daemon?: { running: boolean; pid?: number } };
    assert.equal(st.daemon?.pid, next, 'the new one serves');
    // Its supervisor said so, in the daemon's log (syslog on a host that has it).
    assert.match(readFileSync(join(h.runDir, 'daemon.log'), 'utf8'), new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ xennet-daemon-supervisor: the daemon \\(pid ${first}\\) ended \\(killed by signal 9\\); running it again$`, 'm'));
    // The control: it still repairs what another program breaks, with no hook since the kill.
    assert.equal((await h.dom0.exec('nft', ['flush', 'chain', 'bridge', 'xennet', 'XN-S-vif59.0'])).code, 0);
    const repairs = async (): Promise<number> => (JSON.parse((await h.xennet(['status', '--json'], env)).stdout) as { daemon?: { repairs?: number } }).daemon?.repairs ?? 0;
    const t1 = performance.now();
    while ((await repairs()) < 1) {
      if (performance.now() - t1 > 10_000) throw new Error('not repaired by the restarted daemon');
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(await guestRulesPresent(h.dom0, g.vif));
    process.kill(next, 'SIGTERM');
    const t2 = performance.now();
    while ((await daemons(h)).length > 0) {
      if (performance.now() - t2 > 15_000) throw new Error('the daemon did not stop on SIGTERM');
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual(await daemons(h), [], 'a daemon asked to stop is not run again');
  });

  it('a daemon killed just before `xennet uninstall`: its supervisor does not bring it back (found by an adversarial review); SIGHUP to the supervisor is ignored, SIGTERM stops it and the daemon', async () => {
    host = await SimHost.create();
    await host.takeover();
    const h = host;
    const g = await h.addGuest(spec(60));
    await online(h, g);
    const first = await oneDaemon(h);
    process.kill(first, 'SIGKILL');
    const u = await h.xennet(['uninstall', '--force'], env);
    assert.equal(u.code, 0, u.stderr);
    await new Promise((r) => setTimeout(r, 4000));
    assert.deepEqual(await daemons(h), [], 'no daemon after uninstall');
    // The supervisor of a new daemon (autostart on again): HUP ignored, TERM stops both.
    rmSync(join(h.runDir, 'autostart.off'), { force: true });
    const g2 = await h.addGuest(spec(61));
    await online(h, g2);
    const daemon = await oneDaemon(h);
    const r = await run('ip', ['netns', 'pids', h.dom0.name]);
    const supervisor = r.stdout.split('\n').map(Number).find((p) => p > 0 && readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes('xennet-daemon-supervisor'));
    assert.ok(supervisor, 'the supervisor runs');
    process.kill(supervisor, 'SIGHUP');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await daemons(h), [daemon], 'SIGHUP: nothing changed');
    process.kill(supervisor, 'SIGTERM');
    const t0 = performance.now();
    while ((await daemons(h)).length > 0 || existsSync(`/proc/${supervisor}/cmdline`) && !/^Z/.test(readFileSync(`/proc/${supervisor}/stat`, 'utf8').replace(/^.*\) /, ''))) {
      if (performance.now() - t0 > 15_000) throw new Error('SIGTERM to the supervisor did not stop it and its daemon');
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it('a stale pid file naming a live process that is no daemon: the hook starts one instead of waiting on it', async () => {
    host = await SimHost.create();
    await host.takeover();
    const h = host;
    const sleeper = start('ip', ['netns', 'exec', h.dom0.name, 'sleep', '60']);
    try {
      await new Promise((r) => setTimeout(r, 300));
      mkdirSync(h.runDir, { recursive: true, mode: 0o700 });
      writeFileSync(join(h.runDir, 'daemon.pid'), `${sleeper.pid}\n`);
      await run('mkfifo', [join(h.runDir, 'daemon.fifo')]);
      const g = await h.addGuest(spec(58));
      const r = await online(h, g);
      assert.equal((await daemons(h)).length, 1, r.stderr);
      const st = JSON.parse((await h.xennet(['status', '--json'], env)).stdout) as { daemon?: { hookCalls?: number } };
      assert.equal(st.daemon?.hookCalls, 1, 'it served the call');
    } finally {
      sleeper.kill('SIGKILL');
    }
  });
});
