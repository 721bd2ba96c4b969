/**
 * `xennet bridge start|stop|status` and `network-xennet` against a real kernel in namespaces:
 * state read back with `ip -j` (not xennet's own reader) and proven with traffic.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { currentBootId } from '../../src/sys/boot.js';
import { start } from '../../src/sys/exec.js';
import { LineWaiter } from './lib/lines.js';
import type { LinkRow } from './lib/links.js';
import { sweepLeftovers } from './lib/netns.js';
import { assertSnapshotSettles, buildHostTopology, NIC_SETTINGS, settleIpv6, snapshot, type HostTopology } from './lib/topology.js';
import { hookIn, xennetIn, type Runner } from './lib/xennet.js';

const echoFixture = fileURLToPath(new URL('../../../test/netns/fixtures/tcp-echo.mjs', import.meta.url));


async function links(t: HostTopology): Promise<Map<string, LinkRow>> {
  const rows = await t.dom0.ipJson<LinkRow[]>('-d', 'link', 'show');
  return new Map(rows.map((r) => [r.ifname, r]));
}

function ok(r: { code: number; stdout: string; stderr: string }, what: string): void {
  assert.equal(r.code, 0, `${what} exited ${r.code}: ${r.stderr}${r.stdout}`);
}

describe('bridge takeover (netns)', function () {
  this.timeout(600_000);
  let t: HostTopology;
  let xennet: Runner;
  let original: Awaited<ReturnType<typeof snapshot>>;

  before(async () => {
    await sweepLeftovers();
  });

  beforeEach(async () => {
    t = await buildHostTopology();
    xennet = xennetIn(t.dom0, t.stateDir);
    await settleIpv6(t.dom0);
    original = await snapshot(t.dom0);
  });

  afterEach(async () => {
    await t.teardown();
  });

  /**
   * The namespace is back to its pre-start snapshot. The kernel finishes some IPv6 work after a
   * link comes up (link-local addresses, their DAD) on its own time, so a difference is read again
   * for up to 5 s before it fails; an equal snapshot passes at once.
   */
  async function assertOriginal(why: string): Promise<void> {
    await assertSnapshotSettles(t.dom0, original, `${why}: the namespace differs from its pre-start snapshot`);
  }

  it('start builds the netloop layout; eth0 keeps MAC, MTU, addresses and routes; traffic flows', async () => {
    const before = await links(t);
    ok(await xennet(['bridge', 'start']), 'start');
    const after = await links(t);
    assert.equal(after.get('xenbr0')?.linkinfo?.info_kind, 'bridge');
    assert.equal(after.get('peth0')?.master, 'xenbr0');
    assert.equal(after.get('vif0.0')?.master, 'xenbr0');
    assert.equal(after.get('eth0')?.linkinfo?.info_kind, 'veth');
    assert.equal(after.get('eth0')?.master, undefined);
    assert.equal(after.get('veth0'), undefined);
    assert.equal(after.get('eth0')?.address, before.get('eth0')?.address, 'eth0 keeps the NIC MAC');
    assert.equal(after.get('eth0')?.mtu, 1400, 'eth0 keeps the NIC MTU');
    assert.equal(after.get('peth0')?.address, 'fe:ff:ff:ff:ff:ff');
    assert.equal(after.get('vif0.0')?.address, 'fe:ff:ff:ff:ff:ff');
    assert.ok(after.get('peth0')?.flags.includes('NOARP') && !after.get('peth0')?.flags.includes('MULTICAST'), 'peth0 is quiet');
    assert.ok(after.get('vif0.0')?.flags.includes('NOARP'), 'vif0.0 is quiet');
    // The NIC's own IP-stack settings (/etc/sysctl.d's): the host side has them, the renamed NIC
    // keeps them.
    for (const [key, value] of Object.entries(NIC_SETTINGS)) {
      for (const link of ['eth0', 'peth0']) {
        const r = await t.dom0.exec('sysctl', ['-n', key.replace('<nic>', link)]);
        assert.equal(r.stdout.trim(), value, `${key.replace('<nic>', link)} after start`);
      }
    }

    await settleIpv6(t.dom0);
    const snap = await snapshot(t.dom0);
    const orig = (original.addresses as { dev: string; scope: string }[]).filter((a) => a.dev === 'eth0' && a.scope !== 'link');
    const now = (snap.addresses as { dev: string; scope: string }[]).filter((a) => a.dev === 'eth0' && a.scope !== 'link');
    assert.deepEqual(now, orig, 'eth0 has all its addresses');
    const carried = (s: typeof snap) => (s.routes as { dev?: string; protocol?: string; table?: string }[]).filter((r) => r.dev === 'eth0' && r.protocol !== 'kernel' && r.table !== 'local');
    assert.deepEqual(carried(snap), carried(original), 'eth0 has all its routes (default, table 100, src)');
    assert.equal(carried(original).length, 4);
    assert.ok(await t.dom0.ping('192.168.0.1', 1, 3), 'dom0 pings the gateway');
    assert.ok(await t.dom0.ping('198.51.100.1'), 'dom0 reaches beyond the gateway through its default route');
    assert.ok(await t.dom0.ping('2001:db8::1'), 'dom0 pings the gateway over IPv6');
    // The NIC's static and proxy neighbour entries are on the host side.
    assert.ok(await t.dom0.ping('192.168.0.77', 1, 3), 'dom0 reaches 192.168.0.77 through its static neighbour entry');
    const neigh = await t.dom0.ip('neigh', 'show', 'nud', 'permanent');
    assert.match(neigh, /192\.168\.0\.77 dev eth0 lladdr [0-9a-f:]+ PERMANENT/);
    const proxies = await t.dom0.ip('neigh', 'show', 'proxy');
    assert.match(proxies, /192\.168\.0\.88 dev eth0 proxy/);
    assert.match(proxies, /2001:db8::88 dev eth0 proxy/);
  });

  it('a TCP connection opened before start still works after it', async () => {
    const server = start('ip', ['netns', 'exec', t.lan.name, 'node', echoFixture, 'server', '192.168.0.1', '7777']);
    let client: ReturnType<typeof start> | undefined;
    try {
      await new LineWaiter(server).waitFor('listening');
      client = start('ip', ['netns', 'exec', t.dom0.name, 'node', echoFixture, 'client', '192.168.0.1', '7777']);
      const c = new LineWaiter(client);
      await c.waitFor('connected');
      client.stdin?.write('before\n');
      await c.waitFor('echo:before');
      ok(await xennet(['bridge', 'start']), 'start');
      client.stdin?.write('after\n');
      await c.waitFor('echo:after', 20_000);
    } finally {
      client?.kill('SIGKILL');
      server.kill('SIGKILL');
    }
  });

  it('stop restores links, MACs, MTUs, every address and every route exactly', async () => {
    ok(await xennet(['bridge', 'start']), 'start');
    const r = await xennet(['bridge', 'stop']);
    ok(r, 'stop');
    assert.doesNotMatch(r.stdout + r.stderr, /warning/);
    assert.equal((await links(t)).get('xenbr0'), undefined, 'no xenbr0');
    await assertOriginal('after stop');
    assert.ok(await t.dom0.ping('198.51.100.1', 1, 3), 'dom0 reaches beyond the gateway through its default route');
    assert.deepEqual(readdirSync(t.stateDir).filter((f) => f.endsWith('.json')), [], 'the journal is gone');
  });

  it('what a takeover killed while writing its journal left is swept by the next start or stop; a live writer\'s and another bridge\'s are not', async () => {
    const dead = 2 ** 22 + 17;
    const left = (bridge: string, pid: number): string => join(t.stateDir, `takeover-${bridge}.json.tmp-${pid}`);
    mkdirSync(t.stateDir, { recursive: true });
    for (const f of [left('xenbr0', dead), left('xenbr0', process.pid), left('xenbr1', dead)]) writeFileSync(f, '{"version":1');
    ok(await xennet(['bridge', 'start']), 'start');
    assert.deepEqual([left('xenbr0', dead), left('xenbr0', process.pid), left('xenbr1', dead)].map(existsSync), [false, true, true]);
    writeFileSync(left('xenbr0', dead), '{');
    ok(await xennet(['bridge', 'stop']), 'stop');
    assert.equal(existsSync(left('xenbr0', dead)), false);
    await assertOriginal('after the stop');
  });

  it('start twice and stop twice are no-ops; start, stop, start again works', async () => {
    ok(await xennet(['bridge', 'start']), 'start');
    await settleIpv6(t.dom0);
    const layout = await snapshot(t.dom0);
    const again = await xennet(['bridge', 'start']);
    ok(again, 'second start');
    assert.match(again.stdout, /already took over eth0; nothing to do/);
    await settleIpv6(t.dom0);
    assert.deepEqual(await snapshot(t.dom0), layout);
    ok(await xennet(['bridge', 'stop']), 'stop');
    const stop2 = await xennet(['bridge', 'stop']);
    ok(stop2, 'second stop');
    assert.match(stop2.stdout, /not taken over; nothing to do/);
    await assertOriginal('after two stops');
    ok(await xennet(['bridge', 'start']), 'start again');
    assert.equal((await links(t)).get('peth0')?.master, 'xenbr0');
    assert.ok(await t.dom0.ping('192.168.0.1', 1, 3));
    ok(await xennet(['bridge', 'stop']), 'stop again');
    await assertOriginal('after start, stop, start, stop');
  });

  it('a failure at any step of start leaves the original state and names the step', async () => {
    const plan = await xennet(['bridge', 'start', '--json'], { XENNET_TEST_FAULT: 'fail-at:999' });
    ok(plan, 'start');
    const steps = (JSON.parse(plan.stdout) as { steps: string[] }).steps.length;
    assert.ok(steps > 20, `the takeover has ${steps} steps`);
    ok(await xennet(['bridge', 'stop']), 'stop');
    await assertOriginal('baseline');
    for (let k = 1; k <= steps; k++) {
      const r = await xennet(['bridge', 'start'], { XENNET_TEST_FAULT: `fail-at:${k}` });
      assert.equal(r.code, 1, `fail-at:${k} must fail`);
      assert.match(r.stderr, new RegExp(`step ${k} of ${steps} \\(.+\\) failed: injected fault.*the completed steps were undone`));
      await assertOriginal(`failure before step ${k}`);
      assert.equal(existsSync(`${t.stateDir}/takeover-xenbr0.json`), false, 'no journal left');
    }
  });

  it('a start killed between any two steps is repaired by the next start or stop', async function () {
    this.timeout(900_000); // ~40 kill points, each a start, a status and a start or stop: minutes on a busy machine
    const plan = await xennet(['bridge', 'start', '--json']);
    const steps = (JSON.parse(plan.stdout) as { steps: string[] }).steps.length;
    ok(await xennet(['bridge', 'stop']), 'stop');
    for (let k = 2; k <= steps; k++) {
      const killed = await xennet(['bridge', 'start'], { XENNET_TEST_FAULT: `kill-at:${k}` });
      assert.notEqual(killed.code, 0, `kill-at:${k}`);
      const status = await xennet(['bridge', 'status', '--json']);
      assert.equal((JSON.parse(status.stdout) as { state: string }).state, 'half-done');
      if (k % 2 === 0) {
        const r = await xennet(['bridge', 'stop']);
        ok(r, `stop after kill-at:${k}`);
        assert.match(r.stdout, new RegExp(`undid a start of xenbr0 that stopped after ${k - 1} of ${steps} steps`));
        await assertOriginal(`stop after a start killed before step ${k}`);
      } else {
        const r = await xennet(['bridge', 'start']);
        ok(r, `start after kill-at:${k}`);
        assert.match(r.stdout, /undid a start/);
        assert.equal((await links(t)).get('peth0')?.master, 'xenbr0');
        ok(await xennet(['bridge', 'stop']), 'stop');
        await assertOriginal(`start+stop after a start killed before step ${k}`);
      }
    }
  });

  it('a start whose own undo is killed (every third step) is finished by the next start or stop, which never runs again what it restored', async function () {
    this.timeout(900_000);
    const plan = await xennet(['bridge', 'start', '--json']);
    const steps = (JSON.parse(plan.stdout) as { steps: string[] }).steps.length;
    ok(await xennet(['bridge', 'stop']), 'stop');
    // The last step fails: its undo is the longest (every step). Every third undo step is a kill
    // point (before, between and after the renames), repaired by a stop and a start in turn.
    for (let m = 1; m <= steps; m += 3) {
      const killed = await xennet(['bridge', 'start'], { XENNET_TEST_FAULT: `fail-at:${steps},undo-kill-at:${m}` });
      assert.notEqual(killed.code, 0, `undo-kill-at:${m}`);
      assert.equal((JSON.parse((await xennet(['bridge', 'status', '--json'])).stdout) as { state: string }).state, 'half-done', `undo-kill-at:${m}`);
      if (((m - 1) / 3) % 2 === 0) {
        ok(await xennet(['bridge', 'stop']), `stop after undo-kill-at:${m}`);
      } else {
        ok(await xennet(['bridge', 'start']), `start after undo-kill-at:${m}`);
        assert.equal((await links(t)).get('peth0')?.master, 'xenbr0');
        ok(await xennet(['bridge', 'stop']), 'stop');
      }
      await assertOriginal(`after a start whose undo was killed before its step ${m}`);
    }
  });

  it('an undo that fails at a step stops there (the ops name links, and names change half way), and the next command goes on from that step', async () => {
    const plan = JSON.parse((await xennet(['bridge', 'start', '--json'])).stdout) as { steps: string[] };
    ok(await xennet(['bridge', 'stop']), 'stop');
    const steps = plan.steps.length;
    const removal = plan.steps.indexOf('remove route default via 192.168.0.1 dev eth0');
    assert.ok(removal >= 0, plan.steps.join('\n'));
    // The undo of a start failed at its last step runs the inverse of every step, the last first.
    const r = await xennet(['bridge', 'start'], { XENNET_TEST_FAULT: `fail-at:${steps},undo-fail-at:${steps - removal}` });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /undoing the completed steps also failed \(step \d+ of \d+ of the undo \(add route default via 192\.168\.0\.1 dev eth0\): injected fault/);
    assert.equal((JSON.parse((await xennet(['bridge', 'status', '--json'])).stdout) as { state: string }).state, 'half-done');
    const problems = async (): Promise<string[]> => (JSON.parse((await xennet(['status', '--json'])).stdout) as { problems: string[] }).problems;
    assert.ok((await problems()).some((p) => p.startsWith('a start of xenbr0 (taking over eth0) was interrupted: the host\'s network is half changed')), 'xennet status says so too');
    // While a command holds the bridge's lock (a flock on it: flock(1) here, whose command runs
    // with it), the journal is its work in progress: a note, not a problem.
    const lock = `${t.stateDir}/takeover-xenbr0.lock`;
    const holder = start('flock', ['--close', lock, 'sleep', '60']);
    try {
      const running = `a start of xenbr0 (taking over eth0) is running now (pid ${holder.pid}): the host's network is changing`;
      let during: { problems: string[]; notes: string[] } = { problems: [], notes: [] };
      for (let i = 0; i < 50 && !during.notes.includes(running); i++) during = JSON.parse((await xennet(['status', '--json'])).stdout) as { problems: string[]; notes: string[] };
      assert.ok(during.notes.includes(running), during.notes.join('\n'));
      assert.ok(!during.problems.some((p) => p.includes('was interrupted')), during.problems.join('\n'));
      // `bridge status` says so too, and exits 0: nothing is wrong while the command runs.
      const bs = await xennet(['bridge', 'status', '--json']);
      assert.equal(bs.code, 0, bs.stdout);
      assert.deepEqual((({ state, summary, runningPid }) => ({ state, summary, runningPid }))(JSON.parse(bs.stdout) as { state: string; summary: string; runningPid: number | null }), { state: 'half-done', summary: `a start is running now (pid ${holder.pid}): the host's network is changing`, runningPid: holder.pid });
      // Killed with the lock held (a crash): the kernel lets the lock go; what the file says (a
      // live pid of this boot) holds nothing: the start was interrupted.
      holder.kill('SIGKILL');
      await new Promise<void>((r) => holder.once('exit', () => r()));
      writeFileSync(lock, `${process.pid} ${currentBootId()}\n`);
      assert.ok((await problems()).some((p) => p.startsWith('a start of xenbr0 (taking over eth0) was interrupted')), 'a lock nobody holds');
      const after = await xennet(['bridge', 'status', '--json']);
      assert.equal(after.code, 1);
      assert.equal((JSON.parse(after.stdout) as { runningPid: number | null }).runningPid, null);
    } finally {
      holder.kill('SIGKILL');
      rmSync(lock, { force: true });
    }
    assert.doesNotMatch(await t.dom0.ip('route', 'show', 'default'), /192\.168\.0\.1/, 'the default route is not back');
    assert.equal((await links(t)).get('xenbr0')?.linkinfo?.info_kind, 'bridge', 'and nothing after it ran: the bridge is still there');
    const stop = await xennet(['bridge', 'stop']);
    ok(stop, 'stop');
    assert.match(stop.stdout, /undid a start/);
    await assertOriginal('after the next command went on from the failed step');
    const after = await problems();
    assert.ok(!after.some((p) => p.includes('was interrupted')), after.join('\n'));
    assert.ok(after.some((p) => p.startsWith('no bridge on this host: a guest\'s interface has none to join')), `the original layout has no bridge: ${after.join('\n')}`);
    // A stop's undo the same way.
    ok(await xennet(['bridge', 'start']), 'start');
    const stopPlan = JSON.parse((await xennet(['bridge', 'stop', '--dry-run', '--json'])).stdout) as { steps: string[] };
    const down = stopPlan.steps.indexOf('set eth0 down');
    assert.ok(down >= 0, stopPlan.steps.join('\n'));
    const failed = await xennet(['bridge', 'stop'], { XENNET_TEST_FAULT: `undo-fail-at:${down + 1}` });
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /could not complete: step \d+ of \d+ of the undo \(set eth0 down\): injected fault/);
    ok(await xennet(['bridge', 'stop']), 'stop again');
    await assertOriginal('after the second stop went on from the failed step');
  });

  it('stop refuses, changing nothing, a journal whose layout the host does not have (copied back after a stop, or another NIC by now)', async () => {
    ok(await xennet(['bridge', 'start']), 'start');
    const journal = readFileSync(`${t.stateDir}/takeover-xenbr0.json`, 'utf8');
    ok(await xennet(['bridge', 'stop']), 'stop');
    writeFileSync(`${t.stateDir}/takeover-xenbr0.json`, journal);
    for (const args of [['bridge', 'stop'], ['bridge', 'stop', '--dry-run']]) {
      const r = await xennet(args);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /records a takeover of eth0 by xenbr0, but the host does not have that layout \(.*\); nothing was changed/);
    }
    await assertOriginal('a stale journal acted on nothing');
    // Taken over, but the journal's NIC is another link (its ifindex).
    rmSync(`${t.stateDir}/takeover-xenbr0.json`);
    ok(await xennet(['bridge', 'start']), 'start');
    const j = JSON.parse(readFileSync(`${t.stateDir}/takeover-xenbr0.json`, 'utf8')) as { before: { links: { name: string; index: number }[] } };
    j.before.links.find((l) => l.name === 'eth0')!.index = 999;
    writeFileSync(`${t.stateDir}/takeover-xenbr0.json`, JSON.stringify(j));
    await settleIpv6(t.dom0);
    const layout = await snapshot(t.dom0);
    const r = await xennet(['bridge', 'stop']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /peth0 is not the NIC the journal took over \(ifindex \d+, not 999\)\); nothing was changed/);
    await assertSnapshotSettles(t.dom0, layout, 'nothing was changed');
  });

  it('start and stop refuse, changing nothing, the journal of an unfinished start or stop whose undo the host is not at (copied back after the repair)', async () => {
    const plan = JSON.parse((await xennet(['bridge', 'start', '--json'])).stdout) as { steps: string[] };
    const path = `${t.stateDir}/takeover-xenbr0.json`;
    // A stop that failed early in its undo (the NIC is still peth0), finished, then its journal put back.
    const failed = await xennet(['bridge', 'stop'], { XENNET_TEST_FAULT: 'undo-fail-at:3' });
    assert.equal(failed.code, 1);
    const stopping = readFileSync(path, 'utf8');
    ok(await xennet(['bridge', 'stop']), 'stop');
    await assertOriginal('after the stop');
    // A start that failed and whose undo failed early, repaired, then its journal put back.
    const started = await xennet(['bridge', 'start'], { XENNET_TEST_FAULT: `fail-at:${plan.steps.length},undo-fail-at:2` });
    assert.equal(started.code, 1);
    const starting = readFileSync(path, 'utf8');
    ok(await xennet(['bridge', 'stop']), 'stop repairs');
    await assertOriginal('after the repair');
    for (const [what, journal] of [['stopping', stopping], ['starting', starting]] as const) {
      for (const args of [['bridge', 'stop'], ['bridge', 'start'], ['bridge', 'stop', '--dry-run'], ['bridge', 'start', '--dry-run']]) {
        writeFileSync(path, journal);
        const r = await xennet(args);
        assert.equal(r.code, 1, `${what}, ${args.join(' ')}: ${r.stdout}`);
        assert.match(r.stderr, /that did not finish, but the host does not match it \(the NIC is eth0, where the journal has it p?eth0( or p?eth0)*\); nothing was changed/, `${what}, ${args.join(' ')}`);
        await assertOriginal(`${what} journal, ${args.join(' ')}: nothing changed`);
      }
    }
  });

  it('start does not finish an interrupted stop while guests are on the bridge (as stop refuses), and stop --force does', async () => {
    ok(await xennet(['bridge', 'start']), 'start');
    const killed = await xennet(['bridge', 'stop'], { XENNET_TEST_FAULT: 'kill-at:5' });
    assert.notEqual(killed.code, 0);
    await t.dom0.ip('link', 'add', 'vif5.0', 'type', 'veth', 'peer', 'name', 'g5');
    await t.dom0.ip('link', 'set', 'vif5.0', 'master', 'xenbr0', 'up');
    for (const args of [['bridge', 'start'], ['bridge', 'start', '--dry-run'], ['bridge', 'stop']]) {
      const r = await xennet(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, /xenbr0 still has other ports \(vif5\.0\); nothing was changed/, args.join(' '));
    }
    assert.equal((await links(t)).get('vif5.0')?.master, 'xenbr0', 'the guest is still on the bridge');
    ok(await xennet(['bridge', 'stop', '--force']), 'stop --force');
    await t.dom0.ip('link', 'del', 'vif5.0');
    await assertOriginal('after the forced stop');
  });

  it("a /32 address whose gateway is a host route (the hosters' layout): start carries it, traffic flows, stop restores it", async () => {
    await t.dom0.ip('route', 'del', 'default');
    await t.dom0.ip('addr', 'del', '192.168.0.3/24', 'dev', 'eth0');
    await t.dom0.ip('addr', 'del', '192.168.0.2/24', 'dev', 'eth0');
    await t.dom0.ip('addr', 'add', '192.168.0.2/32', 'dev', 'eth0');
    await t.dom0.ip('route', 'add', '192.168.0.1', 'dev', 'eth0', 'scope', 'link');
    await t.dom0.ip('route', 'add', 'default', 'via', '192.168.0.1', 'dev', 'eth0');
    await t.dom0.ip('route', 'add', '10.9.0.0/16', 'via', '192.168.0.1', 'table', '100');
    await settleIpv6(t.dom0);
    original = await snapshot(t.dom0);
    ok(await xennet(['bridge', 'start']), 'start');
    assert.equal((await links(t)).get('peth0')?.master, 'xenbr0');
    assert.ok(await t.dom0.ping('198.51.100.1', 1, 3), 'dom0 reaches beyond the gateway through its default route');
    ok(await xennet(['bridge', 'stop']), 'stop');
    await assertOriginal('after stop');
    assert.ok(await t.dom0.ping('198.51.100.1', 1, 3), 'and again after stop');
  });

  it('a stop killed half way is finished by the next stop', async () => {
    ok(await xennet(['bridge', 'start']), 'start');
    const killed = await xennet(['bridge', 'stop'], { XENNET_TEST_FAULT: 'kill-at:12' });
    assert.notEqual(killed.code, 0);
    assert.equal((JSON.parse((await xennet(['bridge', 'status', '--json'])).stdout) as { state: string }).state, 'half-done');
    const r = await xennet(['bridge', 'stop']);
    ok(r, 'second stop');
    assert.match(r.stdout, /finished a stop that had been interrupted/);
    await assertOriginal('after a finished interrupted stop');
  });

  it('refuses, changing nothing, when the NIC is missing, is a bridge port, or names collide', async () => {
    const refusals: [string, string[], (() => Promise<unknown>) | null, RegExp][] = [
      ['missing NIC', ['--netdev', 'eth9'], null, /network device eth9 does not exist; nothing was changed/],
      ['NIC is a bridge port', [], async () => {
        await t.dom0.ip('link', 'add', 'br7', 'type', 'bridge');
        await t.dom0.ip('link', 'set', 'eth0', 'master', 'br7');
      }, /eth0 is already a port of br7; nothing was changed/],
      ['foreign peth0', [], () => t.dom0.ip('link', 'add', 'peth0', 'type', 'veth', 'peer', 'name', 'other0'), /peth0 already exists; nothing was changed/],
      ['bridge name taken by a non-bridge', [], () => t.dom0.ip('link', 'add', 'xenbr0', 'type', 'veth', 'peer', 'name', 'other0'), /xenbr0 exists and is not a bridge/],
      ['foreign veth0', [], () => t.dom0.ip('link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'other0'), /veth0 already exists and is not one end of a veth0\/vif0.0 veth pair/],
      ['bad name', ['--bridge', 'a bridge'], null, /is not a valid interface name/],
      ['a macvlan on the NIC', [], () => t.dom0.ip('link', 'add', 'mv0', 'link', 'eth0', 'type', 'macvlan', 'mode', 'bridge'), /mv0 \(macvlan\) is stacked on eth0, which then cannot be a bridge port \(the kernel refuses it: EBUSY\); nothing was changed/],
      ['multipath route through the NIC', [], async () => {
        await t.dom0.ip('addr', 'add', '192.168.1.2/24', 'dev', 'eth0');
        await t.dom0.ip('route', 'add', '10.7.0.0/16', 'nexthop', 'via', '192.168.0.1', 'nexthop', 'via', '192.168.1.1');
      }, /multipath route through eth0/],
    ];
    for (const [what, args, setup, message] of refusals) {
      await setup?.();
      await settleIpv6(t.dom0);
      const before = await snapshot(t.dom0);
      const r = await xennet(['bridge', 'start', ...args]);
      assert.notEqual(r.code, 0, `${what}: must refuse`);
      assert.match(r.stderr, message, what);
      assert.deepEqual(await snapshot(t.dom0), before, `${what}: namespace untouched`);
      await t.teardown();
      t = await buildHostTopology();
      xennet = xennetIn(t.dom0, t.stateDir);
    }
  });

  it('status: the bridge the takeover of this boot made, deleted by hand, is a problem, though another bridge is there', async () => {
    ok(await xennet(['bridge', 'start']), 'start');
    const problems = async (): Promise<string[]> => (JSON.parse((await xennet(['status', '--json'])).stdout) as { problems: string[] }).problems;
    assert.ok(!(await problems()).some((p) => p.includes('xenbr0 is gone')));
    await t.dom0.ip('link', 'add', 'docker0', 'type', 'bridge');
    await t.dom0.ip('link', 'del', 'xenbr0');
    const now = await problems();
    assert.ok(now.some((p) => p.startsWith('bridge xenbr0 is gone, though the takeover of this boot made it (taking over eth0): a guest started from now on has no bridge to join')), now.join('\n'));
    assert.ok(!now.some((p) => p.startsWith('no bridge on this host')), 'the one problem');
  });

  it('stop refuses while guest vifs are attached, and --force detaches them', async () => {
    ok(await xennet(['bridge', 'start']), 'start');
    await t.dom0.ip('link', 'add', 'vif1.0', 'type', 'veth', 'peer', 'name', 'guest-eth0');
    await t.dom0.ip('link', 'set', 'vif1.0', 'master', 'xenbr0');
    const r = await xennet(['bridge', 'stop']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /xenbr0 still has other ports \(vif1.0\); nothing was changed/);
    assert.equal((await links(t)).get('peth0')?.master, 'xenbr0', 'still taken over');
    ok(await xennet(['bridge', 'stop', '--force']), 'stop --force');
    await t.dom0.ip('link', 'del', 'vif1.0');
    await assertOriginal('after a forced stop');
  });

  it('status reports the layout for people and as JSON', async () => {
    const pre = await xennet(['bridge', 'status', '--json']);
    ok(pre, 'status');
    assert.equal((JSON.parse(pre.stdout) as { state: string }).state, 'original');
    ok(await xennet(['bridge', 'start']), 'start');
    const s = JSON.parse((await xennet(['bridge', 'status', '--json'])).stdout) as {
      state: string;
      bridge: { ports: { name: string }[]; nfCallIptables: boolean; nfCallIp6tables: boolean; stpState: number; forwardDelay: number };
      hostSide: { name: string; addresses: string[]; routes: string[] };
    };
    assert.equal(s.state, 'taken-over');
    assert.deepEqual(s.bridge.ports.map((p) => p.name).sort(), ['peth0', 'vif0.0']);
    assert.equal(s.bridge.nfCallIptables, true);
    assert.equal(s.bridge.nfCallIp6tables, true);
    assert.equal(s.bridge.stpState, 0);
    assert.equal(s.bridge.forwardDelay, 0);
    assert.ok(s.hostSide.addresses.includes('192.168.0.3/24 (eth0:1)'));
    assert.ok(s.hostSide.routes.includes('default via 192.168.0.1 dev eth0'));
    const text = await xennet(['bridge', 'status']);
    assert.match(text.stdout, /bridge xenbr0: taken-over/);
    assert.match(text.stdout, /port peth0 +UP +fe:ff:ff:ff:ff:ff +uplink \(NIC\)/);
    // The kernel agrees with what status claims about netfilter calls.
    const br = (await t.dom0.ipJson<{ linkinfo: { info_data: { nf_call_iptables: number; nf_call_ip6tables: number } } }[]>('-d', 'link', 'show', 'xenbr0'))[0];
    assert.equal(br?.linkinfo.info_data.nf_call_iptables, 1);
    assert.equal(br?.linkinfo.info_data.nf_call_ip6tables, 1);
  });

  it('network-xennet takes xend\'s argv form', async () => {
    const hook = hookIn(t.dom0, t.stateDir, 'network-xennet');
    ok(await hook(['start', 'netdev=eth0', 'bridge=xenbr0']), 'network-xennet start');
    assert.equal((await links(t)).get('peth0')?.master, 'xenbr0');
    const status = await hook(['status']);
    ok(status, 'status');
    assert.match(status.stdout, /taken-over/);
    const bad = await hook(['restart']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unknown command "restart"/);
    ok(await hook(['stop', 'netdev=eth0']), 'network-xennet stop');
    await assertOriginal('after network-xennet stop');
  });

  it('a journal from an earlier boot is discarded, not replayed', async () => {
    ok(await xennet(['bridge', 'start']), 'start');
    ok(await xennet(['bridge', 'stop']), 'stop');
    // Forge a journal of a previous boot: it must not be acted on.
    writeFileSync(`${t.stateDir}/takeover-xenbr0.json`, JSON.stringify({ version: 1, spec: { netdev: 'eth0', bridge: 'xenbr0', vifnum: 0, pdev: 'peth0', vdev: 'veth0', vif0: 'vif0.0' }, bootId: 'earlier-boot', startedAt: 'x', before: { links: [], addresses: [], routes: [] }, ops: [{ op: 'rename', from: 'eth0', to: 'peth0' }], phase: 'starting', done: 1, undone: 0 }));
    // status reads it as what it is, and leaves it alone
    const status = await xennet(['bridge', 'status', '--json']);
    ok(status, 'status');
    const s = JSON.parse(status.stdout) as { state: string; journal: unknown; staleJournal: string | null };
    assert.deepEqual([s.state, s.journal, s.staleJournal], ['original', null, `${t.stateDir}/takeover-xenbr0.json`]);
    assert.match((await xennet(['bridge', 'status'])).stdout, /bridge xenbr0: original\n.*\n {2}journal: \S+takeover-xenbr0.json was written before the last reboot: ignored/);
    assert.ok(existsSync(`${t.stateDir}/takeover-xenbr0.json`), 'status removes nothing');
    const r = await xennet(['bridge', 'stop']);
    ok(r, 'stop');
    assert.match(r.stdout, /not taken over/);
    assert.match(r.stdout, /written before the last reboot/);
    await assertOriginal('stale journal ignored');
    assert.ok(!existsSync(`${t.stateDir}/takeover-xenbr0.json`), 'stop removed it');
  });

  /** A fresh topology whose NIC is `nic` instead of eth0, for the rest of the test (torn down by afterEach). */
  async function rebuildWith(nic: string): Promise<void> {
    await t.teardown();
    t = await buildHostTopology(nic);
    xennet = xennetIn(t.dom0, t.stateDir);
    await settleIpv6(t.dom0);
    original = await snapshot(t.dom0);
  }

  it('a NIC with a predictable name (enp3s0) is found through the default route: penp3s0 on xenbr0, veth0 becomes enp3s0', async () => {
    await rebuildWith('enp3s0');
    const pre = JSON.parse((await xennet(['bridge', 'status', '--json'])).stdout) as { state: string; spec: { netdev: string; bridge: string; pdev: string; vdev: string } };
    assert.equal(pre.state, 'original');
    assert.deepEqual([pre.spec.netdev, pre.spec.bridge, pre.spec.pdev, pre.spec.vdev], ['enp3s0', 'xenbr0', 'penp3s0', 'veth0']);
    const nicMac = (await links(t)).get('enp3s0')?.address;
    const r = await xennet(['bridge', 'start']);
    ok(r, 'start');
    assert.match(r.stdout, /xenbr0: took over enp3s0 \(NIC now penp3s0, host side enp3s0 via vif0.0\)/);
    const after = await links(t);
    assert.equal(after.get('penp3s0')?.master, 'xenbr0');
    assert.equal(after.get('vif0.0')?.master, 'xenbr0');
    assert.equal(after.get('enp3s0')?.linkinfo?.info_kind, 'veth', 'enp3s0 is the veth now');
    assert.equal(after.get('enp3s0')?.address, nicMac, 'with the NIC MAC');
    assert.equal(after.get('eth0'), undefined, 'no eth0 appears');
    assert.ok(await t.dom0.ping('198.51.100.1', 1, 3), 'dom0 reaches beyond the gateway through enp3s0');
    const status = await xennet(['bridge', 'status']);
    ok(status, 'status');
    assert.match(status.stdout, /bridge xenbr0: taken-over/);
    assert.match(status.stdout, /port penp3s0 +UP +fe:ff:ff:ff:ff:ff +uplink \(NIC\)/);
    ok(await xennet(['bridge', 'stop']), 'stop');
    await assertOriginal('after stop of enp3s0');
  });

  it('refuses a 15-character NIC name, naming the 16-character name it would need, and changes nothing', async () => {
    await rebuildWith('enx0123456789ab');
    for (const args of [[], ['--netdev', 'enx0123456789ab']]) {
      const r = await xennet(['bridge', 'start', ...args]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /the NIC enx0123456789ab would be renamed penx0123456789ab, which has 16 characters; the kernel allows 15 \(IFNAMSIZ\); nothing was changed/);
      await assertOriginal(`after the refusal (${args.join(' ') || 'default NIC'})`);
    }
    // status, stop and stop --dry-run say it is not taken over (nothing to do), without refusing.
    const st = await xennet(['bridge', 'status', '--json']);
    assert.equal(st.code, 0, st.stderr);
    assert.equal((JSON.parse(st.stdout) as { state: string }).state, 'original');
    for (const args of [['--dry-run'], []]) {
      const r = await xennet(['bridge', 'stop', ...args]);
      assert.equal(r.code, 0, `stop ${args.join(' ')}: ${r.stderr}`);
    }
    await assertOriginal('after status and stop');
  });

  it('without a default route and without --netdev: an error that asks for --netdev, nothing changed', async () => {
    await t.dom0.ip('route', 'del', 'default');
    await t.dom0.ip('-6', 'route', 'del', 'default');
    await settleIpv6(t.dom0);
    const before = await snapshot(t.dom0);
    for (const action of ['start', 'status']) {
      const r = await xennet(['bridge', action]);
      assert.equal(r.code, 1, `${action}: ${r.stdout}`);
      assert.match(r.stderr, /there is no default route \(IPv4 or IPv6\) to tell which NIC carries the host addresses/);
      assert.match(r.stderr, /--netdev <NIC>/);
    }
    assert.deepEqual(await snapshot(t.dom0), before, 'namespace untouched');
    ok(await xennet(['bridge', 'start', '--netdev', 'eth0']), 'start --netdev eth0');
    assert.equal((await links(t)).get('peth0')?.master, 'xenbr0');
    ok(await xennet(['bridge', 'stop']), 'stop finds the takeover through its journal');
    assert.deepEqual(await snapshot(t.dom0), before, 'restored');
  });

  it('start --dry-run and stop --dry-run list every step and change nothing', async () => {
    const dry = await xennet(['bridge', 'start', '--dry-run']);
    ok(dry, 'start --dry-run');
    await assertOriginal('after start --dry-run');
    assert.deepEqual(readdirSync(t.stateDir), [], 'no journal, no lock file');
    const dryJson = JSON.parse((await xennet(['bridge', 'start', '--dry-run', '--json'])).stdout) as { action: string; steps: string[] };
    assert.equal(dryJson.action, 'would-start');
    const real = JSON.parse((await xennet(['bridge', 'start', '--json'])).stdout) as { action: string; steps: string[] };
    assert.equal(real.action, 'started');
    assert.deepEqual(dryJson.steps, real.steps, 'the dry run lists exactly the steps a start runs');
    assert.match(dry.stdout, new RegExp(`^dry run: xenbr0 would take over eth0 \\(NIC renamed peth0, host side eth0 via vif0.0\\) in ${real.steps.length} steps; nothing was changed:`));
    real.steps.forEach((step, i) => assert.ok(dry.stdout.includes(`${i + 1}. ${step}\n`) || dry.stdout.endsWith(`${i + 1}. ${step}`), `step ${i + 1} (${step}) is listed`));

    await settleIpv6(t.dom0);
    const up = await snapshot(t.dom0);
    const stopDry = await xennet(['bridge', 'stop', '--dry-run', '--json']);
    ok(stopDry, 'stop --dry-run');
    const stopSteps = (JSON.parse(stopDry.stdout) as { action: string; steps: string[] }).steps;
    await settleIpv6(t.dom0);
    assert.deepEqual(await snapshot(t.dom0), up, 'stop --dry-run changed nothing');
    assert.ok(existsSync(`${t.stateDir}/takeover-xenbr0.json`), 'the journal is still there');
    const stop = JSON.parse((await xennet(['bridge', 'stop', '--json'])).stdout) as { steps: string[] };
    assert.deepEqual(stopSteps, stop.steps, 'the dry run lists the steps a stop runs');
    await assertOriginal('after the real stop');
  });
});
