/**
 * The resident controller as installed: the package's /lib/systemd/system/xennet.service; its
 * ExecStart runs here (no systemd runs in the suite) with the operator's environment only (every
 * path at its default: /run/xennet, /etc/xen/xennet.yaml, /var/lib/xennet, /var/run/xen-hotplug,
 * the default xenstored socket) and with only the capabilities of the unit's
 * CapabilityBoundingSet and NoNewPrivileges (setpriv), and /etc/xen/scripts/vif-xennet hands the
 * toolstack's calls to it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { SimGuest, SimHost } from '../../src/sim/host.js';
import { DAEMON_UNIT_FILE as UNIT, guestSpec, hook, hotplug, installedHost, linkOf, operatorEnv, teardown, xennetBin } from './lib/world.js';
import { run } from '../../src/sys/exec.js';

/** The unit's ExecStart, run with its capability bounding set and no new privileges (what systemd does of those two). */
function sandboxedExecStart(unit: string): string[] {
  const exec = /^ExecStart=(.+)$/m.exec(unit)![1]!.split(' ');
  const caps = /^CapabilityBoundingSet=(.+)$/m.exec(unit)![1]!.split(' ').map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
  assert.match(unit, /^NoNewPrivileges=yes$/m);
  return ['setpriv', `--bounding-set=-all,${caps.join(',')}`, '--inh-caps=-all', '--no-new-privs', ...exec];
}

describe('system: the daemon from the installed unit, default paths', function () {
  this.timeout(120_000);
  let host: SimHost;
  let g: SimGuest;

  before(async () => {
    host = await installedHost();
  });

  after(async () => {
    await host?.stopDaemon('SIGTERM').catch(() => null);
    await teardown(host);
  });

  it('the package installed the unit: Type=simple, Restart=on-failure, ExecStart is the installed xennet daemon', () => {
    const unit = readFileSync(UNIT, 'utf8');
    assert.match(unit, /^Type=simple$/m);
    assert.match(unit, /^Restart=on-failure$/m);
    const exec = /^ExecStart=(.+)$/m.exec(unit)?.[1] ?? '';
    assert.match(exec, / daemon$/);
    for (const word of exec.split(' ').slice(0, -1).filter((w) => !w.startsWith('--'))) assert.ok(existsSync(word), `${word} exists`);
    assert.match(exec, / --max-semi-space-size=2 /, 'the daemon\'s memory flags');
  });

  it('the unit\'s command, with only the unit\'s capabilities, starts the daemon on /run/xennet, root-only', async () => {
    await host.startDaemon({}, sandboxedExecStart(readFileSync(UNIT, 'utf8')));
    const status = readFileSync(`/proc/${readFileSync('/run/xennet/daemon.pid', 'utf8').trim()}/status`, 'utf8');
    assert.equal(/^CapBnd:\s+(\S+)$/m.exec(status)?.[1], '0000000000083000', 'the daemon runs with CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_PTRACE only');
    assert.equal(/^NoNewPrivs:\s+(\d)$/m.exec(status)?.[1], '1');
    assert.equal(host.runDir, '/run/xennet');
    assert.equal(statSync('/run/xennet').mode & 0o777, 0o700);
    assert.equal(statSync('/run/xennet/daemon.sock').mode & 0o777, 0o600);
  });

  it('a guest comes online through the installed vif-xennet and the daemon; status (with the operator\'s environment) shows the daemon', async () => {
    g = await host.addGuest(guestSpec(21));
    const r = await hook(host, g, 'online');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(hotplug(host, g).status, 'connected');
    assert.equal((await linkOf(host.dom0, g.vif))?.master, 'xenbr0');
    assert.ok(await g.ns.ping('192.168.0.1'));
    const st = await run('ip', ['netns', 'exec', host.dom0.name, xennetBin(), 'status', '--json'], { env: operatorEnv() });
    const s = JSON.parse(st.stdout) as { ok: boolean; problems: string[]; daemon: { running: boolean; hookCalls: number } };
    assert.equal(s.daemon.running, true);
    assert.equal(s.daemon.hookCalls, 1, `the daemon served the hook (hook stderr: ${r.stderr.trim()})`);
    assert.deepEqual(s.problems, []);
  });

  it('metrics: with prometheus-node-exporter\'s textfile directory, the daemon writes xennet.prom there within 15 s (promtool check metrics passes), and `xennet metrics` prints the same figures', async () => {
    const dir = '/var/lib/prometheus/node-exporter';
    const file = `${dir}/xennet.prom`;
    assert.equal(existsSync(file), false);
    // (/var/lib is the suite's overlay.) Made after the daemon started: its next write finds it.
    mkdirSync(dir, { recursive: true });
    try {
      for (let i = 0; i < 250 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(existsSync(file), `${file} written within 25 s`);
      const text = readFileSync(file, 'utf8');
      const check = await run('promtool', ['check', 'metrics'], { input: text });
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(text, /^xennet_daemon_up 1$/m);
      assert.match(text, new RegExp(`^xennet_guest_firewall_in_sync\\{domain="[^"]*",interface="${g.vif.replace('.', '\\.')}"\\} 1$`, 'm'));
      assert.match(text, /^xennet_hook_duration_seconds_count\{operation="online",path="daemon"\} [1-9]/m);
      const cli = await run('ip', ['netns', 'exec', host.dom0.name, xennetBin(), 'metrics'], { env: operatorEnv() });
      assert.equal(cli.code, 0, cli.stderr);
      const again = await run('promtool', ['check', 'metrics'], { input: `${cli.stdout}` });
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.match(cli.stdout, /^xennet_daemon_up 1$/m);
      assert.match(cli.stdout, /^xennet_hook_duration_seconds_count\{operation="online",path="daemon"\} [1-9]/m);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  });

  it('SIGTERM: exit 0, the socket goes (and its metrics file: no stale figures), and the next hook runs in-process', async () => {
    assert.equal(await host.stopDaemon('SIGTERM'), 0);
    assert.equal(existsSync('/run/xennet/daemon.sock'), false);
    assert.equal(existsSync('/var/lib/prometheus/node-exporter/xennet.prom'), false, 'the metrics file goes with a clean stop');
    rmSync('/var/lib/prometheus/node-exporter', { recursive: true, force: true });
    const r = await hook(host, g, 'offline');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await linkOf(host.dom0, g.vif))?.master, undefined);
  });

  it('`xennet metrics` without the daemon: the host read now, the hook calls from the journal (daemon and in-process), promtool check metrics passes', async () => {
    const cli = await run('ip', ['netns', 'exec', host.dom0.name, xennetBin(), 'metrics'], { env: operatorEnv() });
    assert.equal(cli.code, 0, cli.stderr);
    const check = await run('promtool', ['check', 'metrics'], { input: cli.stdout });
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(cli.stdout, /^xennet_daemon_up 0$/m);
    assert.match(cli.stdout, /^xennet_hook_duration_seconds_count\{operation="online",path="daemon"\} [1-9]/m);
    assert.match(cli.stdout, /^xennet_hook_duration_seconds_count\{operation="offline",path="in-process"\} [1-9]/m);
  });

  it('with no daemon running, the installed vif-xennet starts the installed daemon (as the unit runs it) and hands it the call', async () => {
    host.setAutostart(true);
    const g2 = await host.addGuest(guestSpec(22));
    const r = await hook(host, g2, 'online');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(hotplug(host, g2).status, 'connected');
    const pid = readFileSync('/run/xennet/daemon.pid', 'utf8').trim();
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    const exec = /^ExecStart=(.+)$/m.exec(readFileSync(UNIT, 'utf8'))![1]!.split(' ');
    assert.deepEqual(argv.filter((a) => a !== '--'), exec, 'the unit\'s command');
    const st = await run('ip', ['netns', 'exec', host.dom0.name, xennetBin(), 'status', '--json'], { env: operatorEnv() });
    const s = JSON.parse(st.stdout) as { daemon: { running: boolean; pid: number; hookCalls: number } };
    assert.equal(s.daemon.pid, Number(pid));
    assert.equal(s.daemon.hookCalls, 1, `the daemon it started served the hook (hook stderr: ${r.stderr.trim()})`);
    assert.ok(await g2.ns.ping('192.168.0.1'));
  });

  it('under systemd, the hook starts the unit; a masked unit starts nothing and the call runs in-process at once', async () => {
    // The daemon the previous test's hook started goes first.
    const started = readFileSync('/run/xennet/daemon.pid', 'utf8').trim();
    process.kill(Number(started), 'SIGTERM');
    for (let i = 0; i < 100 && existsSync(`/proc/${started}`); i++) await new Promise((r) => setTimeout(r, 50));
    // systemd as the hook sees it: /run/systemd/system, and a systemctl that refuses the masked unit.
    const fake = '/usr/local/sbin/systemctl';
    mkdirSync('/run/systemd/system', { recursive: true });
    writeFileSync(fake, '#!/bin/sh\necho "$*" >> /run/xnt-systemctl.calls\necho "Failed to start xennet.service: Unit xennet.service is masked." >&2\nexit 1\n', { mode: 0o755 });
    try {
      const g3 = await host.addGuest(guestSpec(23));
      const t0 = Date.now();
      const r = await hook(host, g3, 'online');
      assert.equal(r.code, 0, r.stderr);
      assert.ok(Date.now() - t0 < 8000, `${Date.now() - t0} ms: a refused start is not waited for`);
      assert.match(r.stderr, /could not start the xennet daemon \(its log: journalctl -u xennet\); running this call in-process/);
      assert.equal(readFileSync('/run/xnt-systemctl.calls', 'utf8'), 'start --quiet xennet.service\n', 'systemctl start, not a daemon of its own');
      assert.equal(hotplug(host, g3).status, 'connected');
    } finally {
      rmSync(fake, { force: true });
      rmSync('/run/systemd', { recursive: true, force: true });
      rmSync('/run/xnt-systemctl.calls', { force: true });
    }
  });
});
