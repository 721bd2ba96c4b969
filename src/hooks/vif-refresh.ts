/**
 * Following a domain's renames: a guest's policy is resolved from its name, but a name can change
 * while its vifs stay up (`xl rename`; xl's live migration renames `<name>--incoming` to `<name>`
 * once the guest runs here, and `<name>` to `<name>--migratedaway` on the host it left). No hook
 * runs then. This finds the attached vifs whose domain's names differ from the ones their rules
 * were resolved from (recorded in the firewall index) and installs their new policy: the daemon
 * on a xenstore watch of those names, a hook running without the daemon after its own work, and
 * `xennet apply` always (it resolves every vif afresh).
 */
import type { LinkState } from '../bridge/model.js';
import { namesKey, readDomainNames } from '../firewall/domain-identity.js';
import { loadIndex } from '../firewall/store.js';
import { xenVifName, type IfName } from '../net/index.js';
import { Deadline } from '../sys/deadline.js';
import { acquireHotplugLock, type HotplugLockOptions } from '../sys/hotplug-lock.js';
import { reasonOf } from '../sys/errors.js';
import type { Logger } from '../sys/log.js';
import type { XenstoreClient } from '../xenstore/client.js';
import type { PreparedFirewall, VifFirewall } from './vif-firewall.js';
import type { VifHookInput } from './vif-input.js';
import { notOwnedReason, resolveVifConfig } from './vif-plan.js';
import { readNodes, type VifDeps } from './vif-run.js';

export interface RefreshDeps {
  xs: XenstoreClient;
  nl: Pick<VifDeps['nl'], 'getLink'>;
  firewall: VifFirewall;
  log: Logger;
  acquireLock?: VifDeps['acquireLock'];
  lockDir?: string;
  /** Told of each vif moved, with the names its rules were resolved from before. */
  onMoved?: (vif: string, namesBefore: string | undefined) => void;
}

interface Recorded {
  name: IfName;
  domid: number;
  devid: number;
  names?: string | undefined;
}

/**
 * Installs the current policy of every attached vif whose domain (`only`: of these domains) was
 * renamed since its rules were resolved. Returns the vifs it moved. Failures are logged and left
 * for the next look (or `xennet apply`): nothing here fails the caller.
 */
export async function followRenames(deps: RefreshDeps, env: NodeJS.ProcessEnv, deadline: Deadline, only?: ReadonlySet<number>): Promise<string[]> {
  const { index } = loadIndex(env, deps.log);
  const recorded: Recorded[] = [];
  for (const [name, e] of Object.entries(index.vifs)) {
    if (!e.owner || e.owner.domid <= 0 || e.state !== 'installed' || (only && !only.has(e.owner.domid))) continue;
    recorded.push({ name: name as IfName, domid: e.owner.domid, devid: e.owner.devid, names: e.names });
  }
  if (recorded.length === 0) return [];
  const domids = [...new Set(recorded.map((r) => r.domid))];
  // One read per domain: its name; a stub domain's target and the target's name only when its
  // rules were made from them (a target is written once, when libxl creates the stub domain).
  const stub = new Set(recorded.filter((r) => r.names !== undefined && !r.names.includes(',null,null]')).map((r) => r.domid));
  const keys = new Map(
    await Promise.all(
      domids.map(async (d) => {
        const names = stub.has(d) ? await readDomainNames(deps.xs, d) : { domid: d, name: await deps.xs.read(`/local/domain/${d}/name`) };
        return [d, namesKey(names)] as const;
      }),
    ),
  );
  const renamed = recorded.filter((r) => keys.get(r.domid) !== r.names && keys.get(r.domid) !== namesKey({ domid: r.domid }));
  if (renamed.length === 0) return [];
  return (await installCurrent(deps, env, deadline, renamed, 'its domain was renamed', (r) => deps.onMoved?.(r.name, r.names))).done;
}

/**
 * Installs the current policy of these attached vifs (the daemon, when a learning guest's
 * bindings changed on the xtables backend, whose ARP and NA rules are made from them). Returns
 * the vifs whose rules changed and those whose rules could not be installed (logged, as for
 * renames: the caller may try them again).
 */
export async function reinstallVifs(deps: RefreshDeps, env: NodeJS.ProcessEnv, deadline: Deadline, names: ReadonlySet<string>, why: string): Promise<{ done: string[]; failed: string[] }> {
  const { index } = loadIndex(env, deps.log);
  const recorded: Recorded[] = [];
  for (const [name, e] of Object.entries(index.vifs)) {
    if (!names.has(name) || !e.owner || e.owner.domid <= 0 || e.state !== 'installed') continue;
    recorded.push({ name: name as IfName, domid: e.owner.domid, devid: e.owner.devid, names: e.names });
  }
  if (recorded.length === 0) return { done: [], failed: [] };
  return installCurrent(deps, env, deadline, recorded, why);
}

async function installCurrent(deps: RefreshDeps, env: NodeJS.ProcessEnv, deadline: Deadline, recorded: readonly Recorded[], why: string, onDone?: (r: Recorded) => void): Promise<{ done: string[]; failed: string[] }> {
  // Under the hotplug lock, and only for what is still recorded and attached then: an offline
  // detaches its port first and removes its rules under the lock, so nothing of a guest that is
  // going away is put back.
  const lockOptions: HotplugLockOptions = { deadline: Deadline.in(deadline.slice(Number.POSITIVE_INFINITY, 2000)) };
  if (deps.lockDir !== undefined) lockOptions.dir = deps.lockDir;
  const held = await (deps.acquireLock ?? acquireHotplugLock)('iptables', lockOptions);
  const staged: { r: Recorded; fw: PreparedFirewall }[] = [];
  const failed: string[] = [];
  try {
    const now = loadIndex(env, deps.log).index.vifs;
    for (const r of recorded) {
      if (!Object.hasOwn(now, r.name) || now[r.name]!.state !== 'installed') continue;
      try {
        const fw = await prepareAttached(deps, r);
        if (fw && !fw.installed()) {
          fw.stage();
          staged.push({ r, fw });
        }
      } catch (e) {
        failed.push(r.name);
        deps.log.warning(`${r.name}: ${why}, but its new rules could not be prepared (${reasonOf(e)}); \`xennet apply\` installs them`);
      }
    }
    // The first commit takes every staged change in one transaction; the others find theirs done.
    const done: string[] = [];
    for (const { r, fw } of staged) {
      try {
        if (await fw.commit({ superseded: 'yield' })) {
          done.push(r.name);
          onDone?.(r);
        }
      } catch (e) {
        fw.unstage();
        failed.push(r.name);
        deps.log.warning(`${r.name}: ${why}, but its new rules could not be installed (${reasonOf(e)}); \`xennet apply\` installs them`);
      }
    }
    return { done, failed };
  } finally {
    held.release();
  }
}

/** The firewall of an attached guest interface, prepared from what xenstore says now. */
async function prepareAttached(deps: RefreshDeps, r: Recorded): Promise<PreparedFirewall | undefined> {
  const tap = r.name.endsWith('-emu');
  const device = xenVifName(r.domid, r.devid, tap);
  const input: VifHookInput = { command: 'online', typeIf: tap ? 'tap' : 'vif', device, envName: device, backendPath: `/local/domain/0/backend/vif/${r.domid}/${r.devid}`, domid: r.domid, devid: r.devid, vars: {} };
  const cfg = resolveVifConfig(input, await readNodes(deps.xs, input));
  if (cfg.name !== r.name) return undefined; // renamed by vifname since: its own hook decides
  const link: LinkState | undefined = await deps.nl.getLink(cfg.name);
  // Only a port that is provably this guest's and attached (a vif coming up is its hook's).
  if (!link?.master || notOwnedReason(cfg, link) !== undefined) return undefined;
  return deps.firewall.prepare(cfg, link.master as IfName);
}
