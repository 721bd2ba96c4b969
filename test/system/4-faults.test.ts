/**
 * (e) Faults around an installed vif-xennet, each bounded in time: libxl SIGKILLs a hotplug
 * script after 40 s, so the hook must end by itself well before (< 35 s here) with the right
 * outcome: xenstored killed or stopped, flock missing, the hotplug lock held by someone else, and
 * a missing, non-directory or read-only /var/lib/xennet.
 */
import { existsSync, mkdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { SimGuest, SimHost } from '../../src/sim/host.js';
import { run } from '../../src/sys/exec.js';
import { LOCK_DIR, LOCK_FILE, STATE_DIR, XENSTORED_SOCKET } from './lib/machine.js';
import { ended, spawnTracked, type Tracked } from './lib/proc.js';
import { guestSpec, hook, hotplug, installedHost, linkOf, noProblems, operatorEnv, rulesMentioning, secs, startHook, teardown, withOutcome, xs, type HookRun } from './lib/world.js';
import { xenstoredAsProcess, type XenstoredProcess } from './lib/xenstored.js';

const BUDGET_MS = 35_000;

async function mustRun(file: string, args: string[]): Promise<void> {
  const r = await run(file, args, { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr.trim()}`);
}

describe('system: xennet as installed, faults (each hook ends within libxl\'s budget)', function () {
  this.timeout(60_000);
  let host: SimHost;
  let g: SimGuest;
  let cleanups: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    host = await installedHost();
    g = await host.addGuest(guestSpec(5));
  });

  afterEach(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups = [];
    await teardown(host);
  });

  async function separateXenstored(): Promise<XenstoredProcess> {
    const p = await xenstoredAsProcess(host);
    cleanups.push(() => p.kill());
    return p;
  }

  function withinBudget(r: HookRun, problems: string[]): void {
    if (r.killedAtDeadline || r.ms >= BUDGET_MS) problems.push(`not finished within ${BUDGET_MS / 1000} s: ${ended(r)}`);
  }

  /** exit 0 is only fine together with hotplug-status connected (read once xenstored runs again). */
  async function neverFalseSuccess(r: HookRun, problems: string[]): Promise<void> {
    if (r.code === 0) {
      const status = await xs.read(`${g.backendPath}/hotplug-status`);
      if (status !== 'connected') problems.push(`exit 0 but hotplug-status ${JSON.stringify(status)}`);
    }
  }

  it('xenstored killed (process gone, socket file left) before an online: exit 1 within 12 s (it waits up to 5 s for a xenstored that restarts, and as long again to report)', async () => {
    const xsd = await separateXenstored();
    await xsd.kill();
    const problems: string[] = [];
    if (!existsSync(XENSTORED_SOCKET) || !statSync(XENSTORED_SOCKET).isSocket()) problems.push(`harness: ${XENSTORED_SOCKET} should be left behind`);
    const r = await hook(host, g, 'online');
    if (r.code !== 1) problems.push(`want exit 1: ${ended(r)}`);
    if (r.ms >= 12_000) problems.push(`took ${secs(r.ms)} (want < 12 s)`);
    const l = await linkOf(host.dom0, g.vif);
    if (l?.master !== undefined) problems.push(`${g.vif} attached to ${l.master}`);
    noProblems(withOutcome(problems, r), 'online with xenstored dead');
  });

  it('xenstored stopped (SIGSTOP) before an online: exit non-zero within the budget, never exit 0 without connected', async () => {
    const xsd = await separateXenstored();
    xsd.stop();
    const r = await hook(host, g, 'online');
    xsd.cont();
    const problems: string[] = [];
    withinBudget(r, problems);
    if (r.code === 0 || r.code === null) problems.push(`want a non-zero exit: ${ended(r)}`);
    await neverFalseSuccess(r, problems);
    noProblems(withOutcome(problems, r), 'online with xenstored stopped');
  });

  it('xenstored stopped (SIGSTOP) ~50 ms into an online: exit non-zero within the budget, never exit 0 without connected', async () => {
    const xsd = await separateXenstored();
    const h = startHook(host, g, 'online');
    await new Promise((resolve) => setTimeout(resolve, 50));
    xsd.stop();
    const r = await h.done;
    xsd.cont();
    const problems: string[] = [];
    withinBudget(r, problems);
    if (r.code === 0 || r.code === null) problems.push(`want a non-zero exit: ${ended(r)}`);
    await neverFalseSuccess(r, problems);
    noProblems(withOutcome(problems, r), 'online with xenstored stopped during the hook');
  });

  it('flock missing (not executable): exit 1, hotplug-status error, hotplug-error names flock', async () => {
    const flock = ['/usr/local/bin/flock', '/usr/bin/flock', '/bin/flock'].find((p) => existsSync(p));
    if (!flock) throw new Error('harness: flock(1) is not installed (util-linux)');
    const real = realpathSync(flock);
    await mustRun('mount', ['--bind', '/dev/null', real]);
    cleanups.push(() => mustRun('umount', [real]));
    const r = await hook(host, g, 'online');
    const problems: string[] = [];
    withinBudget(r, problems);
    // Nothing to wait for: a spawn that fails at once must not hold the hook up (a timer of the
    // failed spawn kept it alive for its whole lock budget once).
    if (r.ms > 5000) problems.push(`took ${r.ms} ms; a missing flock is known at once`);
    if (r.code !== 1) problems.push(`want exit 1: ${ended(r)}`);
    const hp = hotplug(host, g);
    if (hp.status !== 'error') problems.push(`hotplug-status ${JSON.stringify(hp.status)} (want "error")`);
    if (!/flock/.test(hp.error ?? '')) problems.push(`hotplug-error ${JSON.stringify(hp.error)} does not name flock`);
    const l = await linkOf(host.dom0, g.vif);
    if (l?.master !== undefined) problems.push(`${g.vif} attached to ${l.master}`);
    noProblems(withOutcome(problems, r), 'online without flock');
  });

  it('another process holds /var/run/xen-hotplug/iptables (flock ... sleep 60): the hook gives up within the budget, hotplug-status error, hotplug-error says it waited for the hotplug lock', async () => {
    mkdirSync(LOCK_DIR, { recursive: true });
    const holder: Tracked = spawnTracked('flock', [LOCK_FILE, 'sleep', '60'], { env: operatorEnv(), killAfterMs: 120_000 });
    cleanups.push(() => holder.kill());
    for (let i = 0; ; i++) {
      const probe = await run('flock', ['--nonblock', '--conflict-exit-code', '75', LOCK_FILE, 'true'], { env: operatorEnv() });
      if (probe.code === 75) break;
      if (i > 100) throw new Error(`harness: the holder never took ${LOCK_FILE}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const r = await hook(host, g, 'online');
    const problems: string[] = [];
    withinBudget(r, problems);
    if (r.code !== 1) problems.push(`want exit 1: ${ended(r)}`);
    const hp = hotplug(host, g);
    if (hp.status !== 'error') problems.push(`hotplug-status ${JSON.stringify(hp.status)} (want "error")`);
    if (!/hotplug lock/i.test(hp.error ?? '') || !/wait|within|gave up|timed out/i.test(hp.error ?? '')) problems.push(`hotplug-error ${JSON.stringify(hp.error)} does not say it waited for the hotplug lock`);
    const l = await linkOf(host.dom0, g.vif);
    if (l?.master !== undefined) problems.push(`${g.vif} attached to ${l.master}`);
    noProblems(withOutcome(problems, r), 'online while the hotplug lock is held');
  });

  it('/var/lib/xennet missing: the online creates it and succeeds (exit 0, connected, attached)', async () => {
    rmSync(STATE_DIR, { recursive: true, force: true });
    const r = await hook(host, g, 'online');
    const problems: string[] = [];
    withinBudget(r, problems);
    if (r.code !== 0) problems.push(`want exit 0: ${ended(r)}`);
    const hp = hotplug(host, g);
    if (hp.status !== 'connected') problems.push(`hotplug-status ${JSON.stringify(hp.status)}, hotplug-error ${JSON.stringify(hp.error)}`);
    if ((await linkOf(host.dom0, g.vif))?.master !== 'xenbr0') problems.push(`${g.vif} not attached to xenbr0`);
    if (!existsSync(STATE_DIR) || !statSync(STATE_DIR).isDirectory()) problems.push(`${STATE_DIR} was not created`);
    noProblems(withOutcome(problems, r), 'online without a state directory');
  });

  for (const [what, make] of [
    ['a regular file', async (): Promise<void> => {
      rmSync(STATE_DIR, { recursive: true, force: true });
      writeFileSync(STATE_DIR, 'not a directory\n');
    }],
    ['read-only (tmpfs remounted ro)', async (): Promise<void> => {
      rmSync(STATE_DIR, { recursive: true, force: true });
      mkdirSync(STATE_DIR);
      await mustRun('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'xnt-state', STATE_DIR]);
      await mustRun('mount', ['-o', 'remount,ro', STATE_DIR]);
    }],
  ] as const) {
    it(`/var/lib/xennet ${what}: the online fails cleanly (exit 1, hotplug-status error, nothing attached, no rules left)`, async () => {
      await make();
      cleanups.push(async () => {
        await run('umount', [STATE_DIR]);
        rmSync(STATE_DIR, { recursive: true, force: true });
      });
      const r = await hook(host, g, 'online');
      const problems: string[] = [];
      withinBudget(r, problems);
      if (r.code !== 1) problems.push(`want exit 1: ${ended(r)}`);
      const hp = hotplug(host, g);
      if (hp.status !== 'error') problems.push(`hotplug-status ${JSON.stringify(hp.status)} (want "error")`);
      const l = await linkOf(host.dom0, g.vif);
      if (l?.master !== undefined) problems.push(`${g.vif} attached to ${l.master}`);
      problems.push(...(await rulesMentioning(host, g.vif)).map((x) => `left behind: ${x}`));
      noProblems(withOutcome(problems, r), `online with ${STATE_DIR} ${what}`);
    });
  }
});
