/** Gathers the host's live vifs (netlink + xenstore) for `plan`, `apply` and `status`. */
import { NetlinkClient } from '../bridge/nl/client.js';
import type { LinkState } from '../bridge/model.js';
import { reasonOf } from '../sys/errors.js';
import { XenstoreClient } from '../xenstore/client.js';
import { discoverVifs, type DiscoveredVif } from './discover.js';

export interface HostFacts {
  links: LinkState[];
  vifs: DiscoveredVif[];
  xenstore: string | null;
  warnings: string[];
}

export async function gatherHostFacts(env: NodeJS.ProcessEnv = process.env): Promise<HostFacts> {
  const nl = new NetlinkClient();
  let xs: XenstoreClient | undefined;
  const warnings: string[] = [];
  try {
    const links = await nl.listLinks();
    try {
      xs = await XenstoreClient.connect(env);
    } catch (e) {
      warnings.push(`xenstore is not reachable (${reasonOf(e)}): domain names, MACs and addresses come from the rule file only`);
    }
    // Links a hook has firewalled but not attached yet are live too (their rules must stay).
    const { loadIndex } = await import('./store.js');
    const { silentLogger } = await import('../sys/log.js');
    const recorded = new Map(Object.entries(loadIndex(env, silentLogger).index.vifs).map(([n, e]) => [n, e.bridge]));
    const found = await discoverVifs(links, xs, recorded);
    return { links, vifs: found.vifs, xenstore: xs?.endpoint ?? null, warnings: [...warnings, ...found.warnings] };
  } finally {
    xs?.close();
    nl.close();
  }
}
