/**
 * The bridge commands as plain functions over a real netlink client: what both the CLI
 * (`xennet bridge ...`) and xend's network-script (`network-xennet ...`) call.
 */
import type { Logger } from '../sys/log.js';
import { lockHolder } from '../sys/lock.js';
import { journalPath, lockPath, readJournalOfThisBoot, recordedSpecs } from './journal.js';
import { NetlinkClient } from './nl/client.js';
import { buildBridgeStatus, type BridgeStatus } from './status.js';
import { bridgeStart, bridgeStop, type StartOptions, type StopOptions, type TakeoverResult } from './takeover.js';
import { resolveTakeoverSpec, type TakeoverArgs } from './takeover-plan.js';

async function withClient<T>(fn: (client: NetlinkClient) => Promise<T>): Promise<T> {
  const client = new NetlinkClient();
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

export function startBridge(args: TakeoverArgs, log: Logger, options: StartOptions = {}): Promise<TakeoverResult> {
  return withClient((client) => bridgeStart(args, { client, log }, options));
}

export function stopBridge(args: TakeoverArgs, log: Logger, options: StopOptions = {}): Promise<TakeoverResult> {
  return withClient((client) => bridgeStop(args, { client, log }, options));
}

export function bridgeStatus(args: TakeoverArgs): Promise<BridgeStatus> {
  return withClient(async (client) => {
    const host = await client.readHost();
    const spec = resolveTakeoverSpec(args, host, recordedSpecs(), 'inspect');
    const path = journalPath(spec.bridge);
    // A journal of an earlier boot describes links that are gone: the next start or stop discards it.
    const { journal, earlierBoot } = readJournalOfThisBoot(path);
    return buildBridgeStatus(spec, host, journal, path, earlierBoot ? path : null, lockHolder(lockPath(spec.bridge)) ?? null);
  });
}

/** One line per outcome, as `start`/`stop` print it. */
export function describeTakeoverResult(r: TakeoverResult): string[] {
  const lines: string[] = [];
  if (r.repaired) lines.push(r.repaired);
  switch (r.action) {
    case 'started':
      lines.push(`${r.spec.bridge}: took over ${r.spec.netdev} (NIC now ${r.spec.pdev}, host side ${r.spec.netdev} via ${r.spec.vif0}) in ${r.steps.length} steps`);
      break;
    case 'stopped':
      lines.push(`${r.spec.bridge}: restored ${r.spec.netdev} as it was before the takeover (${r.steps.length} steps)`);
      break;
    case 'already-started':
      lines.push(`${r.spec.bridge}: already took over ${r.spec.netdev}; nothing to do`);
      break;
    case 'not-started':
      lines.push(`${r.spec.bridge}: ${r.spec.netdev} is not taken over; nothing to do`);
      break;
    case 'repaired':
      lines.push(`${r.spec.bridge}: the host is back in its original layout`);
      break;
    case 'would-start':
    case 'would-stop':
      lines.push(
        r.action === 'would-start'
          ? `dry run: ${r.spec.bridge} would take over ${r.spec.netdev} (NIC renamed ${r.spec.pdev}, host side ${r.spec.netdev} via ${r.spec.vif0}) in ${r.steps.length} steps; nothing was changed:`
          : `dry run: ${r.spec.bridge} would restore ${r.spec.netdev} in ${r.steps.length} steps; nothing was changed:`,
      );
      r.steps.forEach((step, i) => lines.push(`  ${String(i + 1).padStart(3)}. ${step}`));
      break;
  }
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines;
}
