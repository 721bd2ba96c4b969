/**
 * xennet vs Xen's scripts on the simulated host (root). Not a test: prints tables and writes
 * bench/results/<time>.json.
 *
 *   npm run bench                 full run (about 50 minutes on a slow 2-core machine)
 *   npm run bench -- --smoke      small sizes, a few minutes
 *   npm run bench -- --only hook,storm,daemon,apply,forward,guard,check,nft,learning,dropflood
 *
 * Environment: XNT_BENCH_SIZES (background guests, default 0,100,1000), XNT_BENCH_VARIANTS
 * (xen,xennet,xennet-inproc[,xennet-before]), XNT_BENCH_CYCLES (daemon RSS marks, default
 * 1000,10000), XNT_BENCH_LOOPS (concurrent cycle loops, 8), XNT_BENCH_BEFORE (an older build's
 * hooks-bin/vif-xennet, run as the variant xennet-before).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { run, start } from '../src/sys/exec.js';
import { xennetCli, type SimGuest } from '../src/sim/host.js';
import type { SimNetns } from '../src/sim/netns.js';
import { sweepNetns } from '../src/sim/netns.js';
import { buildWorld, destroyWorld, packagedCli, timedXennet, vifBackendNodes, type Tool, type World } from './lib/world.js';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const onlyArg = args.find((a) => a.startsWith('--only='))?.slice(7) ?? (args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined);
const only = new Set((onlyArg ?? 'hook,storm,daemon,apply,forward,guard,check,nft,learning,dropflood').split(','));

const sizes = (process.env['XNT_BENCH_SIZES'] ?? (smoke ? '0,20' : '0,100,1000')).split(',').map(Number);
const runs = smoke ? 3 : 15;
const stormSize = smoke ? 20 : 200;
const applySize = smoke ? 100 : 1000;
const forwardSize = smoke ? 50 : 1000;
const resourceGuests = smoke ? 50 : 1000;
const cycleMarks = (process.env['XNT_BENCH_CYCLES'] ?? (smoke ? '100,300' : '1000,10000')).split(',').map(Number);
const cycleLoops = Number(process.env['XNT_BENCH_LOOPS'] ?? 8);
/** XNT_BENCH_DAEMON_FLAGS: other Node.js flags for the daemon of the `daemon` figures and of the hook latencies (to compare in one build, or `--cpu-prof`). */
const daemonFlags = process.env['XNT_BENCH_DAEMON_FLAGS'];
const daemonCommand = daemonFlags === undefined ? undefined : ['node', ...daemonFlags.split(' ').filter((f) => f !== ''), xennetCli, 'daemon'];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const p95 = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)] ?? NaN;
};
const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : '-');
const results: Record<string, unknown> = {
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, kernel: process.platform },
  smoke,
};
const log = (s: string): void => {
  process.stdout.write(s + '\n');
};

/** Waits for hotplug-status = connected of a backend path; resolves with the write time. */
function connectedAt(world: World, backendPath: string): Promise<number> {
  return new Promise((resolve) => {
    const on = (path: string, value: string, t: number): void => {
      if (path === `${backendPath}/hotplug-status` && value === 'connected') {
        world.host.xenstored.off('write', on);
        resolve(t);
      }
    };
    world.host.xenstored.on('write', on);
  });
}

function script(world: World, v: Variant): string {
  return v.tool === 'xen' ? join(world.xenScripts, 'vif-bridge') : (v.script ?? 'vif-xennet');
}

/** What runs the hooks: Xen's vif-bridge, or vif-xennet with the daemon or without it (in-process). */
interface Variant {
  label: string;
  tool: Tool;
  daemon: boolean;
  /** Another vif-xennet (XNT_BENCH_BEFORE: an older build's hooks-bin/vif-xennet, to compare in one run). */
  script?: string;
  backend?: 'xtables';
  /** Without a daemon: whether the first hook starts one (the default) or every hook runs in Node. */
  autostart?: boolean;
}
const before = process.env['XNT_BENCH_BEFORE'];
const variants: Variant[] = [
  { label: 'xen', tool: 'xen', daemon: false },
  // xennet on its default backend (nftables), through the daemon and in-process; then on xtables.
  { label: 'xennet', tool: 'xennet', daemon: true },
  { label: 'xennet-inproc', tool: 'xennet', daemon: false, autostart: false },
  // No daemon running, as after a crash or on a host without the unit: the first hook starts one.
  { label: 'xennet-auto', tool: 'xennet', daemon: false },
  { label: 'xennet-xt', tool: 'xennet', daemon: true, backend: 'xtables' },
  ...(before ? [{ label: 'xennet-before', tool: 'xennet' as const, daemon: false, autostart: false, script: before }] : []),
].filter((v) => !process.env['XNT_BENCH_VARIANTS'] || process.env['XNT_BENCH_VARIANTS'].split(',').includes(v.label)) as Variant[];

/**
 * One guest, online then offline, `runs` times (plus a warm-up), as the toolstack does it: the
 * device's backend appears (one transaction), the hook is started at once; offline, then the
 * backend goes. online: from the backend's appearance to hotplug-status = connected; offline:
 * the hook's run time. The same sequence for every variant.
 */
async function hookLatency(): Promise<void> {
  // Started by the first hook, a daemon times as one started before (the warm-up online starts it).
  const latencyVariants = variants.filter((v) => v.label !== 'xennet-auto');
  const rows: { variant: string; guests: number; onlineMedian: number; onlineP95: number; offlineMedian: number; offlineP95: number; marks: string }[] = [];
  for (const guests of sizes) {
    for (const v of latencyVariants) {
      const world = await buildWorld({ tool: v.tool, background: guests, measured: [], autostart: v.autostart ?? true, ...(v.backend ? { backend: v.backend } : {}) });
      try {
        if (v.tool === 'xennet' && guests > 0) await timedXennet(world, ['apply']);
        if (v.daemon) await world.host.startDaemon(world.env, daemonCommand);
        const g = await world.host.addGuest({ domid: 9, name: 'bench', mac: '00:16:3e:00:09:09', addresses: ['192.168.0.109/24'], xenstoreIp: '192.168.0.109' });
        world.host.removeDevice(g);
        const on: number[] = [];
        const off: number[] = [];
        for (let i = 0; i < runs + 1; i++) {
          await new Promise((r) => setTimeout(r, 150)); // what the last offline left behind settles
          const done = connectedAt(world, g.backendPath);
          const t0 = performance.now();
          world.host.addDevice(g);
          const r = await world.host.runVifScript(script(world, v), g, 'online', 'libxl', { env: world.env });
          if (r.code !== 0) throw new Error(`${v.label} online: ${r.stderr}`);
          const t1 = await done;
          const t2 = performance.now();
          const r2 = await world.host.runVifScript(script(world, v), g, 'offline', 'libxl', { env: world.env });
          if (r2.code !== 0) throw new Error(`${v.label} offline: ${r2.stderr}`);
          const t3 = performance.now();
          world.host.removeDevice(g);
          if (i === 0) continue; // warm-up
          on.push(t1 - t0);
          off.push(t3 - t2);
        }
        // One more online with timing marks: what the time is made of.
        let marks = '';
        if (v.tool === 'xennet') {
          await new Promise((r) => setTimeout(r, 150));
          world.host.addDevice(g);
          const r = await world.host.runVifScript(script(world, v), g, 'online', 'libxl', { env: { ...world.env, XENNET_TIMING: '1' } });
          marks = r.stderr.split('\n').find((l) => l.includes('timing')) ?? '';
          if (v.daemon) {
            const st = JSON.parse((await world.host.xennet(['status', '--json'], world.env)).stdout) as { daemon?: { backends?: { lastPrepare?: { ms: number } | null } | null } };
            const p = st.daemon?.backends?.lastPrepare;
            if (p) marks += ` (the daemon's firewall prepare: ${p.ms} ms from the backend's appearance to its rules committed)`;
          }
          await world.host.runVifScript(script(world, v), g, 'offline', 'libxl', { env: world.env });
          world.host.removeDevice(g);
        }
        rows.push({ variant: v.label, guests, onlineMedian: median(on), onlineP95: p95(on), offlineMedian: median(off), offlineP95: p95(off), marks });
        log(`  hook ${v.label} with ${guests} guests: online median ${fmt(median(on))} ms, offline ${fmt(median(off))} ms`);
      } finally {
        // Stopped as asked (SIGTERM), so that a daemon run with --cpu-prof writes its profile.
        await world.host.stopDaemon().catch(() => undefined);
        await destroyWorld(world);
      }
    }
  }
  results['hook'] = rows;
  const row = (label: string, n: number) => rows.find((r) => r.variant === label && r.guests === n)!;
  log('\nHook latency (ms, median/p95; online: backend written to hotplug-status connected; offline: the hook\'s run time)');
  log('guests  variant         online       ratio to Xen   offline      ratio to Xen');
  for (const n of sizes) {
    const xen = rows.find((r) => r.variant === 'xen' && r.guests === n);
    const ratio = (a: number, b: number | undefined): string => (b === undefined ? '-' : fmt(a / b, 2));
    for (const v of latencyVariants) {
      const x = row(v.label, n);
      log(`${String(n).padEnd(7)} ${v.label.padEnd(15)} ${`${fmt(x.onlineMedian)}/${fmt(x.onlineP95)}`.padEnd(12)} ${ratio(x.onlineMedian, xen?.onlineMedian).padEnd(14)} ${`${fmt(x.offlineMedian)}/${fmt(x.offlineP95)}`.padEnd(12)} ${ratio(x.offlineMedian, xen?.offlineMedian)}`);
    }
  }
  log('\nWhere an online\'s time goes (one online with XENNET_TIMING=1, ms):');
  for (const r of rows) if (r.marks) log(`${String(r.guests).padEnd(7)} ${r.variant.padEnd(15)} ${r.marks.replace(/^.*?: /, '')}`);
}

/** The storm: N guests' backends appear and their hooks start at once (each backend just before its hook). */
async function bootStorm(): Promise<void> {
  const rows: { variant: string; guests: number; seconds: number; connected: number; slowestHook: number; within40: number }[] = [];
  for (const v of variants) {
    const world = await buildWorld({ tool: v.tool, background: 0, autostart: v.autostart ?? true });
    try {
      if (v.daemon) await world.host.startDaemon(world.env);
      const guests: SimGuest[] = [];
      const dom0: string[] = [];
      const nodes: [string, string][][] = [];
      for (let i = 0; i < stormSize; i++) {
        const d = 200 + i;
        const be = `/local/domain/0/backend/vif/${d}/0`;
        dom0.push(`link add vif${d}.0 type veth peer name s${d} netns ${world.sink.name}`, `link set vif${d}.0 address fe:ff:ff:ff:ff:ff`);
        nodes.push(vifBackendNodes(d, `storm${d}`, `00:16:3e:01:${(d >> 8).toString(16).padStart(2, '0')}:${(d & 255).toString(16).padStart(2, '0')}`, `10.9.${d >> 8}.${d & 255}`));
        guests.push({ domid: d, name: `storm${d}`, mac: '', addresses: [], ns: world.sink, vif: `vif${d}.0`, backendPath: be });
      }
      await world.host.dom0.batch(dom0);
      const waits = guests.map((g) => connectedAt(world, g.backendPath));
      const t0 = performance.now();
      const procs = guests.map(async (g, i) => {
        world.host.xenstored.writeAll(nodes[i]!);
        // No 40 s kill as libxl would: the figure is how long the whole storm takes, and each
        // hook's own time is reported against libxl's 40 s.
        const t = performance.now();
        const r = await world.host.runVifScript(script(world, v), g, 'online', 'libxl', { env: world.env, timeoutMs: 900_000 });
        return { ...r, seconds: (performance.now() - t) / 1000 };
      });
      const outcomes = await Promise.all(procs);
      const slowestHook = Math.max(...outcomes.map((o) => o.seconds));
      const within40 = outcomes.filter((o) => o.code === 0 && o.seconds < 40).length;
      const times = await Promise.race([Promise.all(waits), new Promise<number[]>((r) => setTimeout(() => r([]), 1000))]);
      const seconds = (Math.max(...times) - t0) / 1000;
      const connected = outcomes.filter((o) => o.code === 0).length;
      for (const [i, o] of outcomes.entries()) if (o.code !== 0) log(`  storm ${v.label}: ${guests[i]!.vif} exited ${o.code}: ${o.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      rows.push({ variant: v.label, guests: stormSize, seconds, connected, slowestHook, within40 });
      log(`  storm ${v.label}: ${connected}/${stormSize} connected in ${fmt(seconds, 1)} s; slowest hook ${fmt(slowestHook, 1)} s`);
    } finally {
      await destroyWorld(world);
    }
  }
  results['storm'] = rows;
  const xen = rows.find((r) => r.variant === 'xen')!;
  log(`\nBoot storm (${stormSize} onlines at once; wall time until all connected)`);
  for (const r of rows) log(`${r.variant.padEnd(15)} ${fmt(r.seconds, 1)} s (${r.connected} connected, ${r.within40} of them within libxl's 40 s; slowest hook ${fmt(r.slowestHook, 1)} s)   ratio to Xen ${fmt(r.seconds / xen.seconds, 2)}`);
}

/** The daemon's resident set (VmRSS of its process, in MiB). */
/** A process's CPU time so far (user + system), in seconds. */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * The daemon over time, with 1000 guests on the host: RSS at start, after 1000 and after 10000
 * online/offline cycles (hooks run in loops inside dom0, several guests at once), and how long
 * an external flush of the root jumps stays unrepaired.
 */
async function daemonResources(): Promise<void> {
  const world = await buildWorld({ tool: 'xennet', background: resourceGuests });
  try {
    if (resourceGuests > 0) await timedXennet(world, ['apply']);
    const pid = await world.host.startDaemon(world.env, daemonCommand);
    await new Promise((r) => setTimeout(r, 1000));
    const rows: { what: string; rssMiB: number; seconds?: number }[] = [{ what: `started, ${resourceGuests} guests`, rssMiB: rssOf(pid) }];
    log(`  daemon RSS at start with ${resourceGuests} guests: ${fmt(rssOf(pid))} MiB`);
    const loops = cycleLoops;
    const gs: SimGuest[] = [];
    for (let k = 0; k < loops; k++) gs.push(await world.host.addGuest({ domid: 20 + k, name: `cycle${k}`, mac: `00:16:3e:00:20:${k.toString(16).padStart(2, '0')}`, addresses: [`192.168.0.${120 + k}/24`], xenstoreIp: `192.168.0.${120 + k}` }));
    let done = 0;
    for (const target of cycleMarks) {
      const per = Math.ceil((target - done) / loops);
      const t0 = performance.now();
      await Promise.all(
        gs.map((g) => {
          const call = world.host.vifScriptCall('vif-xennet', g, 'online', 'libxl', { env: world.env });
          const off = call.argv.map((a) => (a === 'online' ? 'offline' : a));
          const q = (a: string): string => `'${a.replace(/'/g, "'\\''")}'`;
          const line = `for ((i = 0; i < ${per}; i++)); do ${q(call.file)} ${call.argv.map(q).join(' ')} 2>/tmp/xnt-cycle-$$.err || { cat /tmp/xnt-cycle-$$.err >&2; exit 1; }; ${q(call.file)} ${off.map(q).join(' ')} 2>/tmp/xnt-cycle-$$.err || { cat /tmp/xnt-cycle-$$.err >&2; exit 1; }; done; rm -f /tmp/xnt-cycle-$$.err`;
          return world.host.dom0.exec('bash', ['-c', line], { env: call.env, timeoutMs: 3_600_000 }).then((r) => {
            if (r.code !== 0) throw new Error(`cycles of ${g.vif} failed: ${r.stderr}`);
          });
        }),
      );
      done += per * loops;
      const seconds = (performance.now() - t0) / 1000;
      await new Promise((r) => setTimeout(r, 2000));
      rows.push({ what: `after ${done} online/offline cycles`, rssMiB: rssOf(pid), seconds });
      log(`  daemon RSS after ${done} cycles: ${fmt(rssOf(pid))} MiB (${fmt(((per * loops) / seconds), 0)} cycles/s)`);
    }
    // Drift: another program flushes the whole ruleset (nftables, the default backend), until
    // the daemon has put back the last guest's chains: a full repair.
    const repairs: number[] = [];
    const lastChain = `XN-S-vif${100 + resourceGuests - 1}.0`;
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = performance.now();
      await world.host.dom0.exec('nft', ['flush', 'ruleset']);
      for (;;) {
        if ((await world.host.dom0.exec('nft', ['list', 'chain', 'bridge', 'xennet', lastChain])).code === 0) break;
        if (performance.now() - t0 > 30_000) throw new Error('the flushed ruleset was not repaired within 30 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      repairs.push(performance.now() - t0);
    }
    rows.push({ what: `nft flush ruleset repaired (median of 3), ${resourceGuests} guests`, rssMiB: rssOf(pid), seconds: median(repairs) / 1000 });
    log(`  drift repaired in ${fmt(median(repairs))} ms (median of 3)`);
    results['daemon'] = rows;
    log(`\nThe daemon (${resourceGuests} guests on the host)`);
    for (const r of rows) log(`${r.what.padEnd(52)} RSS ${fmt(r.rssMiB)} MiB${r.seconds !== undefined ? `   ${fmt(r.seconds, 2)} s` : ''}`);
  } finally {
    await destroyWorld(world);
  }
}

async function fullApply(): Promise<void> {
  const rows: { backend: string; what: string; seconds: number; rssMiB: number; code: number }[] = [];
  const cli = await packagedCli();
  for (const backend of ['xtables', 'nftables'] as const) {
    const world = await buildWorld({ tool: 'xennet', background: applySize, backend });
    try {
      const first = await timedXennet(world, ['apply']);
      const second = await timedXennet(world, ['apply']);
      const plan = await timedXennet(world, ['plan']);
      const status = await timedXennet(world, ['status']);
      rows.push(
        { backend, what: `apply ${applySize} guests from empty`, seconds: first.seconds, rssMiB: first.rssKiB / 1024, code: first.code },
        { backend, what: 'apply again, nothing to change', seconds: second.seconds, rssMiB: second.rssKiB / 1024, code: second.code },
        { backend, what: 'plan, nothing to change', seconds: plan.seconds, rssMiB: plan.rssKiB / 1024, code: plan.code },
        { backend, what: 'status without the daemon', seconds: status.seconds, rssMiB: status.rssKiB / 1024, code: status.code },
      );
      // The daemon on the same host: status through it, and its CPU while nothing happens (two
      // periods of its full drift check), from /proc's utime + stime.
      const pid = await world.host.startDaemon(world.env);
      await new Promise((r) => setTimeout(r, 5000));
      const viaDaemon = await timedXennet(world, ['status']);
      rows.push({ backend, what: 'status through the daemon', seconds: viaDaemon.seconds, rssMiB: viaDaemon.rssKiB / 1024, code: viaDaemon.code });
      // Again, nothing changed meanwhile: the daemon answers from memory where it can (nftables).
      const again = await timedXennet(world, ['status']);
      rows.push({ backend, what: 'status through the daemon, again', seconds: again.seconds, rssMiB: again.rssKiB / 1024, code: again.code });
      const packaged = await timedXennet(world, ['status'], cli);
      rows.push({ backend, what: 'the same, packaged CLI (bundle)', seconds: packaged.seconds, rssMiB: packaged.rssKiB / 1024, code: packaged.code });
      // plan and apply through the daemon: the first plan reads everything; one with nothing to
      // change is remembered while nothing it reads changes (nftables), and answers the next
      // plan and an apply with nothing to do.
      for (const [args, what] of [[['plan'], 'plan through the daemon, first'], [['plan'], 'plan through the daemon, again'], [['apply'], 'apply through the daemon, nothing to change'], [['plan'], 'the same plan, packaged CLI (bundle)']] as const) {
        const r = await timedXennet(world, [...args], what.includes('packaged') ? cli : undefined);
        rows.push({ backend, what, seconds: r.seconds, rssMiB: r.rssKiB / 1024, code: r.code });
      }
      const idleSeconds = smoke ? 10 : 60;
      // Nothing happening: once the daemon's own follow-up of the apply (its plan made again, a
      // collection after the peak) is over.
      await new Promise((r) => setTimeout(r, smoke ? 5000 : 20_000));
      const cpu0 = cpuSecondsOf(pid);
      await new Promise((r) => setTimeout(r, idleSeconds * 1000));
      const share = ((cpuSecondsOf(pid) - cpu0) / idleSeconds) * 100;
      rows.push({ backend, what: `daemon CPU idle over ${idleSeconds} s, from ${smoke ? 5 : 20} s after the last request (% of a core)`, seconds: share, rssMiB: rssOf(pid), code: 0 });
      await world.host.stopDaemon();
    } finally {
      await destroyWorld(world);
    }
  }
  results['apply'] = rows;
  log(`\nFull reconcile (${applySize} guests, whole process: Node's start-up included)`);
  for (const r of rows) log(`${r.backend.padEnd(9)} ${r.what.padEnd(34)} ${fmt(r.seconds, 2)} s   peak RSS ${fmt(r.rssMiB)} MiB   exit ${r.code}`);
}

async function iperf(world: World, udp: boolean, options: { from?: SimNetns; repeats?: number } = {}): Promise<number> {
  const [a, b] = world.measured as [SimGuest, SimGuest];
  const client = options.from ?? b.ns;
  const values: number[] = [];
  for (let i = 0; i < (options.repeats ?? (smoke ? 1 : 3)); i++) {
    const server = start('ip', ['netns', 'exec', a.ns.name, 'iperf3', '-s', '-1']);
    await new Promise((r) => setTimeout(r, 300));
    const r = await client.exec('iperf3', ['-c', '192.168.0.101', '-t', smoke ? '2' : '5', '-J', ...(udp ? ['-u', '-l', '64', '-b', '0'] : [])], { timeoutMs: 60_000 });
    server.kill('SIGKILL');
    const j = JSON.parse(r.stdout) as { error?: string; end: { sum_received?: { bits_per_second: number }; sum?: { packets: number; lost_packets: number; seconds: number } } };
    if (j.error !== undefined || (udp ? !j.end.sum : !j.end.sum_received)) throw new Error(`iperf3 ${udp ? 'UDP' : 'TCP'} from ${client.name}: ${j.error ?? r.stdout.slice(0, 300)}`);
    values.push(udp ? (j.end.sum!.packets - j.end.sum!.lost_packets) / j.end.sum!.seconds : j.end.sum_received!.bits_per_second);
  }
  return median(values);
}

/**
 * The identity guard's per-packet cost: one world per backend (1000 guests, each with a guarded
 * MAC and address), the guard switched on and off by `apply` in alternating rounds so that this
 * machine's drift falls on both sides; guest to guest and LAN to guest, 64-byte UDP and TCP.
 */
async function guardCost(): Promise<void> {
  const measured = [
    { domid: 1, name: 'iperf-a', mac: '00:16:3e:00:00:a1', addresses: ['192.168.0.101/24'], xenstoreIp: '192.168.0.101' },
    { domid: 2, name: 'iperf-b', mac: '00:16:3e:00:00:a2', addresses: ['192.168.0.102/24'], xenstoreIp: '192.168.0.102' },
  ];
  const rounds = smoke ? 1 : 3;
  const rows: { backend: string; guard: 'on' | 'off'; round: number; path: string; tcpGbps: number; udpKpps: number }[] = [];
  for (const backend of ['xtables', 'nftables'] as const) {
    const world = await buildWorld({ tool: 'xennet', background: forwardSize, measured, backend });
    try {
      // A broadcast (ARP) flooded to 1000 veth ports overruns the kernel's per-CPU backlog on this
      // machine and misses the last ports: the LAN host and the guest know each other statically.
      const a = world.measured[0]!;
      const lanMac = (await world.host.lan.ipJson<{ address: string }[]>('link', 'show', 'lan0'))[0]!.address;
      await world.host.lan.ip('neigh', 'replace', '192.168.0.101', 'lladdr', a.mac, 'dev', 'lan0', 'nud', 'permanent');
      await a.ns.ip('neigh', 'replace', '192.168.0.1', 'lladdr', lanMac, 'dev', 'eth0', 'nud', 'permanent');
      for (let round = 1; round <= rounds; round++) {
        for (const guard of ['on', 'off'] as const) {
          writeFileSync(world.env['XENNET_RULES']!, `version: 1\nbackend: ${backend}\n${guard === 'off' ? 'defaults:\n  identity_guard: false\n' : ''}`);
          const a = await timedXennet(world, ['apply']);
          if (a.code !== 0) throw new Error(`apply: ${a.stderr}`);
          await new Promise((r) => setTimeout(r, 2000));
          for (const [path, from] of [['guest to guest', undefined], ['LAN to guest', world.host.lan]] as const) {
            const udp = await iperf(world, true, { repeats: 1, ...(from ? { from } : {}) });
            const tcp = await iperf(world, false, { repeats: 1, ...(from ? { from } : {}) });
            rows.push({ backend, guard, round, path, tcpGbps: tcp / 1e9, udpKpps: udp / 1e3 });
            log(`  guard ${backend} ${guard} round ${round} ${path}: TCP ${fmt(tcp / 1e9, 2)} Gbit/s, UDP 64 B ${fmt(udp / 1e3)} kpps`);
          }
        }
      }
    } finally {
      await destroyWorld(world);
    }
  }
  results['guard'] = rows;
  log(`\nThe identity guard's cost per packet (${forwardSize} guests; medians of ${rounds} alternating rounds; ratio guard on / off)`);
  log('backend   path             TCP on/off Gbit/s   ratio   UDP 64 B on/off kpps   ratio');
  for (const backend of ['xtables', 'nftables']) {
    for (const path of ['guest to guest', 'LAN to guest']) {
      const of = (g: string, k: 'tcpGbps' | 'udpKpps'): number => median(rows.filter((r) => r.backend === backend && r.path === path && r.guard === g).map((r) => r[k]));
      log(`${backend.padEnd(9)} ${path.padEnd(16)} ${`${fmt(of('on', 'tcpGbps'), 2)}/${fmt(of('off', 'tcpGbps'), 2)}`.padEnd(19)} ${fmt(of('on', 'tcpGbps') / of('off', 'tcpGbps'), 2).padEnd(7)} ${`${fmt(of('on', 'udpKpps'))}/${fmt(of('off', 'udpKpps'))}`.padEnd(22)} ${fmt(of('on', 'udpKpps') / of('off', 'udpKpps'), 2)}`);
    }
  }
}

/**
 * Address learning's per-packet cost, on each backend: 1000 background guests on DHCP (no
 * xenstore ip) and the two measured ones, every one of them learning with a binding in the
 * kernel, against the same world with learning off (`learn_addresses: false`: no address check)
 * and with no rules at all (the bare bridge), in alternating rounds; guest to guest, 64-byte UDP
 * and TCP.
 */
async function learningCost(): Promise<void> {
  const { learnedScript } = await import('../src/firewall/nftables/learned.js');
  const { learnedIpsetLines, learnedSetCreates } = await import('../src/firewall/xtables/learned.js');
  const { bgIp } = await import('./lib/world.js');
  const measured = [
    { domid: 1, name: 'iperf-a', mac: '00:16:3e:00:00:a1', addresses: ['192.168.0.101/24'] },
    { domid: 2, name: 'iperf-b', mac: '00:16:3e:00:00:a2', addresses: ['192.168.0.102/24'] },
  ];
  const rounds = smoke ? 1 : 3;
  const rows: { backend: string; variant: string; round: number; tcpGbps: number; udpKpps: number; bindings: number }[] = [];
  for (const backend of ['nftables', 'xtables'] as const) {
    const world = await buildWorld({ tool: 'xennet', background: forwardSize, measured, backend, backgroundIp: false });
    try {
      const [a, b] = world.measured as [SimGuest, SimGuest];
      await a.ns.ip('neigh', 'replace', '192.168.0.102', 'lladdr', b.mac, 'dev', 'eth0', 'nud', 'permanent');
      await b.ns.ip('neigh', 'replace', '192.168.0.101', 'lladdr', a.mac, 'dev', 'eth0', 'nud', 'permanent');
      const now = Date.now();
      const bindings = [
        ...world.measured.map((g, i) => ({ vif: g.vif, address: `192.168.0.${101 + i}` })),
        ...Array.from({ length: forwardSize }, (_, i) => ({ vif: `vif${100 + i}.0`, address: bgIp(100 + i) })),
      ].map((x) => ({ ...x, family: 'ipv4' as const, how: 'dhcp' as const, since: now, expires: now + 86_400_000, guarded: true }));
      for (let round = 1; round <= rounds; round++) {
        for (const variant of ['learning', 'off', 'bare'] as const) {
          writeFileSync(world.env['XENNET_RULES']!, `version: 1\nbackend: ${backend}\ndefaults:\n  learn_addresses: ${variant === 'learning'}\n`);
          const r = await timedXennet(world, ['apply']);
          if (r.code !== 0) throw new Error(`apply: ${r.stderr}`);
          if (variant === 'learning') {
            const load =
              backend === 'nftables'
                ? await world.host.dom0.exec('nft', ['-f', '-'], { input: learnedScript(bindings, [], Date.now()), timeoutMs: 120_000 })
                : await world.host.dom0.exec('ipset', ['restore', '-exist'], { input: `${[...learnedSetCreates([...new Set(bindings.map((x) => `xn4-${x.vif}`))]), ...learnedIpsetLines(bindings, [], Date.now())].join('\n')}\n`, timeoutMs: 120_000 });
            if (load.code !== 0) throw new Error(`bindings: ${load.stderr}`);
          }
          if (variant === 'bare') await bareBridge(world, backend);
          await new Promise((res) => setTimeout(res, 2000));
          const udp = await iperf(world, true, { repeats: 1 });
          const tcp = await iperf(world, false, { repeats: 1 });
          rows.push({ backend, variant, round, tcpGbps: tcp / 1e9, udpKpps: udp / 1e3, bindings: variant === 'learning' ? bindings.length : 0 });
          log(`  learning ${backend} ${variant} round ${round}: TCP ${fmt(tcp / 1e9, 2)} Gbit/s, UDP 64 B ${fmt(udp / 1e3)} kpps`);
        }
      }
    } finally {
      await destroyWorld(world);
    }
  }
  results['learning'] = rows;
  log(`\nAddress learning's cost per packet (${forwardSize} guests on DHCP, each learning with a binding; medians of ${rounds} alternating rounds)`);
  log('backend   variant                          TCP Gbit/s  ratio to bare  UDP 64 B kpps  ratio to bare');
  for (const backend of ['nftables', 'xtables']) {
    const of = (v: string, k: 'tcpGbps' | 'udpKpps'): number => median(rows.filter((r) => r.backend === backend && r.variant === v).map((r) => r[k]));
    const labels = { learning: 'learning (bound)', off: 'learning off (no address check)', bare: 'bare bridge (no rules)' };
    for (const v of ['learning', 'off', 'bare'] as const) log(`${backend.padEnd(9)} ${labels[v].padEnd(32)} ${fmt(of(v, 'tcpGbps'), 2).padEnd(11)} ${fmt(of(v, 'tcpGbps') / of('bare', 'tcpGbps'), 2).padEnd(14)} ${fmt(of(v, 'udpKpps')).padEnd(14)} ${fmt(of(v, 'udpKpps') / of('bare', 'udpKpps'), 2)}`);
  }
}

/** Busy and total jiffies of the whole machine (/proc/stat). */
function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/**
 * Issue 20's flooding guest: a tight loop of frames with a forged source for 30 s, with
 * log_drops on and (the control) off, on both backends, alternating. What the daemon spends
 * (CPU, RSS), how many lines its log grows by, the frames its counters counted, and the whole
 * machine's CPU (the sender's loop included, which is the same on both sides).
 */
async function dropFlood(): Promise<void> {
  const seconds = smoke ? 5 : 30;
  const rounds = smoke ? 1 : 2;
  const framesPy = join(process.cwd(), 'test/netns/fixtures/frames.py');
  const mac = '00:16:3e:00:00:a1';
  const rows: { backend: string; logDrops: boolean; round: number; frames: number; framesPerSecond: number; daemonCpuPercent: number; daemonRssMiB: number; logLines: number; dropLines: number; heldBackLines: number; logBytes: number; machineBusyPercent: number }[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const backend of ['nftables', 'xtables'] as const) {
      for (const logDrops of [true, false]) {
        const world = await buildWorld({ tool: 'xennet', background: 0, backend, rules: `version: 1\nbackend: ${backend}\ndefaults:\n  log_drops: ${logDrops}\n`, measured: [{ domid: 1, name: 'flood', mac, addresses: ['192.168.0.101/24'], xenstoreIp: '192.168.0.101' }] });
        try {
          const g = world.measured[0]!;
          const pid = await world.host.startDaemon(world.env);
          await new Promise((r) => setTimeout(r, 2000));
          const counted = async (): Promise<number> => {
            const r = await world.host.xennet(['status', '--json', '--fresh'], world.env);
            const s = JSON.parse(r.stdout) as { vifs: { name: string; drops: { reasons: Record<string, { packets: number }> } }[] };
            return s.vifs.find((v) => v.name === g.vif)?.drops.reasons['spoof4']?.packets ?? 0;
          };
          const before = await counted();
          const lines0 = world.host.daemonLog.length;
          const cpu0 = cpuSecondsOf(pid);
          const m0 = machineJiffies();
          const t0 = performance.now();
          const until = Date.now() / 1000 + seconds;
          const sent = await g.ns.exec('python3', [framesPy, 'send', 'eth0', `udp4@until=${until}`, mac, 'ff:ff:ff:ff:ff:ff', '10.9.9.9', '192.168.0.1', '4000', '4001', 'flood'], { timeoutMs: (seconds + 60) * 1000 });
          if (sent.code !== 0) throw new Error(`frames.py: ${sent.stderr}`);
          const elapsed = (performance.now() - t0) / 1000;
          const cpu1 = cpuSecondsOf(pid);
          const m1 = machineJiffies();
          const rss = rssOf(pid);
          await new Promise((r) => setTimeout(r, 1500)); // the last second's "held back" line
          const lines = world.host.daemonLog.slice(lines0);
          const frames = (await counted()) - before;
          const row = {
            backend,
            logDrops,
            round,
            frames,
            framesPerSecond: frames / elapsed,
            daemonCpuPercent: ((cpu1 - cpu0) / elapsed) * 100,
            daemonRssMiB: rss,
            logLines: lines.length,
            dropLines: lines.filter((l) => l.includes(' drop: ')).length,
            heldBackLines: lines.filter((l) => l.includes('not logged (at most')).length,
            logBytes: lines.reduce((a, l) => a + Buffer.byteLength(l) + 1, 0),
            machineBusyPercent: ((m1.busy - m0.busy) / (m1.total - m0.total)) * 100,
          };
          rows.push(row);
          log(`  flood ${backend} log_drops ${logDrops} round ${round}: ${frames} frames (${fmt(row.framesPerSecond)}/s), daemon CPU ${fmt(row.daemonCpuPercent, 2)} %, RSS ${fmt(rss)} MiB, ${row.logLines} log lines (${row.dropLines} drops, ${row.logBytes} bytes), machine ${fmt(row.machineBusyPercent, 1)} % busy`);
          await world.host.stopDaemon();
        } finally {
          await destroyWorld(world);
        }
      }
    }
  }
  results['dropflood'] = rows;
  log(`\nA guest flooding forged frames for ${seconds} s (medians of ${rounds} alternating rounds; the machine's CPU includes the sender's loop)`);
  log('backend   log_drops  frames/s   daemon CPU %  daemon RSS MiB  log lines  drop lines  log bytes  machine busy %');
  for (const backend of ['nftables', 'xtables']) {
    for (const logDrops of [true, false]) {
      const rs = rows.filter((r) => r.backend === backend && r.logDrops === logDrops);
      const m = (k: 'framesPerSecond' | 'daemonCpuPercent' | 'daemonRssMiB' | 'logLines' | 'dropLines' | 'logBytes' | 'machineBusyPercent'): number => median(rs.map((r) => r[k]));
      log(`${backend.padEnd(9)} ${String(logDrops).padEnd(10)} ${fmt(m('framesPerSecond')).padEnd(10)} ${fmt(m('daemonCpuPercent'), 2).padEnd(13)} ${fmt(m('daemonRssMiB')).padEnd(15)} ${fmt(m('logLines')).padEnd(10)} ${fmt(m('dropLines')).padEnd(11)} ${fmt(m('logBytes')).padEnd(10)} ${fmt(m('machineBusyPercent'), 1)}`);
    }
  }
}

/** Takes xennet's rules off the packet path (the bare bridge), the firewall's objects aside. */
async function bareBridge(world: World, backend: 'nftables' | 'xtables'): Promise<void> {
  if (backend === 'nftables') for (const f of ['bridge', 'inet']) await world.host.dom0.exec('nft', ['delete', 'table', f, 'xennet']);
  else for (const [tool, args] of [['iptables', ['-F', 'FORWARD']], ['ip6tables', ['-F', 'FORWARD']], ['iptables', ['-t', 'raw', '-F', 'PREROUTING']], ['ip6tables', ['-t', 'raw', '-F', 'PREROUTING']], ['ebtables', ['-F', 'FORWARD']], ['ebtables', ['-t', 'nat', '-F', 'PREROUTING']]] as const) await world.host.dom0.exec(tool, [...args]);
}

/**
 * Forwarding between two guests through xenbr0 with xennet's firewall of `forwardSize` guests
 * (each with its declared MAC and addresses), against the bare bridge, in alternating rounds
 * (firewall, bare, firewall, ...) so that this machine's drift falls on both sides; one world per
 * backend (XNT_BENCH_BACKENDS narrows them); 64-byte UDP and TCP, medians of the rounds.
 */
async function forwarding(): Promise<void> {
  const measured = [
    { domid: 1, name: 'iperf-a', mac: '00:16:3e:00:00:a1', addresses: ['192.168.0.101/24'], xenstoreIp: '192.168.0.101' },
    { domid: 2, name: 'iperf-b', mac: '00:16:3e:00:00:a2', addresses: ['192.168.0.102/24'], xenstoreIp: '192.168.0.102' },
  ];
  const rounds = smoke ? 1 : 5;
  const backends = (['nftables', 'xtables'] as const).filter((b) => !process.env['XNT_BENCH_BACKENDS'] || process.env['XNT_BENCH_BACKENDS'].split(',').includes(b));
  const rows: { backend: string; variant: 'firewall' | 'bare'; round: number; tcpGbps: number; udpKpps: number }[] = [];
  for (const backend of backends) {
    const world = await buildWorld({ tool: 'xennet', background: forwardSize, measured, backend });
    try {
      const [a, b] = world.measured as [SimGuest, SimGuest];
      await a.ns.ip('neigh', 'replace', '192.168.0.102', 'lladdr', b.mac, 'dev', 'eth0', 'nud', 'permanent');
      await b.ns.ip('neigh', 'replace', '192.168.0.101', 'lladdr', a.mac, 'dev', 'eth0', 'nud', 'permanent');
      for (let round = 1; round <= rounds; round++) {
        for (const variant of ['firewall', 'bare'] as const) {
          const r = await timedXennet(world, ['apply']);
          if (r.code !== 0) throw new Error(`apply: ${r.stderr}`);
          if (variant === 'bare') await bareBridge(world, backend);
          await new Promise((res) => setTimeout(res, 2000));
          const udp = await iperf(world, true, { repeats: 1 });
          const tcp = await iperf(world, false, { repeats: 1 });
          rows.push({ backend, variant, round, tcpGbps: tcp / 1e9, udpKpps: udp / 1e3 });
          log(`  forwarding ${backend} ${variant} round ${round}: TCP ${fmt(tcp / 1e9, 2)} Gbit/s, UDP 64 B ${fmt(udp / 1e3)} kpps`);
        }
      }
    } finally {
      await destroyWorld(world);
    }
  }
  results['forward'] = rows;
  log(`\nForwarding between two guests through xenbr0 (${forwardSize} guests firewalled; medians of ${rounds} rounds alternating with the bare bridge)`);
  log('backend   TCP Gbit/s fw/bare   ratio   UDP 64 B kpps fw/bare   ratio');
  for (const backend of backends) {
    const of = (v: string, k: 'tcpGbps' | 'udpKpps'): number => median(rows.filter((r) => r.backend === backend && r.variant === v).map((r) => r[k]));
    log(`${backend.padEnd(9)} ${`${fmt(of('firewall', 'tcpGbps'), 2)}/${fmt(of('bare', 'tcpGbps'), 2)}`.padEnd(20)} ${fmt(of('firewall', 'tcpGbps') / of('bare', 'tcpGbps'), 2).padEnd(7)} ${`${fmt(of('firewall', 'udpKpps'))}/${fmt(of('bare', 'udpKpps'))}`.padEnd(23)} ${fmt(of('firewall', 'udpKpps') / of('bare', 'udpKpps'), 2)}`);
  }
}

/**
 * nft itself, for the nftables backend's firewall of `applySize` guests (as `apply` renders it),
 * in a namespace of its own: the one transaction that loads it, `nft list table` (what `plan`,
 * `apply` and `status` read), and a one-element change like a hook's.
 */
async function nftTransactions(): Promise<void> {
  const { compile } = await import('../src/firewall/compile.js');
  const { resolveVif } = await import('../src/firewall/resolve.js');
  const { diffTable, render } = await import('../src/firewall/diff.js');
  const { parseLive } = await import('../src/firewall/drivers.js');
  const { parseCidr, parseIfName, parseMac } = await import('../src/net/index.js');
  const vifs = [];
  for (let k = 100; k < 100 + applySize; k++) {
    const mac = parseMac(`00:16:3e:01:${(k >> 8).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}`);
    vifs.push(resolveVif({ version: 1 }, { name: parseIfName(`vif${k}.0`), bridge: parseIfName('xenbr0'), mac, ipv4: [parseCidr(`10.${k >> 8}.${k & 255}.1`)], ipv6: [parseCidr(`2001:db8:${k.toString(16)}::1`)] }));
  }
  const desired = compile(vifs, { kind: 'nftables', conntrack: 'mark' }).nftables;
  const script = render(diffTable(parseLive('', 'nftables'), desired, 'nftables'), 'nftables');
  const ns = `xnt-${process.pid}-nft`;
  await run('ip', ['netns', 'add', ns]);
  try {
    const timed = async (args: string[], input?: string): Promise<{ ms: number; out: string }> => {
      const t = performance.now();
      const r = await run('ip', ['netns', 'exec', ns, 'nft', ...args], { ...(input === undefined ? {} : { input }), timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr}`);
      return { ms: performance.now() - t, out: r.stdout };
    };
    const load = await timed(['-f', '-'], script);
    const list = await timed(['list', 'table', 'bridge', 'xennet']);
    const again = diffTable(parseLive(list.out, 'nftables'), desired, 'nftables');
    const one = await timed(['-f', '-'], 'add element bridge xennet guests { "vif9.0" }\n');
    const rows = [
      { what: `load ${applySize} guests (${script.split('\n').length} lines)`, ms: load.ms },
      { what: 'nft list table bridge xennet', ms: list.ms },
      { what: 'one element added (a hook\'s smallest change)', ms: one.ms },
    ];
    results['nft'] = { rows, convergedAfterLoad: again.write.size === 0 && again.remove.length === 0 };
    log(`\nnft (1.0.6) with ${applySize} guests' firewall (converged after load: ${again.write.size === 0 && again.remove.length === 0})`);
    for (const r of rows) log(`${r.what.padEnd(48)} ${fmt(r.ms)} ms`);
  } finally {
    await run('ip', ['netns', 'del', ns]);
  }
}

/**
 * `xennet check` of a rule file with N guests, whole process. "address" guests have a MAC, an
 * IPv4 and an IPv6 address; "full" guests add prefixes and two allow rules (2.6x the text).
 */
async function checkRuleFile(): Promise<void> {
  const rows: { guests: number; kind: string; kib: number; medianMs: number; runs: number }[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'xnt-bench-check-'));
  try {
    for (const [n, kind] of (smoke ? [[1000, 'address'], [1000, 'full']] : [[1000, 'full'], [5000, 'address'], [5000, 'full']]) as [number, string][]) {
      const lines = ['version: 1', 'defaults:', '  inbound: drop', 'guests:'];
      for (let i = 0; i < n; i++) {
        const hi = (i >> 8) & 255;
        const lo = i & 255;
        lines.push(`  guest${i}:`, `    mac: "02:00:00:00:${hi.toString(16).padStart(2, '0')}:${lo.toString(16).padStart(2, '0')}"`);
        if (kind === 'address') {
          lines.push(`    ipv4: [10.${hi}.${lo}.5]`, `    ipv6: ["2001:db8:${i.toString(16)}::5"]`);
        } else {
          lines.push(
            `    ipv4: [10.${hi}.${lo}.0/28, 172.16.${hi}.${lo}]`,
            `    ipv6: ["2001:db8:${i.toString(16)}::/64"]`,
            '    allow_in:',
            '      - { proto: tcp, ports: [22, 80, 443, "8000-8080"], from: [192.168.0.0/16] }',
            '      - { proto: icmp, icmp_types: [8] }',
          );
        }
      }
      const file = join(dir, `rules-${n}-${kind}.yaml`);
      const text = lines.join('\n') + '\n';
      writeFileSync(file, text);
      const times: number[] = [];
      for (let k = 0; k < (smoke ? 2 : 7); k++) {
        const t0 = performance.now();
        const r = await run('node', [join(process.cwd(), 'dist/src/cli/main.js'), 'check', file], { timeoutMs: 120_000 });
        if (r.code !== 0) throw new Error(`check ${n}: ${r.stderr}`);
        times.push(performance.now() - t0);
      }
      rows.push({ guests: n, kind, kib: Math.round(text.length / 1024), medianMs: median(times), runs: times.length });
      log(`  check ${n} ${kind} guests: median ${fmt(median(times))} ms`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  results['check'] = rows;
  log('\nRule file check (`xennet check FILE`, whole process incl. Node start-up, median)');
  for (const r of rows) log(`${String(r.guests).padEnd(6)} ${r.kind.padEnd(8)} guests (${r.kib} KiB)  ${fmt(r.medianMs)} ms`);
}

if (process.getuid?.() !== 0) {
  process.stderr.write('bench: needs root (network namespaces)\n');
  process.exit(1);
}
await sweepNetns('xnt');
// How fast this machine starts processes right now (it varies: a VM whose page cache is reclaimed
// starts every binary from disk). Xen's vif-bridge runs ~45 processes per online, so its figures
// move with this far more than the daemon's.
{
  const spawnOne = async (file: string, a: string[]): Promise<number> => {
    const t = performance.now();
    await run(file, a);
    return performance.now() - t;
  };
  const nodeMs: number[] = [];
  const trueMs: number[] = [];
  for (let i = 0; i < 15; i++) nodeMs.push(await spawnOne('node', ['-e', '0']));
  for (let i = 0; i < 50; i++) trueMs.push(await spawnOne('/bin/true', []));
  results['calibration'] = { nodeStartMs: median(nodeMs), processStartMs: median(trueMs) };
  log(`machine: node -e 0 ${fmt(median(nodeMs))} ms, /bin/true ${fmt(median(trueMs), 1)} ms (medians)`);
}
const t0 = Date.now();
if (only.has('hook')) await hookLatency();
if (only.has('storm')) await bootStorm();
if (only.has('daemon')) await daemonResources();
if (only.has('apply')) await fullApply();
if (only.has('forward')) await forwarding();
if (only.has('guard')) await guardCost();
if (only.has('learning')) await learningCost();
if (only.has('check')) await checkRuleFile();
if (only.has('nft')) await nftTransactions();
if (only.has('dropflood')) await dropFlood();
results['seconds'] = (Date.now() - t0) / 1000;
mkdirSync('bench/results', { recursive: true });
const file = join('bench/results', `${new Date().toISOString().replace(/[:.]/g, '-')}${smoke ? '-smoke' : ''}.json`);
writeFileSync(file, JSON.stringify(results, null, 2));
log(`\nresults: ${file} (${fmt(results['seconds'] as number)} s)`);
process.exit(0);
