/**
 * `xennet demo`: xennet's main job on a simulated Xen host, end to end, with nothing to set up.
 * Builds a LAN with a gateway, a dom0, an in-memory xenstored and three guests written into
 * xenstore the way libxl writes them, plus an example rule file. It then runs the real code
 * paths (the bridge takeover, `vif-xennet online` as libxl calls it, `status`, `plan`), shows
 * allowed traffic passing and a spoofing guest being blocked, and tears everything down (also
 * on Ctrl-C or failure). `--keep` leaves the host up for exploration; `xennet demo down`
 * removes it.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XennetError, reasonOf } from '../sys/errors.js';
import { run, start } from '../sys/exec.js';
import { deleteNetns, sweepNetns } from './netns.js';
import { SimHost, type KeptHost, type SimGuest } from './host.js';

export const DEMO_RULES = `# The demo's rule file (xennet.yaml): web01 serves HTTP only, db01 is isolated,
# mallory is not in the file and gets anti-spoofing from xenstore's mac and ip.
version: 1
defaults:
  inbound: accept
guests:
  web01:
    mac: "00:16:3e:00:00:01"
    ipv4: [192.168.0.101]
    ipv6: ["2001:db8::101"]
    inbound: drop
    allow_in:
      - { proto: tcp, ports: [80] }
      - { proto: icmp, icmp_types: [8] }
      - { proto: icmpv6, icmp_types: [128] }
  db01:
    mac: "00:16:3e:00:00:02"
    ipv4: [192.168.0.102]
    isolation: true
`;

/** Demo hosts are `xnd-<pid>-...` so test sweeps (`xnt-`) never remove a kept demo host. */
export const DEMO_PREFIX = 'xnd';
const statePath = (): string => join(tmpdir(), 'xennet-demo.json');
const probe = new URL('./probe-main.js', import.meta.url).pathname;

export interface DemoOptions {
  keep: boolean;
  color: boolean;
  out: (line: string) => void;
}

async function preflight(): Promise<void> {
  if (process.getuid?.() !== 0) throw new XennetError('usage', 'the demo needs root (it creates network namespaces)', { hint: 'sudo xennet demo', exitCode: 1 });
  for (const tool of ['ip', 'ping', 'iptables', 'ebtables', 'flock']) {
    const r = await run('sh', ['-c', `command -v ${tool}`]).catch(() => ({ code: 1 }));
    if (r.code !== 0) throw new XennetError('usage', `the demo needs ${tool}`, { hint: 'apt-get install iproute2 iputils-ping iptables ebtables util-linux', exitCode: 1 });
  }
  if (existsSync(statePath())) throw new XennetError('usage', `a kept demo host is still up (${statePath()})`, { hint: 'remove it with `xennet demo down`', exitCode: 1 });
}

export async function runDemo(options: DemoOptions): Promise<number> {
  await preflight();
  const c = (code: string, s: string): string => (options.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const say = options.out;
  const step = (t: string): void => say(`\n${c('1', `== ${t}`)}`);
  let failures = 0;
  const expect = async (what: string, want: boolean, check: () => Promise<boolean>): Promise<void> => {
    const got = await check();
    const ok = got === want;
    if (!ok) failures++;
    say(`  ${ok ? c('32', 'ok  ') : c('31', 'FAIL')} ${what}: ${got ? 'passes' : 'blocked'}${ok ? '' : ` (expected ${want ? 'to pass' : 'to be blocked'})`}`);
  };
  await sweepNetns(DEMO_PREFIX);
  const host = await SimHost.create({ prefix: DEMO_PREFIX });
  let kept = false;
  const teardown = async (): Promise<void> => {
    if (kept) return;
    for (const g of host.guests.values()) await host.runVifScript('vif-xennet', g, 'offline', 'libxl', { env: rulesEnv }).catch(() => undefined);
    await host.xennet(['bridge', 'stop', '--force']).catch(() => undefined);
    await host.destroy();
  };
  const rulesFile = join(host.dir, 'xennet.yaml');
  writeFileSync(rulesFile, DEMO_RULES);
  const rulesEnv = { XENNET_RULES: rulesFile };
  const onSignal = (): void => {
    say('\ninterrupted: tearing the demo host down');
    void teardown().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    step('A simulated Xen host in network namespaces');
    say(`  LAN ${host.lan.name} (gateway 192.168.0.1), dom0 ${host.dom0.name} (eth0 192.168.0.2), xenstored on ${host.xenstoreSocket}`);
    say(`  rule file ${rulesFile}:`);
    for (const l of DEMO_RULES.split('\n').filter((x) => x && !x.startsWith('#'))) say(`    ${l}`);

    step('network-bridge, the xennet way: xennet bridge start (in dom0)');
    const started = await host.xennet(['bridge', 'start']);
    say(started.stdout.trimEnd().replace(/^/gm, '  '));
    if (started.code !== 0) throw new XennetError('exec', `bridge start failed: ${started.stderr}`);

    step('Three guests boot; the toolstack runs vif-xennet online for each (as libxl does)');
    const guests: SimGuest[] = [];
    guests.push(await host.addGuest({ domid: 1, name: 'web01', mac: '00:16:3e:00:00:01', addresses: ['192.168.0.101/24', '2001:db8::101/64'] }));
    guests.push(await host.addGuest({ domid: 2, name: 'db01', mac: '00:16:3e:00:00:02', addresses: ['192.168.0.102/24'] }));
    guests.push(await host.addGuest({ domid: 3, name: 'mallory', mac: '00:16:3e:00:00:03', addresses: ['192.168.0.103/24'], xenstoreIp: '192.168.0.103' }));
    for (const g of guests) {
      const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env: rulesEnv });
      say(`  ${r.stderr.trim().split('\n').filter((l) => !/warning/.test(l)).join('\n  ')}`);
      if (r.code !== 0) throw new XennetError('exec', `vif-xennet online ${g.vif} failed`);
      say(`    hotplug-status = ${host.xenstored.read(`${g.backendPath}/hotplug-status`)}`);
    }

    step('xennet status');
    say((await host.xennet(['status'], rulesEnv)).stdout.trimEnd().replace(/^/gm, '  '));

    step('Allowed traffic passes, everything else is blocked');
    const [web, db, mallory] = guests as [SimGuest, SimGuest, SimGuest];
    const server = start('ip', ['netns', 'exec', web.ns.name, 'node', probe, 'listen', 'tcp', '80', '8080']);
    await new Promise<void>((resolve) => server.stdout?.once('data', () => resolve()));
    const tcp = async (port: number): Promise<boolean> => (await host.lan.exec('node', [probe, 'connect', 'tcp', '192.168.0.101', String(port)])).code === 0;
    try {
      await expect('web01 pings the gateway', true, () => web.ns.ping('192.168.0.1', { waitSeconds: 3 }));
      await expect('LAN opens TCP port 80 on web01 (allow_in)', true, () => tcp(80));
      await expect('LAN opens TCP port 8080 on web01 (inbound: drop)', false, () => tcp(8080));
      await expect('db01 reaches the gateway', true, () => db.ns.ping('192.168.0.1'));
      await expect('db01 pings web01 (db01 is isolated)', false, () => db.ns.ping('192.168.0.101', { waitSeconds: 1 }));
      await expect('mallory pings the gateway from its own address', true, () => mallory.ns.ping('192.168.0.1'));
      await mallory.ns.ip('addr', 'add', '192.168.0.101/32', 'dev', 'eth0');
      await expect('mallory pings the gateway with web01\'s address (IP spoofing)', false, () => mallory.ns.ping('192.168.0.1', { waitSeconds: 1, source: '192.168.0.101' }));
      await mallory.ns.ip('addr', 'del', '192.168.0.101/32', 'dev', 'eth0');
      await mallory.ns.ip('link', 'set', 'eth0', 'address', '00:16:3e:00:00:99');
      await expect('mallory pings the gateway with a forged MAC (MAC spoofing)', false, () => mallory.ns.ping('192.168.0.1', { waitSeconds: 1 }));
      await mallory.ns.ip('link', 'set', 'eth0', 'address', '00:16:3e:00:00:03');
    } finally {
      server.kill('SIGKILL');
    }

    step('xennet status: the drop counters show what was blocked');
    say((await host.xennet(['status'], rulesEnv)).stdout.split('\n').filter((l) => /^(VIF|vif)/.test(l)).join('\n').replace(/^/gm, '  '));

    step('xennet plan: the live rules match the rule file');
    const plan = await host.xennet(['plan'], rulesEnv);
    say(plan.stdout.trimEnd().split('\n').slice(-1)[0]!.replace(/^/, '  '));
    say(`  (exit ${plan.code}: 0 = nothing to do, 2 = changes pending)`);
    if (plan.code !== 0) failures++;

    if (options.keep) {
      const k = await host.handOver();
      kept = true;
      writeFileSync(statePath(), JSON.stringify(k, null, 2));
      step('The demo host stays up (--keep)');
      say(`  enter dom0:      ip netns exec ${host.dom0.name} bash`);
      say(`  enter a guest:   ip netns exec ${guests[0]!.ns.name} bash`);
      say(`  in dom0, xennet needs: export XENSTORED_PATH=${k.env['XENSTORED_PATH']} XENNET_STATE_DIR=${k.env['XENNET_STATE_DIR']} XENNET_RULES=${rulesFile} XENNET_HOTPLUG_LOCK_DIR=${k.env['XENNET_HOTPLUG_LOCK_DIR']}`);
      say('  remove it:       xennet demo down');
    } else {
      step('Tear down: vif-xennet offline for each guest, xennet bridge stop, namespaces deleted');
      await teardown();
      say('  done; nothing is left behind');
    }
  } catch (e) {
    say(c('31', `\ndemo failed: ${reasonOf(e)}`));
    await teardown().catch(() => undefined);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  say(failures === 0 ? c('32', '\nAll checks passed.') : c('31', `\n${failures} check(s) failed.`));
  return failures === 0 ? 0 : 1;
}

/** Removes a demo host left by `--keep` (and any demo namespaces of dead runs). */
export async function demoDown(): Promise<string> {
  const path = statePath();
  const swept = await sweepNetns(DEMO_PREFIX);
  if (!existsSync(path)) return swept.length > 0 ? `removed ${swept.length} leftover namespaces` : 'no demo host is up';
  const k = JSON.parse(readFileSync(path, 'utf8')) as KeptHost;
  try {
    process.kill(k.xenstoredPid, 'SIGTERM');
  } catch {
    /* already gone */
  }
  for (const n of [...k.namespaces].reverse()) await deleteNetns(n);
  rmSync(k.dir, { recursive: true, force: true });
  rmSync(path, { force: true });
  return `removed the demo host ${k.id} (${k.namespaces.length} namespaces)`;
}
