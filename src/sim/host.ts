/**
 * A simulated Xen host in network namespaces:
 *
 *   lan    lan0 192.168.0.1/24 + 2001:db8::1/64 (the gateway)
 *   dom0   eth0 192.168.0.2/24 + 2001:db8::2/64, default via the gateway; `takeover()` runs
 *          xennet's real `bridge start` there
 *   guests one namespace each; its eth0 is the peer of vif<domid>.0 in dom0, as netback would
 *          create it (down, fe:ff:ff:ff:ff:ff)
 *
 * plus an in-memory xenstored on a unix socket, populated the way libxl populates it, and the
 * toolstack's calls of a vif-script (libxl or xend form) against it.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fireAndForget, start, type ExecResult } from '../sys/exec.js';
import { XennetError } from '../sys/errors.js';
import { readPidFile } from '../sys/process.js';
import { addNetns, deleteNetns, type SimNetns } from './netns.js';
import { InMemoryXenstored } from './xenstored.js';
import { DAEMON_NODE_FLAGS } from '../daemon/paths.js';
import { clearAutostartOff, setAutostartOff } from '../daemon/autostart.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
export const xennetCli = join(root, 'dist/src/cli/main.js');
export const hooksBin = join(root, 'hooks-bin');

export interface GuestSpec {
  domid: number;
  name: string;
  mac: string;
  /** The guest's own addresses (CIDR), configured inside its namespace. */
  addresses: string[];
  /** xenstore `ip` (space separated), as `ip=` in the vif config; omitted when undefined. */
  xenstoreIp?: string;
  /** xenstore `bridge`; libxl always writes one (default xenbr0); null leaves it out. */
  bridge?: string | null;
  mtu?: number;
  vifname?: string;
}

export interface SimGuest extends GuestSpec {
  ns: SimNetns;
  /** The vif device netback created in dom0. */
  vif: string;
  backendPath: string;
}

export interface SimHostOptions {
  /** Namespace name prefix; the pid is appended so leftovers of dead runs can be swept. */
  prefix?: string;
  /** MTU of dom0's NIC. */
  mtu?: number;
  /**
   * xennet as an operator installs it (the system suite, inside a private mount namespace):
   * `env()` sets none of xennet's variables (no XENNET_*, XENSTORED_PATH or XENSTORED_RUNDIR,
   * only PATH and HOME), so everything is found at its default path; the xenstored listens on
   * `xenstoreSocket` (the default one, /var/run/xenstored/socket); `xennet()` and `takeover()`
   * run the installed `xennetBin`. Without it, a host keeps everything of its own in a
   * temporary directory (the other suites, the demo, the benchmarks).
   */
  installed?: { xenstoreSocket: string; xennetBin: string };
  /**
   * Whether a hook that finds no daemon starts one (the default, as on a real host). false: the
   * operator's switch `<run dir>/autostart.off` is set, so hooks without a daemon run in-process
   * (the suites of the in-process path).
   */
  autostart?: boolean;
}

/** The PATH an installed hook gets: root's usual PATH (plus the directory of this node). */
export function operatorPath(): string {
  const dirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  const nodeDir = dirname(process.execPath);
  return (dirs.includes(nodeDir) ? dirs : [...dirs, nodeDir]).join(delimiter);
}

/** How the toolstack starts a vif-script: the file, its argv and its complete environment. */
export interface VifScriptCall {
  file: string;
  argv: string[];
  env: NodeJS.ProcessEnv;
}

export type ToolstackForm = 'libxl' | 'xend';

export interface KeptHost {
  id: string;
  namespaces: string[];
  dir: string;
  xenstoredPid: number;
  env: NodeJS.ProcessEnv;
}

/** Starts a detached process and waits until `readyPath` exists; returns its pid. */
async function startDetached(file: string, args: string[], readyPath: string): Promise<number> {
  const pid = fireAndForget(file, args);
  for (let i = 0; i < 100 && !existsSync(readyPath); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(readyPath) || pid === undefined) throw new XennetError('exec', `${file} ${args.join(' ')} did not start`);
  return pid;
}

let spawnGate: Promise<void> = Promise.resolve();

export class SimHost {
  readonly guests = new Map<number, SimGuest>();
  private readonly owned: string[] = [];

  private constructor(
    readonly id: string,
    readonly lan: SimNetns,
    readonly dom0: SimNetns,
    readonly xenstored: InMemoryXenstored,
    readonly dir: string,
    readonly installed: SimHostOptions['installed'],
  ) {}

  get xenstoreSocket(): string {
    return this.xenstored.socketPath;
  }

  /**
   * Environment for processes that belong to this host (state dir, xenstore, hotplug lock). An
   * installed host sets only PATH and HOME: everything else is at its default path.
   */
  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    if (this.installed) return { PATH: operatorPath(), HOME: process.env['HOME'] || '/root', ...extra };
    return {
      ...process.env,
      XENSTORED_PATH: this.xenstoreSocket,
      XENNET_STATE_DIR: join(this.dir, 'state'),
      XENNET_HOTPLUG_LOCK_DIR: join(this.dir, 'hotplug-lock'),
      XENNET_RUN_DIR: join(this.dir, 'run'),
      XENNET_SYSLOG: '0',
      ...extra,
    };
  }

  /** Where this host's daemon listens. */
  get runDir(): string {
    return this.installed ? '/run/xennet' : join(this.dir, 'run');
  }

  /** Sets or clears the operator's switch that keeps hooks from starting a daemon. */
  setAutostart(on: boolean): void {
    const env = { XENNET_RUN_DIR: this.runDir };
    if (on) clearAutostartOff(env);
    else setAutostartOff(env, 'set by the simulated host: hooks without a daemon run in-process');
  }

  private daemonProcess: ReturnType<typeof start> | undefined;
  private daemonExit: Promise<number | null> | undefined;
  /** What the daemon wrote on stderr (its log). */
  daemonLog: string[] = [];

  /**
   * Starts `xennet daemon` in dom0 (the installed one on an installed host, or `command` as given,
   * e.g. the installed unit's ExecStart) and waits until it listens. A pid file left there goes
   * first (`keepPidFile`: a test of what the daemon makes of one), so that it waits for the new one.
   */
  async startDaemon(extra: NodeJS.ProcessEnv = {}, command?: string[], options: { keepPidFile?: boolean } = {}): Promise<number> {
    const cmd = command ?? (this.installed ? [this.installed.xennetBin, 'daemon'] : ['node', ...DAEMON_NODE_FLAGS, xennetCli, 'daemon']);
    const pidFile = join(this.runDir, 'daemon.pid');
    const stale = options.keepPidFile ? readPidFile(pidFile) : undefined;
    if (!options.keepPidFile) rmSync(pidFile, { force: true });
    const child = start('ip', ['netns', 'exec', this.dom0.name, ...cmd], { env: this.env(extra) });
    this.daemonProcess = child;
    this.daemonLog = [];
    child.stdout?.resume();
    child.stderr?.on('data', (b: Buffer) => this.daemonLog.push(...b.toString('utf8').split('\n').filter((l) => l !== '')));
    this.daemonExit = new Promise((resolve) => child.on('close', (code) => resolve(code)));
    for (let i = 0; i < 200; i++) {
      if (existsSync(pidFile) && readPidFile(pidFile) !== stale && existsSync(join(this.runDir, 'daemon.fifo'))) return child.pid ?? 0;
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new XennetError('exec', `xennet daemon did not start: ${this.daemonLog.join(' | ')}`);
  }

  /** Stops the daemon (SIGTERM: it finishes what is in flight; SIGKILL: a crash); its exit code. */
  async stopDaemon(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.daemonProcess;
    if (!child || !this.daemonExit) return null;
    const pid = readPidFile(join(this.runDir, 'daemon.pid'));
    // The daemon is a child of `ip netns exec`, which execs it: the same process.
    child.kill(signal);
    if (pid !== undefined && pid !== child.pid) {
      try {
        process.kill(pid, signal);
      } catch {
        /* gone */
      }
    }
    const code = await this.daemonExit;
    this.daemonProcess = undefined;
    this.daemonExit = undefined;
    return code;
  }

  static async create(options: SimHostOptions = {}): Promise<SimHost> {
    const prefix = options.prefix ?? 'xnt';
    const id = `${prefix}-${process.pid}-${Math.random().toString(16).slice(2, 6)}`;
    const dir = mkdtempSync(join(tmpdir(), `${id}-`));
    const socket = options.installed?.xenstoreSocket ?? join(dir, 'xenstored.sock');
    mkdirSync(dirname(socket), { recursive: true });
    const xenstored = new InMemoryXenstored(socket);
    await xenstored.listen();
    const made: string[] = [];
    try {
      const lan = await addNetns(`${id}-lan`);
      made.push(lan.name);
      const dom0 = await addNetns(`${id}-dom0`);
      made.push(dom0.name);
      // The LAN's end gets an ifindex dom0's end cannot have: a veth whose peer's index equals
      // its own looks to the kernel like a physical NIC, whose carrier events it batches (linkwatch,
      // up to 1 s), so the LAN would not reach dom0 for a second after every takeover.
      await lan.ip('link', 'add', 'lan0', 'index', '9', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', dom0.name);
      await lan.ip('addr', 'add', '192.168.0.1/24', 'dev', 'lan0');
      await lan.ip('addr', 'add', '2001:db8::1/64', 'dev', 'lan0', 'nodad');
      await lan.ip('link', 'set', 'lan0', 'up');
      await dom0.ip('addr', 'add', '192.168.0.2/24', 'dev', 'eth0');
      await dom0.ip('addr', 'add', '2001:db8::2/64', 'dev', 'eth0', 'nodad');
      await dom0.ip('link', 'set', 'eth0', 'mtu', String(options.mtu ?? 1500), 'up');
      await dom0.ip('route', 'add', 'default', 'via', '192.168.0.1');
      xenstored.write('/local/domain/0/name', 'Domain-0');
      const host = new SimHost(id, lan, dom0, xenstored, dir, options.installed);
      host.owned.push(...made);
      host.setAutostart(options.autostart ?? true);
      return host;
    } catch (e) {
      for (const n of made.reverse()) await deleteNetns(n);
      await xenstored.close();
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Runs the real `xennet` CLI in dom0 (the installed one on an installed host). */
  xennet(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ExecResult> {
    if (this.installed) return this.dom0.exec(this.installed.xennetBin, args, { env: this.env(env), timeoutMs: 120_000 });
    return this.dom0.exec('node', [xennetCli, ...args], { env: this.env(env), timeoutMs: 120_000 });
  }

  async takeover(): Promise<void> {
    const r = await this.xennet(['bridge', 'start']);
    if (r.code !== 0) throw new XennetError('exec', `xennet bridge start failed in the simulated dom0: ${r.stderr}`);
    // The renamed uplink was down for its rename: the kernel attaches its queue again only when
    // it handles the carrier event, dropping what is sent before. For a physical NIC it may put
    // that off for up to a second (linkwatch), and a NIC renegotiates its link besides; the
    // simulated one is a veth the kernel handles at once (see create). The host is ready when
    // the LAN reaches dom0 through the bridge.
    const t0 = performance.now();
    while (!(await this.lan.ping('192.168.0.2', { waitSeconds: 1 }))) {
      if (performance.now() - t0 > 10_000) throw new XennetError('exec', 'after the takeover the LAN does not reach dom0 (192.168.0.2) through xenbr0 within 10 s');
    }
  }

  /**
   * Creates a guest: its namespace, the vif pair (as netback would), and the xenstore entries
   * libxl writes before it runs the vif-script (hotplug-status pre-written as "").
   */
  async addGuest(spec: GuestSpec): Promise<SimGuest> {
    const ns = await addNetns(`${this.id}-g${spec.domid}`);
    this.owned.push(ns.name);
    const vif = `vif${spec.domid}.0`;
    await this.dom0.ip('link', 'add', vif, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name);
    await this.dom0.ip('link', 'set', vif, 'address', 'fe:ff:ff:ff:ff:ff');
    await ns.ip('link', 'set', 'eth0', 'address', spec.mac);
    for (const a of spec.addresses) await ns.ip('addr', 'add', a, 'dev', 'eth0', ...(a.includes(':') ? ['nodad'] : []));
    await ns.ip('link', 'set', 'eth0', 'up');
    if (spec.addresses.some((a) => !a.includes(':'))) await ns.ip('route', 'add', 'default', 'via', '192.168.0.1');
    const backendPath = `/local/domain/0/backend/vif/${spec.domid}/0`;
    this.xenstored.writeAll(this.deviceNodes(spec));
    const guest: SimGuest = { ...spec, ns, vif, backendPath };
    this.guests.set(spec.domid, guest);
    return guest;
  }

  /** A guest's domain, frontend and backend nodes as libxl writes them (one transaction). */
  private deviceNodes(spec: GuestSpec): [string, string][] {
    const backendPath = `/local/domain/0/backend/vif/${spec.domid}/0`;
    const frontendPath = `/local/domain/${spec.domid}/device/vif/0`;
    const nodes: [string, string][] = [
      [`/local/domain/${spec.domid}/name`, spec.name],
      [`/local/domain/${spec.domid}/domid`, String(spec.domid)],
      [`${frontendPath}/backend`, backendPath],
      [`${frontendPath}/backend-id`, '0'],
      [`${frontendPath}/handle`, '0'],
      [`${frontendPath}/mac`, spec.mac],
      [`${frontendPath}/state`, '1'],
      [`${backendPath}/frontend`, frontendPath],
      [`${backendPath}/frontend-id`, String(spec.domid)],
      [`${backendPath}/online`, '1'],
      [`${backendPath}/state`, '1'],
      [`${backendPath}/script`, '/etc/xen/scripts/vif-xennet'],
      [`${backendPath}/mac`, spec.mac],
      [`${backendPath}/handle`, '0'],
      [`${backendPath}/type`, 'vif'],
    ];
    if (spec.bridge !== null) nodes.push([`${backendPath}/bridge`, spec.bridge ?? 'xenbr0']);
    if (spec.xenstoreIp !== undefined) nodes.push([`${backendPath}/ip`, spec.xenstoreIp]);
    if (spec.mtu !== undefined) nodes.push([`${backendPath}/mtu`, String(spec.mtu)]);
    if (spec.vifname !== undefined) nodes.push([`${backendPath}/vifname`, spec.vifname]);
    nodes.push([`${backendPath}/hotplug-status`, '']);
    return nodes;
  }

  /** The toolstack removes the guest's device (its backend and frontend nodes), as after offline. */
  removeDevice(guest: SimGuest): void {
    this.xenstored.rm(guest.backendPath);
    this.xenstored.rm(`/local/domain/${guest.domid}/device/vif/0`);
  }

  /** The toolstack adds the guest's device again (one transaction), as before online. */
  addDevice(guest: SimGuest): void {
    this.xenstored.writeAll(this.deviceNodes(guest));
  }

  /**
   * Runs a vif-script for a guest the way the toolstack does: libxl passes
   * `online|offline type_if=vif` with vif, XENBUS_PATH (relative), netdev, script...; xend's udev
   * rule passes `online|offline` plus the VAR=VAL words of the configured script string.
   */
  async runVifScript(script: string, guest: SimGuest, command: string, form: ToolstackForm = 'libxl', extra: { argv?: string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ExecResult> {
    // Spawning blocks this process's event loop, which also runs the simulated xenstored: when
    // many hooks start at once, spawn them one event-loop turn apart so it can answer in between
    // (a real xenstored is its own process).
    const turn = spawnGate.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
    spawnGate = turn;
    await turn;
    const call = this.vifScriptCall(script, guest, command, form, extra);
    return this.dom0.exec(call.file, call.argv, { env: call.env, timeoutMs: extra.timeoutMs ?? 120_000 });
  }

  /** What {@link runVifScript} runs in dom0: the script, its argv and its whole environment. */
  vifScriptCall(script: string, guest: SimGuest, command: string, form: ToolstackForm = 'libxl', extra: { argv?: string[]; env?: NodeJS.ProcessEnv } = {}): VifScriptCall {
    const env: NodeJS.ProcessEnv = {
      vif: guest.vif,
      XENBUS_PATH: `backend/vif/${guest.domid}/0`,
      XENBUS_TYPE: 'vif',
      XENBUS_BASE_PATH: 'backend',
      script: `/etc/xen/scripts/${script.split('/').pop() ?? script}`,
      ...(form === 'libxl' ? { netdev: '' } : {}),
      ...extra.env,
    };
    const argv = form === 'libxl' ? [command, 'type_if=vif', ...(extra.argv ?? [])] : [command, ...(extra.argv ?? [])];
    const file = script.includes('/') ? script : join(hooksBin, script);
    return { file, argv, env: this.env(env) };
  }

  /** A further namespace that belongs to this host (deleted with it). */
  async addNamespace(role: string): Promise<SimNetns> {
    const ns = await addNetns(`${this.id}-${role}`);
    this.owned.push(ns.name);
    return ns;
  }

  /** The namespaces this host made (lan, dom0, guests). */
  get namespaces(): string[] {
    return [...this.owned];
  }

  /**
   * Keeps the host alive after this process: the xenstore tree moves to a detached xenstored
   * process on the same socket; returns what `xennet demo down` needs to remove it all.
   */
  async handOver(): Promise<KeptHost> {
    const tree = join(this.dir, 'xenstore.json');
    writeFileSync(tree, JSON.stringify(this.xenstored.dump()));
    await this.xenstored.close();
    const pid = await startDetached('node', [join(root, 'dist/src/sim/xenstored-main.js'), this.xenstoreSocket, '--load', tree], this.xenstoreSocket);
    const kept: KeptHost = { id: this.id, namespaces: [...this.owned], dir: this.dir, xenstoredPid: pid, env: this.env({}) };
    this.owned.length = 0;
    return kept;
  }

  async destroy(): Promise<void> {
    if (this.daemonProcess) await this.stopDaemon('SIGKILL');
    for (const n of [...this.owned].reverse()) await deleteNetns(n);
    this.owned.length = 0;
    await this.xenstored.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
