/**
 * Which backend the firewall compiles to, and with which kernel features.
 *
 *   - `xennet apply` (and `plan`, `status`) follow the rule file's `backend:`, else the
 *     environment's XENNET_BACKEND (apply moves the whole firewall there); else the backend the
 *     firewall is installed on (a host keeps it until one of those names another); else, on a
 *     host with nothing installed, nftables where it works here, xtables where it does not.
 *   - Hooks and the daemon keep what is installed (the index records it; without a record, the
 *     presence of `bridge xennet` tells) until an apply moves it: a hook never switches backends
 *     for one guest.
 *
 * The nftables backend's source of connection state is probed in the kernel, never assumed.
 */
import type { PolicyFile } from '../config/schema.js';
import { usageError } from '../sys/errors.js';
import type { Logger } from '../sys/log.js';
import type { Backend, TableIo } from './backend.js';
import { detectVariant, xtablesChainsPresent, xtablesIo } from './xtables/backend.js';
import { nftablesIo, ownBridgeTablePresent, probeBridgeConntrack } from './nftables/backend.js';
import { driverFor, parseLive } from './drivers.js';
import { dialectOf, isXtables, XTABLES, type BackendKind, type Engine, type TableName } from './model.js';
import { countersOfRecorded } from './counter-match.js';
import { loadIndex, type FirewallIndex, type LoadedIndex } from './store.js';

/** The backend the rule file's `backend:` or else XENNET_BACKEND names; undefined when neither does. */
export function namedKind(policy: Pick<PolicyFile, 'backend'> | undefined, env: NodeJS.ProcessEnv): BackendKind | undefined {
  if (policy?.backend) return policy.backend;
  const fromEnv = env['XENNET_BACKEND'];
  if (fromEnv === undefined || fromEnv === '') return undefined;
  if (fromEnv === 'xtables' || fromEnv === 'nftables') return fromEnv;
  throw usageError(`XENNET_BACKEND=${JSON.stringify(fromEnv).slice(1, -1)} is not xtables or nftables`);
}

/**
 * The backend the index says the firewall is installed on (a record from before the nftables
 * backend with guests in it: xtables), or was on before this boot.
 */
export function recordedKind({ index, recovered, lastKind }: LoadedIndex): BackendKind | undefined {
  if (recovered) return lastKind;
  return index.engine?.kind ?? (Object.keys(index.vifs).length > 0 ? 'xtables' : undefined);
}

/** The backend of a host where nothing names one and nothing is installed: nftables where it works here. */
export async function defaultKind(): Promise<BackendKind> {
  return (await driverFor(PREFERRED_KIND).compat()) === undefined ? PREFERRED_KIND : 'xtables';
}

/**
 * The backend to install: named (rule file, XENNET_BACKEND), else the one installed (recorded,
 * else what the kernel holds of xennet's: a host whose record was lost keeps its backend), else
 * the default.
 */
export async function selectedKind(policy: Pick<PolicyFile, 'backend'> | undefined, env: NodeJS.ProcessEnv, loaded: LoadedIndex): Promise<BackendKind> {
  return namedKind(policy, env) ?? recordedKind(loaded) ?? (await kernelKind()) ?? (await defaultKind());
}

/** The backend xennet's rules in the kernel are on, if any (its own bridge table, or its chains in iptables' filter table). */
async function kernelKind(): Promise<BackendKind | undefined> {
  if (await ownBridgeTablePresent()) return 'nftables';
  if (await xtablesChainsPresent()) return 'xtables';
  return undefined;
}

/** The backend a host where nothing is installed gets where it can run (defaultKind), and what an offline plan shows. */
export const PREFERRED_KIND: BackendKind = 'nftables';

/** The engine of a kind without probing the kernel (an offline plan): nftables with connection state from a mark, which works on every kernel. */
export const unprobedEngine = (kind: BackendKind): Engine => (kind === 'xtables' ? XTABLES : { kind, conntrack: 'mark' });

/** The engine of a backend kind: the recorded one when it is of that kind (same boot), else probed. */
export async function engineOf(kind: BackendKind, recorded?: Engine): Promise<Engine> {
  if (kind === 'xtables') return XTABLES;
  if (recorded?.kind === 'nftables') return recorded;
  return { kind: 'nftables', conntrack: await probeBridgeConntrack() };
}

/**
 * The engine installed: recorded; else xtables when the record is from a version before the
 * nftables backend (guests recorded, no engine); else seen in the kernel (`bridge xennet`, or
 * xennet's chains in iptables' filter table); else what the rule file selects, the backend a
 * record from before names, or the default (nothing is installed yet).
 */
export async function installedEngine(env: NodeJS.ProcessEnv, log: Logger, policy?: Pick<PolicyFile, 'backend'>, loaded: LoadedIndex = loadIndex(env, log)): Promise<Engine> {
  const { index, recovered } = loaded;
  if (!recovered && index.engine) return index.engine;
  if (!recovered && Object.keys(index.vifs).length > 0) return XTABLES;
  // What the kernel holds decides before any default: a hook never starts a second backend.
  const inKernel = await kernelKind();
  if (inKernel) return engineOf(inKernel);
  return engineOf(namedKind(policy, env) ?? recordedKind(loaded) ?? (await defaultKind()));
}

/** The iptables variant: forced (XENNET_IPTABLES), recorded, else detected. */
export async function iptablesVariantFor(env: NodeJS.ProcessEnv, log: Logger, index: FirewallIndex = loadIndex(env, log).index): Promise<'nft' | 'legacy'> {
  const forced = env['XENNET_IPTABLES'];
  if (forced === 'nft' || forced === 'legacy') return forced;
  const recorded = index.backend;
  if (!forced && (recorded === 'nft' || recorded === 'legacy')) return recorded;
  return detectVariant(env);
}

/** Every table's reader and writer (each from the driver that owns it), for this engine in use. */
export async function backendWith(engine: Engine, env: NodeJS.ProcessEnv, log: Logger, index?: FirewallIndex): Promise<Backend> {
  const variant = await iptablesVariantFor(env, log, index);
  const xt = xtablesIo(variant, engine);
  const io: Record<TableName, TableIo> = { ...xt.tables, nftables: nftablesIo };
  return {
    variant,
    engine,
    save: (table, options) => io[table].save(options),
    readKnown: async (table, desired) => io[table].readKnown?.(desired),
    async chainCounters(table, recorded) {
      const native = await io[table].chainCounters?.(recorded);
      if (native) return native;
      const live = parseLive(await io[table].save({ counters: true }), table);
      return new Map([...recorded].map(([c, rules]) => [c, countersOfRecorded(rules, live.chains.get(c) ?? [], live.counters.get(c) ?? [], dialectOf(table))] as const));
    },
    restore: (table, text) => io[table].restore(text),
    saveOther: xt.saveOther,
    dropEmptyTable: async (table) => isXtables(table) && xt.dropEmptyTable(table),
  };
}

/** The backend of what is installed (hooks, the daemon), from one read of the index. */
export async function installedBackend(env: NodeJS.ProcessEnv, log: Logger, policy?: Pick<PolicyFile, 'backend'>): Promise<Backend> {
  const loaded = loadIndex(env, log);
  return backendWith(await installedEngine(env, log, policy, loaded), env, log, loaded.index);
}
