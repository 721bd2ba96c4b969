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
import { createLogger, type Logger } from '../sys/log.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { reportOnFreshConnection, runVifCall, type HookServices } from './vif-call.js';
import { backendPathFromEnv } from './vif-input.js';
import { HOOK_BUDGET_MS, HOOK_WORK_MS } from './vif-run.js';

/** XENNET_TIMING=1: phase timings (ms since process start) on stderr, for benchmarks. */
const marks: [string, number][] = [];
let phase = 'starting';
export function mark(what: string): void {
  phase = what;
  if (process.env['XENNET_TIMING'] === '1') marks.push([what.replace(/ /g, '-'), performance.now()]);
}

/** Milliseconds the vif-xennet client ran before it started this process (XENNET_HOOK_STARTED). */
function spentBefore(env: NodeJS.ProcessEnv): number {
  const raw = env['XENNET_HOOK_STARTED'];
  if (!raw || !/^\d{9,11}(\.\d{1,9})?$/.test(raw)) return 0;
  const clientStart = Number(raw) * 1000;
  const processStart = performance.timeOrigin;
  return Math.min(30_000, Math.max(0, processStart - clientStart));
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
  // The budget counts from when the toolstack started the script: this process's start, or the
  // vif-xennet client's when it handed the call over to us (it ran for a while first).
  const before = spentBefore(env);
  const watchdog = setTimeout(() => {
    void failHard(`gave up after ${HOOK_BUDGET_MS / 1000} s while ${phase}`).finally(() => process.exit(1));
  }, Math.max(0, HOOK_BUDGET_MS - before - performance.now()));
  watchdog.unref();
  const emptyLoop = (): void => {
    if (finished) return;
    void failHard(`internal error: the hook stopped while ${phase} with its work unfinished`).finally(() => process.exit(1));
  };
  process.once('beforeExit', emptyLoop);
  try {
    const code = await mainInner(argv, env, log, Deadline.in(HOOK_WORK_MS - before - performance.now()), () => {
      reported = true;
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

async function mainInner(argv: readonly string[], env: NodeJS.ProcessEnv, log: Logger, deadline: Deadline, noteReported: () => void): Promise<number> {
  let xs: XenstoreClient | undefined;
  let nl: { close(): void } | undefined;
  const services: HookServices = {
    xenstore: async () => {
      const { XenstoreClient, HOOK_XENSTORE_RETRY_MS } = await import('../xenstore/client.js');
      xs = await XenstoreClient.connect(env, { retryForMs: HOOK_XENSTORE_RETRY_MS });
      return xs;
    },
    netlink: async () => {
      const { NetlinkClient } = await import('../bridge/nl/client.js');
      const client = new NetlinkClient();
      nl = client;
      return client;
    },
    firewall: async (l) => (env['XENNET_FIREWALL'] === 'off' ? (await import('./vif-firewall.js')).noFirewall : (await import('../firewall/hook-firewall.js')).createHookFirewall(env, l)),
  };
  try {
    return await runVifCall(argv, services, { env, log, deadline, mark, elapsed: () => performance.now(), onReported: noteReported, followRenames: true, via: 'in-process' });
  } finally {
    xs?.close();
    nl?.close();
  }
}
