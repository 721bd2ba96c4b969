/**
 * Entry of hooks-bin/vif-xennet, the vif-script the Xen toolstack runs for every guest network
 * interface. Kept lean (no CLI framework, lazy imports). Every failure path writes
 * `hotplug-error` and `hotplug-status = error` (in one transaction) and exits 1, so the toolstack
 * never waits out its timeout.
 */
import { performance } from 'node:perf_hooks';
import { XennetError, reasonOf } from '../sys/errors.js';
import { createLogger, type Logger } from '../sys/log.js';
import type { XenstoreClient } from '../xenstore/client.js';
import { backendPathFromEnv, parseVifCall, type VifHookInput } from './vif-input.js';

function sentence(e: unknown): string {
  if (e instanceof XennetError) return e.hint ? `${e.message} (${e.hint})` : e.message;
  return reasonOf(e);
}

/** hotplug-error + hotplug-status=error, atomically. */
export async function reportError(xs: XenstoreClient, backendPath: string, message: string): Promise<void> {
  await xs.transaction(async (tx) => {
    await tx.write(`${backendPath}/hotplug-error`, message);
    await tx.write(`${backendPath}/hotplug-status`, 'error');
  });
}

/** XENNET_TIMING=1: phase timings (ms since process start) on stderr, for benchmarks. */
const marks: [string, number][] = [];
export function mark(what: string): void {
  if (process.env['XENNET_TIMING'] === '1') marks.push([what, performance.now()]);
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, log: Logger = createLogger({ tag: 'vif-xennet', syslog: env['XENNET_SYSLOG'] !== '0' })): Promise<number> {
  mark('main');
  try {
    return await mainInner(argv, env, log);
  } finally {
    mark('end');
    if (marks.length > 0) process.stderr.write(`vif-xennet timing: ${marks.map(([w, t]) => `${w}=${t.toFixed(0)}`).join(' ')}\n`);
  }
}

async function mainInner(argv: readonly string[], env: NodeJS.ProcessEnv, log: Logger): Promise<number> {
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
    const deps: Parameters<typeof run.vifOnline>[1] = { xs, nl: client, firewall: fw, log, mark };
    if (env['XENNET_HOTPLUG_LOCK_DIR']) deps.lockDir = env['XENNET_HOTPLUG_LOCK_DIR'];
    const outcome = online ? await run.vifOnline(input, deps) : await run.vifOffline(input, deps);
    log.info(`${outcome.summary} in ${Math.round(performance.now())} ms`);
    return 0;
  } catch (e) {
    const message = sentence(e);
    log.err(`${input ? `${input.command} ${input.device}: ` : ''}${message}`);
    if (backendPath) {
      try {
        if (!xs) {
          const { XenstoreClient } = await import('../xenstore/client.js');
          xs = await XenstoreClient.connect(env);
        }
        await reportError(xs, backendPath, message);
      } catch (e2) {
        log.err(`could not write hotplug-status=error to ${backendPath}: ${reasonOf(e2)}`);
      }
    }
    return 1;
  } finally {
    xs?.close();
    nl?.close();
  }
}
