/**
 * One call of the vif-script, whoever runs it: the hook process itself (vif-main.ts) or the
 * resident daemon (src/daemon). Parses the toolstack's argv and environment, runs online or
 * offline, and on any failure writes `hotplug-error` + `hotplug-status=error` (one transaction),
 * on a fresh connection when the call's own is the thing that failed.
 */
import type { XenstoreClient } from '../xenstore/client.js';
import { backendPresent } from './backend-present.js';
import type { Deadline } from '../sys/deadline.js';
import { XennetError, reasonOf } from '../sys/errors.js';
import type { Logger } from '../sys/log.js';
import type { VifFirewall } from './vif-firewall.js';
import { backendPathFromEnv, parseVifCall, type VifHookInput } from './vif-input.js';
import type { VifDeps } from './vif-run.js';
import { stallPoint } from '../sys/test-seams.js';
import { recordHookCall, type HookRecord } from './hook-journal.js';

export function sentence(e: unknown): string {
  if (e instanceof XennetError) return e.hint ? `${e.message} (${e.hint})` : e.message;
  return reasonOf(e);
}


/** hotplug-error + hotplug-status=error, atomically, while the backend is there (false: it is gone, nothing written). */
export async function reportError(xs: XenstoreClient, backendPath: string, message: string): Promise<boolean> {
  return xs.transaction(async (tx) => {
    if (!(await backendPresent(tx, backendPath))) return false;
    await tx.write(`${backendPath}/hotplug-error`, message.slice(0, 2000));
    await tx.write(`${backendPath}/hotplug-status`, 'error');
    return true;
  });
}

/** Reports a failure on a connection of its own (the call's may be the thing that failed). */
export async function reportOnFreshConnection(env: NodeJS.ProcessEnv, backendPath: string, message: string, log: Logger, timeoutMs: number): Promise<void> {
  let xs: XenstoreClient | undefined;
  try {
    const { XenstoreClient, HOOK_XENSTORE_RETRY_MS } = await import('../xenstore/client.js');
    xs = await XenstoreClient.connect(env, { requestTimeoutMs: timeoutMs, connectTimeoutMs: Math.min(timeoutMs, 2000), retryForMs: Math.min(timeoutMs, HOOK_XENSTORE_RETRY_MS) });
    if (!(await reportError(xs, backendPath, message))) log.warning(`${backendPath} is gone (the toolstack removed the device): nothing reported there`);
  } catch (e) {
    log.err(`could not write hotplug-status=error to ${backendPath}: ${reasonOf(e)}`);
  } finally {
    xs?.close();
  }
}

/** What a call needs from whoever runs it. */
export interface HookServices {
  /** A connected xenstore client. */
  xenstore(): Promise<XenstoreClient>;
  netlink(): Promise<VifDeps['nl']>;
  firewall(log: Logger): Promise<VifFirewall>;
  /** The hotplug lock (default: take it with flock). */
  acquireLock?: VifDeps['acquireLock'];
}

export interface CallOptions {
  env: NodeJS.ProcessEnv;
  log: Logger;
  deadline: Deadline;
  mark?: (what: string) => void;
  /** Milliseconds since the call started (for the log line). */
  elapsed: () => number;
  /** Told when a failure was (or is being) reported to xenstore. */
  onReported?: () => void;
  /** See VifDeps.abandoned. */
  abandoned?: () => boolean;
  /**
   * After its own work, install the new policy of attached guests whose domain was renamed (a
   * hook running without the daemon, which follows renames itself).
   */
  followRenames?: boolean;
  /** Who runs the call, for the record of hook calls (hook-journal.ts). */
  via: HookRecord['via'];
}

export async function runVifCall(argv: readonly string[], services: HookServices, o: CallOptions): Promise<number> {
  const { env, log } = o;
  let backendPath = backendPathFromEnv(env);
  let input: VifHookInput | undefined;
  let xs: XenstoreClient | undefined;
  const record = (call: VifHookInput, vif: string, ok: boolean, message: string): void =>
    recordHookCall(env, { at: new Date().toISOString(), command: call.command, vif, domid: call.domid, devid: call.devid, ms: Math.round(o.elapsed()), via: o.via, ok, message });
  try {
    const call = parseVifCall(argv, env);
    if (call.kind === 'ignore') {
      log.debug(call.reason);
      return 0;
    }
    input = call.input;
    backendPath = input.backendPath;
    const online = input.command === 'online' || input.command === 'add';
    const [run, firewall] = await Promise.all([import('./vif-run.js'), services.firewall(log)]);
    o.mark?.('imported');
    await stallPoint('vif:imported', env);
    await stallPoint(`vif:imported:${input.command}`, env);
    xs = await services.xenstore();
    const deps: VifDeps = { xs, nl: await services.netlink(), firewall, log, deadline: o.deadline, env };
    if (o.mark) deps.mark = o.mark;
    if (o.abandoned) deps.abandoned = o.abandoned;
    if (services.acquireLock) deps.acquireLock = services.acquireLock;
    if (env['XENNET_HOTPLUG_LOCK_DIR']) deps.lockDir = env['XENNET_HOTPLUG_LOCK_DIR'];
    const once = (): ReturnType<typeof run.vifOnline> => (online ? run.vifOnline(input!, deps) : run.vifOffline(input!, deps));
    let outcome;
    try {
      outcome = await once();
    } catch (e) {
      // xenstored went away under the call (a restart): the connection is done for, and the call
      // is idempotent: run it once more on a new connection, if there is time.
      if (xs.usable || o.deadline.remainingMs() < 10_000 || o.abandoned?.()) throw e;
      log.warning(`the xenstore connection was lost (${reasonOf(e)}); running the call again on a new one`);
      xs = await services.xenstore();
      deps.xs = xs;
      outcome = await once();
    }
    log.info(`${outcome.summary} in ${Math.round(o.elapsed())} ms`);
    record(input, outcome.config?.name ?? input.device, true, outcome.summary);
    if (o.followRenames && env['XENNET_FIREWALL'] !== 'off') {
      // Its own call is done and reported: what follows can fail without failing it.
      o.mark?.('following renames');
      try {
        const moved = await (await import('./vif-refresh.js')).followRenames(deps, env, o.deadline);
        if (moved.length > 0) log.info(`the domains of ${moved.join(', ')} were renamed: their new policy is installed`);
      } catch (e) {
        log.warning(`could not look for renamed domains: ${reasonOf(e)}`);
      }
    }
    return 0;
  } catch (e) {
    const message = sentence(e);
    log.err(`${input ? `${input.command} ${input.device}: ` : ''}${message}`);
    if (input) record(input, input.device, false, message);
    // Given up on (the daemon's watchdog answered the toolstack already, or the client is gone):
    // the toolstack has its answer, and may have moved on (a device added again at that path).
    if (backendPath && o.abandoned?.()) {
      log.warning(`the call was given up on: nothing reported at ${backendPath}`);
      return 1;
    }
    if (backendPath) {
      o.onReported?.();
      if (xs?.usable) {
        try {
          if (!(await reportError(xs, backendPath, message))) log.warning(`${backendPath} is gone (the toolstack removed the device): nothing reported there`);
        } catch (e2) {
          log.err(`could not write hotplug-status=error to ${backendPath}: ${reasonOf(e2)}`);
        }
      } else {
        await reportOnFreshConnection(env, backendPath, message, log, 2500);
      }
    }
    return 1;
  }
}
