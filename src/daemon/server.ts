/**
 * `xennet daemon`: the resident controller. It keeps warm what every hook process rebuilds (one
 * xenstore connection, one netlink socket, the parsed rule file, the hotplug lock queue) and runs
 * the same implementation of the work as the in-process hook (src/hooks/vif-call.ts).
 *
 *   <run dir>/daemon.fifo   hook calls from the vif-xennet client (one request file path a line);
 *                           answered on the request's own reply FIFO: `accepted`, `.` heartbeats,
 *                           the hook's log lines, `exit N` (or `fallback`: run it in-process)
 *   <run dir>/daemon.sock   JSON requests (the CLI's status, plan, apply; stats; reload)
 *   <run dir>/daemon.pid
 *
 * SIGTERM: calls in flight finish, new ones are answered `fallback`, the files go, exit 0.
 * SIGHUP: re-read the rule file now.
 */
import { chmodSync, closeSync, constants, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import type { NetlinkClient } from '../bridge/nl/client.js';
import { rulesSource } from '../config/paths.js';
import { commitAllStaged, createHookFirewall } from '../firewall/hook-firewall.js';
import { noFirewall } from '../hooks/vif-firewall.js';
import { reportOnFreshConnection, runVifCall, type HookServices } from '../hooks/vif-call.js';
import { backendPathFromEnv } from '../hooks/vif-input.js';
import { HOOK_BUDGET_MS, HOOK_WORK_MS } from '../hooks/vif-run.js';
import { printable } from '../net/index.js';
import { Deadline } from '../sys/deadline.js';
import { mkfifoSync } from '../sys/fifo.js';
import { XennetError, reasonOf } from '../sys/errors.js';
import type { Logger } from '../sys/log.js';
import { pidAlive, processEnded, processStartTime, readPidFile, runsSubcommand } from '../sys/process.js';
import { tryAcquireLock, type HeldLock } from '../sys/lock.js';
import { HOOK_XENSTORE_RETRY_MS, XenstoreClient } from '../xenstore/client.js';
import { BackendWatch, type BackendWatchState } from './backend-watch.js';
import { DriftWatch } from './drift.js';
import { NameWatch, type NameWatchState } from './name-watch.js';
import { AddressLearning, type LearningState } from './learning.js';
import { DropWatch } from './drop-watch.js';
import type { DropEvent } from '../firewall/drop-log.js';
import { reinstallVifs } from '../hooks/vif-refresh.js';
import { parseHookRequest, MAX_REQUEST_BYTES } from './hook-request.js';
import { DaemonLock } from './lock.js';
import { HOST_VARIABLES, runPaths, type RunPaths } from './paths.js';
import { PolicyHolder, type PolicyState } from './policy-holder.js';
import { handleJsonRequest } from './requests.js';
import { StatusCache } from './status-cache.js';
import { MemoryKeeper, type MemoryKeeperState } from './memory.js';
import { DaemonMetrics } from './metrics.js';
import { BackendQueue } from './backend-queue.js';

export interface DaemonStats {
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  hookCalls: number;
  hookFailures: number;
  jsonRequests: number;
  badRequests: number;
  repairs: number;
  lastError: string | null;
  inFlight: number;
  lockHeld: boolean;
  lockWaiting: number;
  /** Times the lock helper died while the hotplug lock was held (the lock taken again each time). */
  lockLost?: number;
  policy: PolicyState;
  drift: { mode: string; lastCheck: string | null; lastRepair: string | null; reads: number; unchanged: number; lookups: number };
  /** The backend watch: firewalls prepared before their hook, rules of vanished backends removed. */
  backends: BackendWatchState | null;
  /** The watch on the guests' domain names (renames followed). */
  names?: NameWatchState | null;
  /** Address learning: whether it listens, what it learned and refused. */
  learning?: LearningState | null;
  /** Status requests answered from memory, and those read anew. */
  status?: { remembered: number; read: number; plans: { remembered: number; computed: number } };
  rssMiB: number;
  /** V8's heap in use, and memory outside it (Buffers: netlink batches and dumps), MiB. */
  heapMiB?: number;
  externalMiB?: number;
  /** Full collections the daemon ran after a peak (see memory.ts). */
  memory?: MemoryKeeperState;
}

function memoryFigures(): { rssMiB: number; heapMiB: number; externalMiB: number } {
  const m = process.memoryUsage();
  const mib = (n: number): number => Math.round(n / 1024 / 1024);
  return { rssMiB: mib(m.rss), heapMiB: mib(m.heapUsed), externalMiB: mib(m.external + m.arrayBuffers) };
}

/** The services a daemon shares between calls. */
export interface DaemonContext {
  env: NodeJS.ProcessEnv;
  log: Logger;
  paths: RunPaths;
  policy: PolicyHolder;
  lock: DaemonLock;
  stats(): DaemonStats;
  noteError(what: string): void;
  noteRepair(): void;
  shuttingDown(): boolean;
  /** `status` answered from what was last read while nothing it reads has changed. */
  readonly statusCache: StatusCache;
  /** The metrics in Prometheus' text format (daemon/metrics.ts). */
  metricsText(): Promise<string>;
  /** The drops kept after `seq` (daemon/drop-watch.ts). */
  dropsSince(seq: number): { listening: boolean; drops: DropEvent[]; seq: number; instance: string };
}

const REQUEST_NAME = /^\d{1,10}\.\d{1,10}$/;

/** How soon a deferred commit that failed is tried again. */
const COMMIT_RETRY_MS = 5000;

export class Daemon implements DaemonContext {
  readonly paths: RunPaths;
  readonly policy: PolicyHolder;
  readonly lock: DaemonLock;
  private xs: XenstoreClient | undefined;
  private xsConnecting: Promise<XenstoreClient> | undefined;
  private nl: NetlinkClient | undefined;
  private server: Server | undefined;
  private fifo: Socket | undefined;
  private fifoBuffer = '';
  private readonly started = Date.now();
  private readonly metrics: DaemonMetrics;
  private counters = { hookCalls: 0, hookFailures: 0, jsonRequests: 0, badRequests: 0, repairs: 0 };
  private lastError: string | null = null;
  private inFlight = new Set<Promise<unknown>>();
  private readonly memory = new MemoryKeeper(() => this.inFlight.size === 0);
  /** Calls for one backend, one at a time (hooks and the backend watch). */
  private readonly backendQueue = new BackendQueue();
  private stopping = false;
  private ownsRunDir = false;
  /** The run directory's daemon lock, held from the first step of start to the last of stop. */
  private runLock: HeldLock | undefined;
  private drift: DriftWatch | undefined;
  private backends: BackendWatch | undefined;
  private names: NameWatch | undefined;
  private learning: AddressLearning | undefined;
  private drops: DropWatch | undefined;
  readonly statusCache: StatusCache;

  constructor(
    readonly env: NodeJS.ProcessEnv,
    readonly log: Logger,
    private readonly options: { prepare?: boolean } = {},
  ) {
    this.paths = runPaths(env);
    this.policy = new PolicyHolder(rulesSource(undefined, env), log, env);
    this.lock = new DaemonLock(env['XENNET_HOTPLUG_LOCK_DIR'] || undefined, (what) => {
      this.noteError(what);
      log.err(what);
    });
    this.statusCache = new StatusCache({
      env,
      log,
      xenstore: () => this.xenstore(),
      read: async (source, snapshot) => {
        const unread: string[] = [];
        const changesAt = { at: Number.POSITIVE_INFINITY };
        const status = await (await import('../status/host-status.js')).hostStatus({ rules: source, env, unread, changesAt, ...(snapshot ? { snapshot } : {}) });
        return { status, unread, changesAt: changesAt.at };
      },
    });
    this.metrics = new DaemonMetrics(this);
  }

  shuttingDown(): boolean {
    return this.stopping;
  }

  noteError(what: string): void {
    this.lastError = `${new Date().toISOString()} ${what}`;
  }

  noteRepair(): void {
    this.counters.repairs++;
  }

  dropsSince(seq: number): { listening: boolean; drops: DropEvent[]; seq: number; instance: string } {
    return { listening: this.drops?.listening() ?? false, ...(this.drops?.since(seq) ?? { drops: [], seq: 0 }), instance: `${process.pid}:${this.started}` };
  }

  metricsText(): Promise<string> {
    return this.metrics.text();
  }

  stats(): DaemonStats {
    return {
      pid: process.pid,
      startedAt: new Date(this.started).toISOString(),
      uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
      ...this.counters,
      lastError: this.lastError,
      inFlight: this.inFlight.size,
      lockHeld: this.lock.held,
      lockWaiting: this.lock.waiting,
      lockLost: this.lock.lostCount,
      policy: this.policy.state(),
      drift: this.drift?.state() ?? { mode: 'off', lastCheck: null, lastRepair: null, reads: 0, unchanged: 0, lookups: 0 },
      backends: this.backends?.state() ?? null,
      names: this.names?.state() ?? null,
      learning: this.learning?.state() ?? null,
      status: this.statusCache.state(),
      ...memoryFigures(),
      memory: this.memory.state(),
    };
  }

  /** The shared xenstore connection; a new one when xenstored went away (restart). */
  async xenstore(): Promise<XenstoreClient> {
    if (this.xs?.usable) return this.xs;
    this.xsConnecting ??= XenstoreClient.connect(this.env, { retryForMs: HOOK_XENSTORE_RETRY_MS }).then(
      (c) => {
        this.xs = c;
        this.xsConnecting = undefined;
        return c;
      },
      (e: unknown) => {
        this.xsConnecting = undefined;
        throw e;
      },
    );
    return this.xsConnecting;
  }

  async netlink(): Promise<NetlinkClient> {
    if (!this.nl) {
      const { NetlinkClient } = await import('../bridge/nl/client.js');
      this.nl = new NetlinkClient();
    }
    return this.nl;
  }

  private hookServices(env: NodeJS.ProcessEnv): HookServices {
    return {
      xenstore: () => this.xenstore(),
      netlink: () => this.netlink(),
      firewall: async (log) => (env['XENNET_FIREWALL'] === 'off' ? noFirewall : createHookFirewall(env, log, async () => ({ policy: this.policy.policy }), { commitSoon: (full) => this.commitSoon(env, full) })),
      acquireLock: (name, options) => this.lock.acquire(name, options),
    };
  }

  private committer: { running: Promise<void>; again: boolean; full: boolean } | undefined;


  /**
   * Commits what is staged, soon, under the hotplug lock (offline's removals: the hook has
   * answered, its vif is off the bridge). Requests while a commit runs make one more after it.
   */
  commitSoon(env: NodeJS.ProcessEnv, full: boolean): void {
    if (this.committer) {
      this.committer.again = true;
      this.committer.full ||= full;
      return;
    }
    const c = { running: Promise.resolve(), again: true, full };
    this.committer = c;
    c.running = (async () => {
      while (c.again) {
        c.again = false;
        const wantFull = c.full;
        c.full = false;
        let held;
        try {
          held = await this.lock.acquire('iptables', { deadline: Deadline.in(60_000) });
          const r = await commitAllStaged(env, this.log, wantFull);
          if (r.batch > 0) this.log.debug(`committed ${r.batch} staged change${r.batch === 1 ? '' : 's'}`);
        } catch (e) {
          // Retried in 5 s while it fails (a full state directory): nothing else would come back
          // to a departed guest's rules before the next hook. Said once per reason, not every 5 s.
          const why = reasonOf(e);
          this.noteError(`committing staged removals: ${why}`);
          if (why !== this.commitSoonFailure) this.log.err(`committing staged firewall changes failed: ${why} (retried every ${COMMIT_RETRY_MS / 1000} s)`);
          this.commitSoonFailure = why;
          if (!this.stopping) setTimeout(() => this.commitSoon(env, wantFull), COMMIT_RETRY_MS).unref();
          continue;
        } finally {
          held?.release();
        }
        if (this.commitSoonFailure !== undefined) this.log.info('committing staged firewall changes works again');
        this.commitSoonFailure = undefined;
      }
    })().finally(() => {
      this.committer = undefined;
    });
    this.track(c.running);
  }

  /** Why the last deferred commit failed (logged once until it changes or works). */
  private commitSoonFailure: string | undefined;

  /** Starts listening; refuses when another daemon runs on the same run directory. */
  async start(): Promise<void> {
    const p = this.paths;
    // The run directory is the daemon's own: made 0700 here, or refused when it exists with any
    // other mode or owner (pointed at /run or /tmp, a chmod would change the host).
    try {
      mkdirSync(dirname(p.dir), { recursive: true });
      mkdirSync(p.dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new XennetError('state', `cannot create ${p.dir}: ${reasonOf(e)}`);
      const st = lstatSync(p.dir);
      if (!st.isDirectory() || (st.mode & 0o7777) !== 0o700 || st.uid !== process.getuid?.()) {
        throw new XennetError('refused', `${p.dir} is not a directory of the daemon's own (it must be a directory of mode 0700 owned by root; it is ${st.isDirectory() ? `mode ${(st.mode & 0o7777).toString(8)}, uid ${st.uid}` : 'not a directory'})`, { hint: 'point XENNET_RUN_DIR at a directory for xennet alone, e.g. /run/xennet' });
      }
    }
    // One daemon per run directory, from its first step: two started at once would both get this
    // far before either wrote the pid file (written last, when it serves). The lock names the
    // daemon; a pid that now runs no `daemon` (its daemon died, the pid went to another program)
    // holds nothing.
    const lock = tryAcquireLock(join(p.dir, 'daemon.lock'), (pid) => pid !== process.pid && runsSubcommand(pid, 'daemon'));
    if ('owner' in lock) throw new XennetError('refused', `another xennet daemon (pid ${lock.owner}) runs on ${p.dir}`, { hint: 'stop it first (systemctl stop xennet)' });
    this.runLock = lock;
    const other = readPidFile(p.pid);
    // A live process that runs no `daemon` at all got the pid of one that died (the file is stale).
    if (other !== undefined && other !== process.pid && pidAlive(other)) {
      if (runsSubcommand(other, 'daemon')) throw new XennetError('refused', `another xennet daemon (pid ${other}) runs on ${p.dir}`, { hint: 'stop it first (systemctl stop xennet)' });
      this.log.warning(`${p.pid} names pid ${other}, which runs no daemon: a stale pid file (its daemon died and the pid was given to another process); taking it over`);
    }
    // From here the files in the run directory are this daemon's (stop() removes only its own).
    this.ownsRunDir = true;
    rmSync(p.requests, { recursive: true, force: true });
    mkdirSync(p.requests, { mode: 0o700 });
    rmSync(p.socket, { force: true });
    rmSync(p.fifo, { force: true });
    await this.listenSocket();
    this.listenFifo();
    this.policy.watch(() => undefined);
    this.memory.start();
    this.drift = new DriftWatch(this);
    await this.drift.start();
    this.metrics.start();
    if (this.options.prepare !== false && this.env['XENNET_FIREWALL'] !== 'off') {
      this.backends = new BackendWatch({ env: this.env, log: this.log, services: () => this.hookServices(this.env), shuttingDown: () => this.stopping, serial: (key, fn) => this.backendQueue.run(key, fn) });
      await this.backends.start();
    }
    if (this.env['XENNET_FIREWALL'] !== 'off') {
      // A guest received by live migration runs here once xl renames it from <name>--incoming:
      // address learning then takes its announcements for a while.
      const onMoved = (vif: string, before: string | undefined): void => {
        if (before?.includes('--incoming"')) this.learning?.received(vif);
      };
      this.names = new NameWatch({ env: this.env, log: this.log, services: () => this.hookServices(this.env), shuttingDown: () => this.stopping, onMoved });
      this.names.start();
      // On the xtables backend a learning guest's ARP and NA rules are made from its bindings:
      // when they change, its rules are installed again (as for a rename).
      const reinstall = async (vifs: ReadonlySet<string>): Promise<ReadonlySet<string>> => {
        if (this.stopping) return new Set();
        const services = this.hookServices(this.env);
        const deps = { xs: await services.xenstore(), nl: await services.netlink(), firewall: await services.firewall(this.log), log: this.log, ...(services.acquireLock ? { acquireLock: services.acquireLock } : {}) };
        return new Set((await reinstallVifs(deps, this.env, Deadline.in(20_000), vifs, 'its learned bindings changed')).failed);
      };
      this.learning = new AddressLearning({ env: this.env, log: this.log, netlink: () => this.netlink(), reinstall });
      await this.learning.start();
      // What the guests' rules drop, logged with their domain (log_drops).
      this.drops = new DropWatch({ log: this.log, domainName: async (domid) => (await (await this.xenstore()).read(`/local/domain/${domid}/name`)) });
      await this.drops.start();
    }
    // Last: the pid file is what tells hook clients that a daemon serves (ready, not starting).
    writeFileSync(`${p.pid}.tmp`, `${process.pid}\n`, { mode: 0o644 });
    renameSync(`${p.pid}.tmp`, p.pid);
    this.log.info(`listening on ${p.socket} and ${p.fifo}; rule file ${this.policy.file} (${this.policy.state().state})`);
  }

  private async listenSocket(): Promise<void> {
    const server = createServer((conn) => this.acceptJson(conn));
    server.maxConnections = 64;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.paths.socket, () => resolve());
    });
    chmodSync(this.paths.socket, 0o600);
    this.server = server;
  }

  private listenFifo(): void {
    mkfifoSync(this.paths.fifo);
    // Opened read-write, non-blocking: never EOF when clients come and go, never blocks the loop.
    const fd = openSync(this.paths.fifo, constants.O_RDWR | constants.O_NONBLOCK);
    const sock = new Socket({ fd, readable: true, writable: false });
    // A character of several bytes may straddle two reads: the decoder keeps its first bytes.
    const decoder = new StringDecoder('utf8');
    sock.on('data', (chunk: Buffer) => {
      this.fifoBuffer += decoder.write(chunk);
      if (this.fifoBuffer.length > 1 << 20) this.fifoBuffer = this.fifoBuffer.slice(-4096); // garbage: keep the tail
      let nl: number;
      while ((nl = this.fifoBuffer.indexOf('\n')) >= 0) {
        const line = this.fifoBuffer.slice(0, nl);
        this.fifoBuffer = this.fifoBuffer.slice(nl + 1);
        this.track(this.hookRequest(line));
      }
    });
    sock.on('error', (e) => this.log.err(`request FIFO: ${e.message}`));
    this.fifo = sock;
  }

  private track(p: Promise<unknown>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** One hook call: the request file named by `line`, answered on its reply FIFO. */
  private async hookRequest(line: string): Promise<void> {
    const path = line.trim();
    if (resolve(dirname(path)) !== this.paths.requests || !REQUEST_NAME.test(basename(path))) {
      this.counters.badRequests++;
      this.log.warning(`ignored a hook request line that names no request file: ${JSON.stringify(printable(path.slice(0, 120)))}`);
      return;
    }
    // The client's reply pipe is its fd 3 (the request is named <client pid>.<random>).
    const clientPid = Number(basename(path).split('.')[0]);
    const replyPath = `/proc/${clientPid}/fd/3`;
    // The client as it is now (its pid and start time), to know later whether it still waits:
    // one the toolstack killed (its timeout) has been given up on, as an in-process hook killed
    // stops where it is.
    const clientStart = processStartTime(clientPid);
    const clientGone = (): boolean => clientStart !== undefined && processEnded(clientPid, clientStart);
    let reply: number;
    try {
      // Non-blocking: a client that is gone (no reader) gives ENXIO instead of hanging here.
      reply = openSync(replyPath, constants.O_WRONLY | constants.O_NONBLOCK);
      if (!fstatSync(reply).isFIFO()) {
        closeSync(reply);
        throw new Error(`${replyPath} is not the client's reply pipe`);
      }
    } catch (e) {
      this.counters.badRequests++;
      this.log.warning(`hook request ${basename(path)}: no reply FIFO (${reasonOf(e)}); the client is gone`);
      rmSync(path, { force: true });
      return;
    }
    const say = (text: string): void => {
      try {
        writeSync(reply, text.endsWith('\n') ? text : `${text}\n`);
      } catch {
        /* the client stopped reading: it falls back or is gone */
      }
    };
    let heartbeat: NodeJS.Timeout | undefined;
    const claimed = `${path}.claimed`;
    /** The client and the daemon each take a request by renaming it: exactly one of them runs it. */
    const claim = (): boolean => {
      try {
        renameSync(path, claimed);
        return true;
      } catch {
        return false; // the client took it back (it runs the call itself)
      }
    };
    try {
      let req;
      try {
        const st = statSync(path);
        if (!st.isFile() || st.size > MAX_REQUEST_BYTES) throw new Error(`not a request file of at most ${MAX_REQUEST_BYTES} bytes`);
        req = parseHookRequest(readFileSync(path));
      } catch (e) {
        if (!claim()) return;
        this.counters.badRequests++;
        say(`vif-xennet: error: the daemon refused the request: ${reasonOf(e)}`);
        say('exit 1');
        return;
      }
      // Paths compare as paths (a trailing slash or `//` names the same directory).
      const norm = (v: string, x: string | undefined): string => (x && v !== 'XENNET_IPTABLES' && x.startsWith('/') ? resolve(x) : (x ?? ''));
      const mismatch = HOST_VARIABLES.find((v) => norm(v, req.env[v]) !== norm(v, this.env[v]));
      if (this.stopping || mismatch) {
        say('fallback'); // not claimed: the client takes it back and runs it in-process
        return;
      }
      if (!claim()) return;
      this.counters.hookCalls++;
      say('accepted');
      heartbeat = setInterval(() => say('.'), 1000);
      const env: NodeJS.ProcessEnv = { ...this.env, ...req.env };
      const lines: string[] = [];
      const tag = 'vif-xennet';
      const log: Logger = {
        debug: () => undefined,
        info: (m) => {
          say(`${tag}: ${m}`);
          this.log.info(m);
        },
        warning: (m) => {
          say(`${tag}: warning: ${m}`);
          this.log.warning(m);
        },
        err: (m) => {
          say(`${tag}: error: ${m}`);
          this.log.err(m);
          lines.push(m);
        },
      };
      // The budget counts from the client's start, as libxl's 40 s do.
      const spent = Math.max(0, Date.now() - req.startedAt);
      const deadline = Deadline.in(Math.max(1000, HOOK_WORK_MS - spent));
      const t0 = performance.now();
      const marks: string[] = [];
      const timing = env['XENNET_TIMING'] === '1';
      // The step the call is at, for the watchdog to name.
      let phase = 'starting';
      const mark = (what: string): void => {
        phase = what;
        if (timing) marks.push(`${what.replace(/ /g, '-')}=${(performance.now() - t0 + spent).toFixed(1)}`);
      };
      // A call still running at the budget's end (libxl kills its script at 40 s) fails as the
      // in-process hook's watchdog fails it: hotplug-error and hotplug-status=error in xenstore.
      let abandoned = false;
      const late = async (): Promise<number> => {
        abandoned = true;
        const message = `gave up after ${HOOK_BUDGET_MS / 1000} s while ${phase}`;
        log.err(message);
        const backendPath = backendPathFromEnv(env);
        if (backendPath) await reportOnFreshConnection(env, backendPath, message, this.log, 2500);
        return 1;
      };
      const call = (): Promise<number> => {
        // Its client killed while the call waited behind another for its backend: not run (the
        // toolstack went on: its offline, a device added again at the same path).
        if (clientGone()) {
          this.log.warning(`${req.env['vif'] ?? req.env['INTERFACE'] ?? '?'}: the hook's client (pid ${clientPid}) is gone, given up on by the toolstack: its ${req.argv[0] ?? 'call'} is not run`);
          return Promise.resolve(1);
        }
        return runVifCall(req.argv, this.hookServices(env), { env, log, deadline, elapsed: () => performance.now() - t0 + spent, mark, abandoned: () => abandoned || clientGone(), via: 'daemon' });
      };
      // After the calls before it for the same backend (a call naming none runs at once); the
      // wait counts against the budget.
      const backend = backendPathFromEnv(env);
      const code = await withWatchdog(backend === undefined ? call() : this.backendQueue.run(backend, call), HOOK_BUDGET_MS - spent, late);
      if (marks.length > 0) say(`vif-xennet timing (daemon, ms since the client started): accepted=${spent.toFixed(1)} ${marks.join(' ')} end=${(performance.now() - t0 + spent).toFixed(1)}`);
      if (code !== 0) {
        this.counters.hookFailures++;
        this.noteError(`${req.env['vif'] ?? req.env['INTERFACE'] ?? '?'}: ${lines[lines.length - 1] ?? 'failed'}`);
      }
      say(`exit ${code}`);
      this.names?.syncSoon();
    } finally {
      clearInterval(heartbeat);
      closeSync(reply);
      rmSync(claimed, { force: true });
    }
  }

  /** A JSON request on the socket: one line in, one line out. A stuck client blocks nobody. */
  private acceptJson(conn: Socket): void {
    let buf = '';
    let bytes = 0;
    const decoder = new StringDecoder('utf8');
    let done = false;
    conn.setTimeout(5000);
    const answer = (value: unknown): void => {
      if (done) return;
      done = true;
      conn.end(`${JSON.stringify(value)}\n`);
    };
    const refuse = (message: string): void => {
      this.counters.badRequests++;
      answer({ ok: false, error: { code: 'usage', message } });
    };
    conn.on('timeout', () => (buf === '' ? refuse('no request within 5 s') : refuse('incomplete request within 5 s')));
    conn.on('error', () => undefined);
    conn.on('data', (chunk: Buffer) => {
      if (done) return;
      buf += decoder.write(chunk);
      bytes += chunk.length;
      if (bytes > MAX_REQUEST_BYTES) return refuse(`request larger than ${MAX_REQUEST_BYTES} bytes`);
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      conn.setTimeout(0);
      this.counters.jsonRequests++;
      const p = handleJsonRequest(this, buf.slice(0, nl)).then(
        (r) => {
          if (!r.ok) this.counters.badRequests += r.bad ? 1 : 0;
          answer(r.ok ? { ok: true, result: r.result } : { ok: false, error: r.error });
        },
        (e: unknown) => {
          const err = e instanceof XennetError ? e.toJSON() : { code: 'internal', message: reasonOf(e) };
          this.noteError(err.message);
          answer({ ok: false, error: err });
        },
      );
      this.track(p);
    });
  }

  /** SIGTERM: finish what is in flight, answer new calls `fallback`, remove the files, exit. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.memory.stop();
    this.log.info(`stopping: ${this.inFlight.size} call${this.inFlight.size === 1 ? '' : 's'} in flight`);
    this.server?.close();
    await Promise.allSettled([...this.inFlight]);
    this.backends?.stop();
    await this.backends?.idle();
    this.names?.stop();
    await this.names?.idle();
    await this.learning?.stop();
    this.drops?.stop();
    await this.drift?.stop();
    await this.metrics.stop();
    this.statusCache.stop();
    // What the calls started (an offline's deferred removal): until nothing is left in flight.
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    this.policy.close();
    this.fifo?.destroy();
    // A daemon refused at start (another one runs) leaves the other's files alone.
    if (this.ownsRunDir && readPidFile(this.paths.pid) === process.pid) {
      for (const f of [this.paths.socket, this.paths.fifo, this.paths.pid]) rmSync(f, { force: true });
      // Clients that wrote after we stopped reading: their calls run in-process (they time out
      // waiting for `accepted`); their files go with the directory.
      if (existsSync(this.paths.requests)) for (const f of readdirSync(this.paths.requests)) rmSync(join(this.paths.requests, f), { force: true });
    }
    this.runLock?.release();
    this.runLock = undefined;
    this.xs?.close();
    this.nl?.close();
    this.lock.close();
    this.log.info('stopped');
  }
}

/** Settles like `p`, or with `onLate()` after `ms` (the call keeps running; its answer is lost). */
function withWatchdog<T>(p: Promise<T>, ms: number, onLate: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    // Once late, the late answer stands, whatever the call does after.
    let fired = false;
    const t = setTimeout(() => {
      fired = true;
      void onLate().then(resolve, reject);
    }, Math.max(1000, ms));
    p.then(
      (v) => {
        if (fired) return;
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        if (fired) return;
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
