/**
 * `npm run soak -- --minutes N [--guests 200] [--seed S]`: xennet on a simulated Xen host under
 * faults, checking its invariants every second (issue 19). Not part of CI: it runs for minutes.
 *
 * Guests come and go at random (their hooks through the daemon, or in-process while it is stopped
 * or switched off), and at random moments: the daemon is SIGKILLed, SIGSTOPped for a while, or
 * absent (killed with `autostart.off` set, so hooks run in-process); xenstored restarts; the rule
 * file is rewritten, made invalid, deleted; another program runs `nft flush ruleset` or flushes
 * FORWARD; a hook is killed part way (as libxl kills one at its timeout), after which the
 * toolstack's offline follows; the state directory's filesystem (a 48 MiB tmpfs) is full for a
 * while. Two probe guests and a LAN host attack throughout. Checked:
 *
 * - every second: every guest port on the bridge has its firewall in the kernel; a probe guest's
 *   spoofed source is dropped and its own passes; a LAN frame with a probe's MAC does not move
 *   its forwarding entry (no check in the 3 s after a flush: the repair's window; none while
 *   the daemon is stopped or absent with a flush: nobody repairs then);
 * - at every hook's exit: exit 0 means `hotplug-status` connected; a failed hook wrote
 *   `hotplug-error`;
 * - every 60 s, faults stop and are healed (daemon continued, disk freed, the rule file valid):
 *   within 10 s `plan` has nothing to change and no rule names a departed guest;
 * - the daemon's RSS stays under 150 MiB, and its file descriptors do not grow.
 *
 * Breaches are recorded with their time; the JSON goes to bench/results/soak-<time>.json. Runs in
 * a private mount namespace (the npm script's `unshare`): the tmpfs is mounted there only.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SimHost, type SimGuest } from '../src/sim/host.js';
import { sweepNetns } from '../src/sim/netns.js';
import { run } from '../src/sys/exec.js';
import { readPidFile } from '../src/sys/process.js';
import { arrives, framesPy, hex } from '../test/netns/lib/frames.js';
import { vifBackendNodes } from './lib/world.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} wants a positive number`);
  return v;
};
const minutes = opt('minutes', 30);
const guestCount = opt('guests', 200);
let seed = opt('seed', Date.now() % 1_000_000);
const seedUsed = seed;
/** mulberry32: a seeded generator, so a run's schedule can be repeated. */
const random = (): number => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
/** A signal to a process that may be gone already; whether it was delivered. */
const signal = (pid: number, sig: NodeJS.Signals): boolean => {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
};
/** Whether a process runs (a zombie nobody reaped does not). */
const running = (pid: number): boolean => {
  try {
    return !/^[^)]*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const t0 = performance.now();
const at = (): number => Math.round((performance.now() - t0) / 100) / 10;
const breaches: { at: number; invariant: string; detail: string }[] = [];
const faults: Record<string, number> = {};
const checks: Record<string, number> = {};
const hooks = { online: 0, offline: 0, ok: 0, failed: 0, killed: 0 };
/** Why hooks failed (their last error line, names and numbers elided), with counts. */
const failures: Record<string, number> = {};
const say = (s: string): void => void process.stdout.write(`[${at().toFixed(1).padStart(7)} s] ${s}\n`);
/** The faults of the last 10 s, for a breach's context. */
const recentFaults: { at: number; name: string }[] = [];
const breach = (invariant: string, detail: string): void => {
  const recent = recentFaults.filter((f) => f.at > at() - 10).map((f) => `${f.name} at ${f.at.toFixed(1)}`);
  detail = `${detail} [faults in the 10 s before: ${recent.join(', ') || 'none'}]`;
  breaches.push({ at: at(), invariant, detail });
  say(`BREACH ${invariant}: ${detail}`);
};
/** Each guest interface's last hooks (start, end, result, the last lines they printed), for a breach's context. */
const hookHistory = new Map<string, string[]>();
const remember = (vif: string, line: string): void => {
  const h = hookHistory.get(vif) ?? [];
  h.push(line);
  if (h.length > 8) h.shift();
  hookHistory.set(vif, h);
};
const count = (what: Record<string, number>, k: string): void => {
  what[k] = (what[k] ?? 0) + 1;
};

let daemonsSeen: Map<number, { since: number; base?: number; peakRss: number; lastFds?: number; samples?: number }> = new Map();
const RULES_A = 'version: 1\nguests:\n  probe1:\n    inbound: drop\n';
const RULES_A2 = '# the same policy, written again\nversion: 1\nguests:\n  probe1:\n    inbound: drop\n';
const RULES_BAD = 'version: 1\nguests: [\n';

async function main(): Promise<void> {
  if (readFileSync('/proc/self/mountinfo', 'utf8') === readFileSync('/proc/1/mountinfo', 'utf8')) throw new Error('run it in a private mount namespace: npm run soak (unshare --mount --propagation private)');
  await sweepNetns('xns');
  const host = await SimHost.create({ prefix: 'xns' });
  const state = join(host.dir, 'state');
  mkdirSync(state, { recursive: true });
  const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0755', 'xns-state', state]);
  if (mounted.code !== 0) throw new Error(`mount tmpfs: ${mounted.stderr}`);
  const rules = join(host.dir, 'xennet.yaml');
  writeFileSync(rules, RULES_A);
  const env = { XENNET_RULES: rules };
  let stopping = false;
  try {
    await host.takeover();
    const sink = await host.addNamespace('sink');
    await sink.exec('sysctl', ['-qw', 'net.ipv6.conf.default.disable_ipv6=1']);

    // The probes: full guests in their own namespaces, never churned, attacked and attacking.
    const probes: SimGuest[] = [];
    for (const d of [1, 2]) probes.push(await host.addGuest({ domid: d, name: `probe${d}`, mac: `00:16:3e:00:00:0${d}`, addresses: [`192.168.0.${100 + d}/24`], xenstoreIp: `192.168.0.${100 + d}` }));
    for (const g of probes) {
      const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
      if (r.code !== 0) throw new Error(`probe online: ${r.stderr}`);
    }
    const gw = (await host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;

    // The churned guests: veth peers in one sink namespace, as in the storm bench.
    const domids = Array.from({ length: guestCount }, (_, i) => 300 + i);
    const up = new Set<number>();
    const busy = new Set<number>();
    const departed = new Set<string>();
    const macOf = (d: number): string => `00:16:3e:02:${(d >> 8).toString(16).padStart(2, '0')}:${(d & 255).toString(16).padStart(2, '0')}`;
    const guestOf = (d: number): SimGuest => ({ domid: d, name: `soak${d}`, mac: macOf(d), addresses: [], ns: sink, vif: `vif${d}.0`, backendPath: `/local/domain/0/backend/vif/${d}/0` });
    let killNext = false;

    /** A hook as libxl runs it: 40 s, or killed part way when a fault asks; checked at exit. */
    const hook = async (g: SimGuest, cmd: 'online' | 'offline'): Promise<'ok' | 'failed' | 'killed'> => {
      hooks[cmd]++;
      const kill = killNext && cmd === 'online';
      if (kill) killNext = false;
      const began = at();
      const r = await host.runVifScript('vif-xennet', g, cmd, 'libxl', { env, timeoutMs: kill ? 20 + Math.floor(random() * 180) : 40_000 });
      remember(g.vif!, `${cmd} ${began.toFixed(1)}-${at().toFixed(1)} s: ${r.timedOut || r.signal ? 'killed' : `exit ${r.code}`}; ${r.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 400) || 'no output'}`);
      const status = host.xenstored.read(`${g.backendPath}/hotplug-status`);
      const error = host.xenstored.read(`${g.backendPath}/hotplug-error`);
      if (r.code === 0) {
        hooks.ok++;
        if (cmd === 'online' && status !== 'connected') breach('hook exit 0 means connected', `${g.vif} online exited 0 with hotplug-status ${JSON.stringify(status)}`);
        return 'ok';
      }
      if (r.signal || r.timedOut) {
        hooks.killed++;
        if (!kill) breach('a hook finishes within libxl\'s 40 s', `${g.vif} ${cmd} was killed at 40 s`);
        return 'killed';
      }
      hooks.failed++;
      const why = r.stderr.trim().split('\n').filter((l) => /error/.test(l)).slice(-1)[0]?.replace(/vif\d+\.\d+|soak\d+|\d+(\.\d+)? ?(ms|s)\b|pid \d+|\/tmp\/\S+/g, '*').slice(0, 160) ?? `exit ${r.code}`;
      count(failures, `${cmd}: ${why}`);
      // One that could not reach xenstore could not write there either (it says so on stderr).
      if (cmd === 'online' && !error && !/could not write hotplug-status=error/.test(r.stderr)) breach('a failed hook writes hotplug-error', `${g.vif} ${cmd} exited ${r.code} without hotplug-error: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
      return 'failed';
    };

    const bringUp = async (d: number): Promise<void> => {
      const g = guestOf(d);
      await host.dom0.batch([`link add vif${d}.0 type veth peer name s${d} netns ${sink.name}`, `link set vif${d}.0 address fe:ff:ff:ff:ff:ff`]);
      await sink.batch([`link set s${d} address ${g.mac} up`]);
      host.xenstored.writeAll(vifBackendNodes(d, g.name, g.mac, `10.9.${d >> 8}.${d & 255}`));
      departed.delete(g.vif);
      const r = await hook(g, 'online');
      if (r === 'ok') return void up.add(d);
      // libxl after a failed or killed online: the offline hook, then the device goes.
      await tearDown(d);
    };
    const tearDown = async (d: number): Promise<void> => {
      const g = guestOf(d);
      await hook(g, 'offline');
      host.xenstored.rm(g.backendPath);
      host.xenstored.rm(`/local/domain/${d}`);
      await host.dom0.ip('link', 'del', g.vif).catch(() => undefined);
      up.delete(d);
      departed.add(g.vif);
    };

    // Churn: a few hooks in flight at a time, about three quarters of the guests up.
    let churnPaused = false;
    const churn = async (): Promise<void> => {
      while (!stopping) {
        await sleep(50 + random() * 250);
        if (churnPaused || busy.size >= 6) continue;
        const wantUp = up.size < guestCount * 0.75 ? random() < 0.8 : random() < 0.3;
        const candidates = domids.filter((d) => !busy.has(d) && (wantUp ? !up.has(d) : up.has(d)));
        if (candidates.length === 0) continue;
        const d = pick(candidates);
        busy.add(d);
        void (wantUp ? bringUp(d) : tearDown(d))
          .catch((e: unknown) => say(`churn ${d}: ${e instanceof Error ? e.message : String(e)}`))
          .finally(() => busy.delete(d));
      }
    };

    // Faults.
    const daemonPid = (): number | undefined => readPidFile(join(host.runDir, 'daemon.pid'));
    /** Daemons the soak killed; any other that ends, ended on its own. */
    const killedByUs = new Set<number>();
    const diedOnItsOwn = new Set<number>();
    let stoppedDaemon: number | undefined;
    let daemonAbsent = false;
    let diskFull = false;
    let lastFlush = -1e9;
    let faultsPaused = false;
    const fill = join(state, 'ballast');
    const heal = async (): Promise<void> => {
      if (stoppedDaemon !== undefined) {
        try {
          process.kill(stoppedDaemon, 'SIGCONT');
        } catch {
          /* gone */
        }
        stoppedDaemon = undefined;
      }
      rmSync(fill, { force: true });
      diskFull = false;
      writeFileSync(rules, RULES_A);
      host.setAutostart(true);
      daemonAbsent = false;
      // The host as packaged: a daemon runs (systemd's unit starts it again). Without one, nobody
      // cleans up after an offline that failed while there was none (a full disk) until the next
      // hook starts one; the quiet check has no hooks.
      const pid = daemonPid();
      if (pid === undefined || !running(pid)) await host.startDaemon(env).catch((e: unknown) => say(`heal: no daemon: ${e instanceof Error ? e.message : String(e)}`));
    };
    const injectors: Record<string, () => Promise<void>> = {
      'daemon SIGKILL': async () => {
        const pid = daemonPid();
        if (pid !== undefined && pid !== stoppedDaemon) {
          killedByUs.add(pid);
          signal(pid, 'SIGKILL');
        }
      },
      'daemon SIGSTOP': async () => {
        const pid = daemonPid();
        if (pid === undefined || stoppedDaemon !== undefined || !signal(pid, 'SIGSTOP')) return;
        stoppedDaemon = pid;
        await sleep(2000 + random() * 6000);
        if (stoppedDaemon === pid) {
          stoppedDaemon = undefined;
          signal(pid, 'SIGCONT');
        }
      },
      'daemon absent (autostart.off, killed)': async () => {
        host.setAutostart(false);
        daemonAbsent = true;
        const pid = daemonPid();
        if (pid !== undefined) {
          killedByUs.add(pid);
          signal(pid, 'SIGKILL');
        }
        await sleep(8000 + random() * 8000);
        host.setAutostart(true);
        daemonAbsent = false;
      },
      'xenstored restart': async () => {
        await host.xenstored.close();
        await sleep(100 + random() * 400);
        await host.xenstored.listen();
      },
      'rule file rewritten': async () => writeFileSync(rules, RULES_A2),
      'rule file invalid': async () => writeFileSync(rules, RULES_BAD),
      'rule file deleted': async () => rmSync(rules, { force: true }),
      'rule file valid again': async () => writeFileSync(rules, RULES_A),
      'nft flush ruleset': async () => {
        if (stoppedDaemon !== undefined || daemonAbsent) return;
        lastFlush = performance.now();
        await host.dom0.exec('nft', ['flush', 'ruleset']);
      },
      'iptables -F FORWARD': async () => {
        if (stoppedDaemon !== undefined || daemonAbsent) return;
        lastFlush = performance.now();
        await host.dom0.exec('iptables', ['-w', '-F', 'FORWARD']);
      },
      'hook killed part way': async () => {
        killNext = true;
      },
      'state filesystem full': async () => {
        if (diskFull) return;
        diskFull = true;
        await run('dd', ['if=/dev/zero', `of=${fill}`, 'bs=1M', 'count=64'], { timeoutMs: 30_000 });
        await sleep(4000 + random() * 8000);
        rmSync(fill, { force: true });
        diskFull = false;
      },
    };
    const faultLoop = async (): Promise<void> => {
      while (!stopping) {
        await sleep(2000 + random() * 5000);
        if (faultsPaused || stopping) continue;
        const name = pick(Object.keys(injectors));
        count(faults, name);
        recentFaults.push({ at: at(), name });
        if (recentFaults.length > 50) recentFaults.shift();
        say(`fault: ${name}`);
        void injectors[name]!().catch((e: unknown) => say(`fault ${name}: ${e instanceof Error ? e.message : String(e)}`));
      }
    };

    /** What is known about a guest port found without rules: its hooks, the index, the link, the daemon's log. */
    const forensics = async (vif: string): Promise<void> => {
      const lines: string[] = [`forensics of ${vif}:`];
      for (const h of hookHistory.get(vif) ?? []) lines.push(`  hook ${h}`);
      try {
        const index = JSON.parse(readFileSync(join(state, 'firewall', 'index.json'), 'utf8')) as { vifs?: Record<string, unknown> };
        lines.push(`  index entry: ${JSON.stringify(index.vifs?.[vif] ?? null)}`);
      } catch (e) {
        lines.push(`  index: ${e instanceof Error ? e.message : String(e)}`);
      }
      try {
        lines.push(`  pending: ${readdirSync(join(state, 'firewall', 'pending')).join(' ') || 'none'}`);
      } catch {
        lines.push('  pending: no directory');
      }
      const d = Number(vif.replace(/^vif(\d+)\..*$/, '$1'));
      lines.push(`  backend in xenstore: ${host.xenstored.read(`/local/domain/0/backend/vif/${d}/0`) !== undefined ? 'present' : 'gone'}; churn: ${up.has(d) ? 'up' : busy.has(d) ? 'busy' : 'down'}`);
      const link = await host.dom0.exec('ip', ['-o', '-d', 'link', 'show', vif]);
      lines.push(`  link: ${link.stdout.replace(/\s+/g, ' ').slice(0, 300)}`);
      await sleep(300);
      const again = (await host.dom0.exec('nft', ['list', 'table', 'bridge', 'xennet'])).stdout.includes(`"${vif}"`);
      lines.push(`  rules 0.3 s later: ${again ? 'present' : 'still missing'}`);
      try {
        const log = [...readFileSync(join(host.runDir, 'daemon.log'), 'utf8').split('\n'), ...host.daemonLog];
        const d = vif.replace(/^vif(\d+)\..*$/, '$1');
        const mine = log.filter((l) => l.includes(vif) || l.includes(`domain ${d} `) || /repaired|drift|lock helper/.test(l)).slice(-12);
        for (const l of mine) lines.push(`  daemon.log: ${l.slice(0, 300)}`);
      } catch {
        lines.push('  daemon.log: none');
      }
      for (const l of lines) say(l);
      const last = breaches[breaches.length - 1];
      if (last) last.detail += `\n${lines.join('\n')}`;
    };

    // The per-second checks.
    const portOf = async (mac: string): Promise<string | undefined> =>
      (JSON.parse((await host.dom0.exec('bridge', ['-j', 'fdb', 'show', 'br', 'xenbr0'])).stdout || '[]') as { mac: string; ifname: string }[]).find((e) => e.mac === mac)?.ifname;
    /** Each daemon's descriptors once it is 30 s old (start-up opens what it keeps). */
    const daemonSeen = new Map<number, { since: number; base?: number; peakRss: number; over: boolean; lastFds?: number; samples?: number }>();
    daemonsSeen = daemonSeen;
    const perSecond = async (): Promise<void> => {
      let n = 0;
      while (!stopping) {
        const started = performance.now();
        n++;
        // Resources of the daemon that runs now; one that ended without being killed is a breach.
        const pid = daemonPid();
        for (const known of daemonsSeen.keys()) {
          if (killedByUs.has(known) || diedOnItsOwn.has(known) || running(known)) continue;
          diedOnItsOwn.add(known);
          breach('the daemon does not end on its own', `pid ${known} is gone and the soak did not kill it`);
        }
        if (pid !== undefined && running(pid)) {
          try {
            const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
            const fds = readdirSync(`/proc/${pid}/fd`).length;
            count(checks, 'daemon resources');
            const seen = daemonSeen.get(pid) ?? { since: performance.now(), peakRss: 0, over: false };
            daemonSeen.set(pid, seen);
            seen.peakRss = Math.max(seen.peakRss, rss);
            seen.samples = (seen.samples ?? 0) + 1;
            seen.lastFds = fds;
            // Once per excursion above the line (its peak is in the summary).
            if (rss > 150 && !seen.over) breach('daemon RSS under 150 MiB', `pid ${pid}: ${rss.toFixed(0)} MiB`);
            seen.over = rss > 150;
            if (seen.base === undefined && performance.now() - seen.since > 30_000) seen.base = fds;
            else if (seen.base !== undefined && fds > seen.base + 32) {
              breach('daemon file descriptors do not grow', `pid ${pid}: ${fds} open, ${seen.base} at 30 s`);
              seen.base = fds;
            }
          } catch {
            /* it went between the reads */
          }
        }
        // A flush is repaired within a second or so by a running daemon; one stopped or absent
        // right after it repairs nothing until it runs again.
        const inRepairWindow = (): boolean => {
          const sinceFlush = performance.now() - lastFlush;
          return sinceFlush < 3000 || ((stoppedDaemon !== undefined || daemonAbsent) && sinceFlush < 30_000);
        };
        if (!inRepairWindow()) {
          // Every attached guest port has its firewall.
          // Ports on the bridge both before and after the table is read (a guest that leaves in
          // between is detached first, then its rules go; one that arrives, the other way round).
          // The same port is the same link (its ifindex): a guest that left and came back under
          // the same name while the table was read is two ports, neither of them there throughout.
          const guestPorts = async (): Promise<string[]> => (await host.dom0.ipJson<{ ifname: string; ifindex: number }[]>('link', 'show', 'master', 'xenbr0')).filter((l) => /^vif[1-9]\d*\.\d+$/.test(l.ifname)).map((l) => `${l.ifname}#${l.ifindex}`); // not vif0.0, dom0's own
          const before = await guestPorts();
          const table = (await host.dom0.exec('nft', ['list', 'table', 'bridge', 'xennet'])).stdout;
          const after = new Set(await guestPorts());
          const bare = before.filter((p) => after.has(p) && !table.includes(`"${p.split('#')[0]!}"`)).map((p) => p.split('#')[0]!);
          count(checks, 'attached ports firewalled');
          if (bare.length > 0 && !inRepairWindow()) {
            breach('every attached port has its firewall', `${bare.join(' ')} on the bridge without rules`);
            for (const p of bare) await forensics(p);
          }
          // A probe's spoofed source is dropped, its own passes; the LAN cannot take its entry.
          if (n % 2 === 0) {
            const g = pick(probes);
            const m = `soak-${n}`;
            count(checks, 'probe traffic');
            const spoof = await arrives(g.ns, host.lan, 'lan0', hex(`${m}-spoof`), 'udp4', [g.mac, gw, '192.168.0.250', '192.168.0.1', '4000', '4001', `${m}-spoof`]);
            if (spoof && !inRepairWindow()) breach('a probe\'s spoofed source is dropped', `${g.vif} sent from 192.168.0.250 and it arrived`);
            const own = await arrives(g.ns, host.lan, 'lan0', hex(`${m}-own`), 'udp4', [g.mac, gw, g.xenstoreIp!, '192.168.0.1', '4000', '4001', `${m}-own`]);
            if (!own && !inRepairWindow()) breach('a probe\'s own traffic passes', `${g.vif} sent from its own address and it did not arrive`);
            await host.lan.exec('python3', [framesPy, 'send', 'lan0', 'ether', g.mac, '88b5', `${m}-takeover`]);
            const port = await portOf(g.mac);
            if (port !== undefined && port !== g.vif && !inRepairWindow()) breach('the LAN cannot take a guest\'s forwarding entry', `${g.mac} now on ${port}`);
          }
        }
        await sleep(Math.max(0, 1000 - (performance.now() - started)));
      }
    };

    /** Faults stop and are healed; within 10 s plan is empty and no departed guest has rules. */
    const quietCheck = async (): Promise<void> => {
      faultsPaused = true;
      churnPaused = true;
      for (let i = 0; i < 600 && busy.size > 0; i++) await sleep(100);
      await heal();
      const healedAt = performance.now();
      count(checks, 'converged within 10 s');
      let last = '';
      for (;;) {
        const plan = await host.xennet(['plan'], env);
        const table = (await host.dom0.exec('nft', ['list', 'table', 'bridge', 'xennet'])).stdout + (await host.dom0.exec('iptables-save', [])).stdout;
        const stale = [...departed].filter((v) => table.includes(`"${v}"`) || table.includes(`-${v} `) || table.includes(`-${v}\n`));
        last = `plan exit ${plan.code}${plan.code === 0 ? ', nothing to change' : `: ${(plan.stdout + plan.stderr).split('\n').filter((l) => /^\s*[-+~!]|error|drift|change/i.test(l)).slice(0, 12).join(' | ').slice(0, 1200)}`}; departed guests with rules: ${stale.slice(0, 5).join(' ') || 'none'}`;
        if (plan.code === 0 && stale.length === 0) break;
        if (performance.now() - healedAt > 10_000) {
          breach('within 10 s of the last fault, plan is empty and no departed guest has rules', last);
          for (const v of stale.slice(0, 3)) await forensics(v);
          const st = await host.xennet(['status', '--json'], env);
          try {
            const d = (JSON.parse(st.stdout) as { daemon?: { running: boolean; pid?: number; backends?: unknown; lastError?: unknown } }).daemon;
            say(`  daemon then: ${JSON.stringify(d ? { running: d.running, pid: d.pid, backends: d.backends, lastError: d.lastError } : null)}`);
          } catch {
            say(`  status: ${st.stderr.slice(0, 300)}`);
          }
          break;
        }
        await sleep(500);
      }
      say(`quiet check: ${up.size} guests up, ${departed.size} departed; ${last}`);
      faultsPaused = false;
      churnPaused = false;
    };

    say(`soak: ${minutes} min, ${guestCount} guests, seed ${seedUsed}`);
    const loops = [churn(), faultLoop(), perSecond()];
    const end = performance.now() + minutes * 60_000;
    while (performance.now() < end) {
      await sleep(Math.min(60_000, end - performance.now()));
      await quietCheck();
    }
    stopping = true;
    await Promise.all(loops);
  } finally {
    stopping = true;
    await run('umount', ['-l', state]);
    await host.destroy();
  }
  const daemons = [...daemonsSeen].map(([pid, d]) => ({ pid, secondsSampled: d.samples ?? 0, peakRssMiB: Math.round(d.peakRss), fdsAt30s: d.base ?? null, fdsLast: d.lastFds ?? null }));
  const result = { minutes, guests: guestCount, seed: seedUsed, faults, checks, hooks, failures, daemons, breaches };
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  say(`faults injected: ${Object.entries(faults).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  say(`checks: ${Object.entries(checks).map(([k, v]) => `${k} ${v}`).join(', ')}; hooks: ${JSON.stringify(hooks)}`);
  for (const [why, n] of Object.entries(failures)) say(`failed hooks: ${n} x ${why}`);
  const peak = Math.max(0, ...daemons.map((d) => d.peakRssMiB));
  say(`daemons: ${daemons.length} (started by hooks after each kill); peak RSS ${peak} MiB; the longest-lived one: ${JSON.stringify(daemons.sort((a, b) => b.secondsSampled - a.secondsSampled)[0] ?? null)}`);
  say(`${breaches.length} breaches; results: ${file}`);
  process.exitCode = breaches.length === 0 ? 0 : 1;
}

void main().catch((e: unknown) => {
  process.stderr.write(`soak: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(2);
});
