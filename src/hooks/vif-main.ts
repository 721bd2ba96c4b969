/**
 * Entry of hooks-bin/vif-xennet, the vif-script the Xen toolstack runs for every guest network
 * interface. Kept lean (no CLI framework, lazy imports).
 *
 * The contract with the toolstack: exit 0 only after `hotplug-status=connected` was written
 * (online) or offline finished; every failure writes `hotplug-error` and `hotplug-status=error`
 * (one transaction) and exits 1. The hook has a budget of HOOK_BUDGET_MS (libxl SIGKILLs it at
 * 40 s): every wait inside is bounded, and a watchdog reports and exits if the budget runs out
 * anyway. A hook whose work stops without finishing (a promise that never settles, so the event
 * loop empties) is caught too: it reports and exits 1, never 0.
 */
import { performance } from 'node:perf_hooks';
import { Deadline } from '../sys/deadline.js';
import { XennetError, reasonOf } from '../sys/errors.js';
import { createLogger, type Logger } from '../sys/log.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { backendPathFromEnv, parseVifCall, type VifHookInput } from './vif-input.js';
import { HOOK_BUDGET_MS, HOOK_WORK_MS } from './vif-run.js';

function sentence(e: unknown): string {
  if (e instanceof XennetError) return e.hint ? `${e.message} (${e.hint})` : e.message;
  return reasonOf(e);
}

/** hotplug-error + hotplug-status=error, atomically. */
export async function reportError(xs: XenstoreClient, backendPath: string, message: string): Promise<void> {
  await xs.transaction(async (tx) => {
    await tx.write(`${backendPath}/hotplug-error`, message.slice(0, 2000));
    await tx.write(`${backendPath}/hotplug-status`, 'error');
  });
}

/** Reports a failure on a connection of its own (the hook's may be the thing that failed). */
async function reportOnFreshConnection(env: NodeJS.ProcessEnv, backendPath: string, message: string, log: Logger, timeoutMs: number): Promise<void> {
  let xs: XenstoreClient | undefined;
  try {
    const { XenstoreClient } = await import('../xenstore/client.js');
    xs = await XenstoreClient.connect(env, { requestTimeoutMs: timeoutMs, connectTimeoutMs: Math.min(timeoutMs, 2000) });
    await reportError(xs, backendPath, message);
  } catch (e) {
    log.err(`could not write hotplug-status=error to ${backendPath}: ${reasonOf(e)}`);
  } finally {
    xs?.close();
  }
}

/** XENNET_TIMING=1: phase timings (ms since process start) on stderr, for benchmarks. */
const marks: [string, number][] = [];
let phase = 'starting';
export function mark(what: string): void {
  phase = what;
  if (process.env['XENNET_TIMING'] === '1') marks.push([what.replace(/ /g, '-'), performance.now()]);
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, log: Logger = createLogger({ tag: 'vif-xennet', syslog: env['XENNET_SYSLOG'] !== '0' })): Promise<number> {
  // Pessimistic until the work says otherwise: an exit we did not plan for is a failure.
  process.exitCode = 1;
  mark('main');
  const backendPath = backendPathFromEnv(env);
  let finished = false;
  let reported = false;
  const failHard = async (message: string): Promise<void> => {
    if (reported) return;
    reported = true;
    log.err(message);
    if (backendPath) await reportOnFreshConnection(env, backendPath, message, log, 2500);
  };
  // The budget is enforced here whatever the work is doing.
  const watchdog = setTimeout(() => {
    void failHard(`gave up after ${HOOK_BUDGET_MS / 1000} s while ${phase}`).finally(() => process.exit(1));
  }, Math.max(0, HOOK_BUDGET_MS - performance.now()));
  watchdog.unref();
  const emptyLoop = (): void => {
    if (finished) return;
    void failHard(`internal error: the hook stopped while ${phase} with its work unfinished`).finally(() => process.exit(1));
  };
  process.once('beforeExit', emptyLoop);
  try {
    const code = await mainInner(argv, env, log, Deadline.in(HOOK_WORK_MS - performance.now()), (m) => {
      reported = true;
      return m;
    });
    finished = true;
    process.exitCode = code;
    return code;
  } finally {
    finished = true;
    clearTimeout(watchdog);
    process.removeListener('beforeExit', emptyLoop);
    mark('end');
    if (marks.length > 0) process.stderr.write(`vif-xennet timing: ${marks.map(([w, t]) => `${w}=${t.toFixed(0)}`).join(' ')}\n`);
  }
}

async function mainInner(argv: readonly string[], env: NodeJS.ProcessEnv, log: Logger, deadline: Deadline, noteReported: (m: string) => string): Promise<number> {
  let backendPath = backendPathFromEnv(env);
  let input: VifHookInput | undefined;
  let xs: XenstoreClient | undefined;
  let nl: { close(): void } | undefined;
  try {
    const call = parseVifCall(argv, env);
    if (call.kind === 'ignore') {
      log.debug(call.reason);
      return 0;
    }
    input = call.input;
    backendPath = input.backendPath;
    const online = input.command === 'online' || input.command === 'add';
    const firewallOff = env['XENNET_FIREWALL'] === 'off';
    const [{ XenstoreClient }, { NetlinkClient }, run, fw] = await Promise.all([
      import('../xenstore/client.js'),
      import('../bridge/nl/client.js'),
      import('./vif-run.js'),
      firewallOff ? import('./vif-firewall.js').then((m) => m.noFirewall) : import('../firewall/hook-firewall.js').then((m) => m.createHookFirewall(env, log)),
    ]);
    mark('imported');
    xs = await XenstoreClient.connect(env);
    const client = new NetlinkClient();
    nl = client;
    const deps: Parameters<typeof run.vifOnline>[1] = { xs, nl: client, firewall: fw, log, mark, deadline };
    if (env['XENNET_HOTPLUG_LOCK_DIR']) deps.lockDir = env['XENNET_HOTPLUG_LOCK_DIR'];
    const outcome = online ? await run.vifOnline(input, deps) : await run.vifOffline(input, deps);
    log.info(`${outcome.summary} in ${Math.round(performance.now())} ms`);
    return 0;
  } catch (e) {
    const message = sentence(e);
    log.err(`${input ? `${input.command} ${input.device}: ` : ''}${message}`);
    if (backendPath) {
      noteReported(message);
      if (xs?.usable) {
        try {
          await reportError(xs, backendPath, message);
        } catch (e2) {
          log.err(`could not write hotplug-status=error to ${backendPath}: ${reasonOf(e2)}`);
        }
      } else {
        await reportOnFreshConnection(env, backendPath, message, log, 2500);
      }
    }
    return 1;
  } finally {
    xs?.close();
    nl?.close();
  }
}
