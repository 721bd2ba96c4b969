/** The guest firewall as the vif hook uses it (rule file + xenstore facts -> this vif's chains). */
import { watch, type FSWatcher } from 'node:fs';
import type { FirewallTarget, PreparedFirewall, VifFirewall } from '../hooks/vif-firewall.js';
import { HookFailure, type VifConfig } from '../hooks/vif-plan.js';
import type { IfName } from '../net/index.js';
import type { Logger } from '../sys/log.js';
import { rulesSource } from '../config/paths.js';
import { cachedPolicy } from '../config/policy-cache.js';
import type { ConfigError } from '../config/load.js';
import type { PolicyFile } from '../config/schema.js';
import type { Backend } from './backend.js';
import { installedBackend } from './engine.js';
import { commitStaged, stageInstall, stageRemove, type CommitResult } from './commit.js';
import { compileVif, memberFacts } from './compile.js';
import { enableBridgeNetfilter } from './host.js';
import type { VifFacts } from './model.js';
import { resolveVif } from './resolve.js';
import { learnedAddressesByVif, withLearningAvailability } from './learning/state.js';
import { describeIdentity } from './domain-identity.js';
import { bridgeOfPort } from '../sys/sysfs.js';
import { findStagedInstall, recordedEntry, fingerprintOf, isStaged, loadIndex, pendingDir, unstage, type IndexEntry, type MemberFacts, type StagedChange } from './store.js';

/** The backend of what is installed (a hook never switches backends: `xennet apply` does). */
const backendFor = (env: NodeJS.ProcessEnv, log: Logger, policy?: PolicyFile): Promise<Backend> => installedBackend(env, log, policy);

export function factsFromConfig(cfg: VifConfig, bridge: IfName): VifFacts {
  const facts: VifFacts = {
    name: cfg.name,
    bridge,
    domid: cfg.domid,
    devid: cfg.devid,
    ipv4: cfg.ips.filter((a) => a.family === 'ipv4'),
    ipv6: cfg.ips.filter((a) => a.family === 'ipv6'),
  };
  if (cfg.domainName !== undefined) facts.domain = cfg.domainName;
  facts.identity = cfg.identity;
  facts.namesKey = cfg.namesKey;
  if (cfg.mac !== undefined) facts.mac = cfg.mac;
  return facts;
}

function isConfigError(e: unknown): e is ConfigError {
  return e instanceof Error && Array.isArray((e as Partial<ConfigError>).problems);
}

/** The index's entry for `name` if it records `token` (read only, no repair). */
function entryWithToken(name: string, token: string, env: NodeJS.ProcessEnv): { state?: unknown } | undefined {
  const e = recordedEntry(name, env);
  return e?.token === token ? e : undefined;
}

/** Whether `token` is the confirmed install of `name`. */
const confirmed = (name: string, token: string, env: NodeJS.ProcessEnv): boolean => entryWithToken(name, token, env)?.state === 'installed';
/** Whether a commit of `token` has started (written ahead) or finished. */
const recorded = (name: string, token: string, env: NodeJS.ProcessEnv): boolean => entryWithToken(name, token, env) !== undefined;

/** Where the hook firewall gets the policy: by default the rule file (through its cache). */
export type PolicySource = () => Promise<{ policy: PolicyFile; kept?: { problem: string; since?: string } }>;

export interface HookFirewallOptions {
  /**
   * A resident committer (the daemon): removals are staged and committed by it shortly after,
   * under the hotplug lock, instead of by the caller (`removeSoon`). `full`: read the live rules.
   */
  commitSoon?: (full: boolean) => void;
}

/** Commits every staged change of a live stager (the caller holds the hotplug lock). */
export async function commitAllStaged(env: NodeJS.ProcessEnv, log: Logger, full: boolean): Promise<CommitResult> {
  const backend = await backendFor(env, log);
  enableBridgeNetfilter(backend.engine, env);
  return commitStaged(backend, env, log, { full });
}

export function createHookFirewall(env: NodeJS.ProcessEnv, log: Logger, policySource?: PolicySource, options: HookFirewallOptions = {}): VifFirewall {
  const policyOf: PolicySource = policySource ?? (() => cachedPolicy(rulesSource(undefined, env), env));
  /**
   * Stages the removal of a guest interface's rules: the names it provably had and what the index
   * records under its owner, never another guest's, never a port still on a bridge.
   */
  const stageRemoval = (target: FirewallTarget): { tokens: Set<string>; full: boolean; known: boolean } | undefined => {
    const { index } = loadIndex(env, log);
    const names = new Set<IfName>();
    const unknown = new Set<IfName>();
    const sameOwner = (o: { domid: number; devid: number } | undefined): boolean => o !== undefined && o.domid === target.domid && o.devid === target.devid;
    for (const n of target.names) {
      const e = Object.hasOwn(index.vifs, n) ? index.vifs[n] : undefined;
      if (!e) unknown.add(n);
      else if (!e.owner || sameOwner(e.owner)) names.add(n);
      else log.warning(`not removing the rules of ${n}: xennet installed them for domain ${e.owner.domid} device ${e.owner.devid}`);
    }
    for (const [n, e] of Object.entries(index.vifs)) if (sameOwner(e.owner)) names.add(n as IfName);
    // Known under one of its names: the others have no rules of ours.
    if (names.size > 0) unknown.clear();
    if (names.size === 0 && unknown.size === 0) return undefined;
    // Never the rules of a port still on a bridge: that would leave it there unfiltered.
    const attached = [...names, ...unknown].map((n) => [n, bridgeOfPort(n)] as const).filter(([, b]) => b !== undefined);
    if (attached.length > 0) {
      throw new HookFailure(`${attached.map(([n, b]) => `${n} is still attached to ${b}`).join('; ')}: its firewall rules stay in place`, 'detach it first (offline of the guest that owns it), then run offline again');
    }
    const recordedNow = (n: IfName): IndexEntry | undefined => (Object.hasOwn(index.vifs, n) ? index.vifs[n] : undefined);
    return { tokens: new Set([...names, ...unknown].map((n) => stageRemove(n, env, recordedNow(n)?.token, recordedNow(n)?.owner).token)), full: unknown.size > 0, known: names.size > 0 };
  };
  return {
    async prepare(cfg, bridge): Promise<PreparedFirewall> {
      let loaded;
      try {
        loaded = await policyOf();
      } catch (e) {
        if (isConfigError(e)) {
          // A whole-file problem (missing where named, unreadable, empty) has no position.
          const whole = e.problems.length === 1 && e.problems[0]!.line === 0;
          throw new HookFailure(
            whole ? `${e.message}, so ${cfg.name} cannot be firewalled` : `the rule file is invalid, so ${cfg.name} cannot be firewalled: ${e.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.path}: ${p.message}`).join('; ')}`,
            whole ? `${e.hint ?? 'fix it'}; then start the guest again` : 'fix it (`xennet check`) and start the guest again',
          );
        }
        throw e;
      }
      if (loaded.kept) log.warning(`rule file ${rulesSource(undefined, env).file} cannot be used (${loaded.kept.problem}); the last good policy${loaded.kept.since ? ` (validated ${loaded.kept.since})` : ''} stays in force, as the daemon keeps it`);
      const backendOfPrepare = await backendFor(env, log, loaded.policy);
      const resolved = resolveVif(loaded.policy, withLearningAvailability([factsFromConfig(cfg, bridge)], backendOfPrepare.engine.kind)[0]!);
      // A learning guest's recorded bindings (the xtables backend makes its ARP and NA rules from
      // them), read only for a guest that learns, and only its own.
      if (resolved.learning) resolved.learned = learnedAddressesByVif(env, cfg.name, Date.now(), () => cfg.domid).get(cfg.name) ?? { ipv4: [], ipv6: [] };
      const chains = compileVif(resolved, backendOfPrepare.engine);
      const m: MemberFacts = { ...memberFacts(resolved), bridge };
      const owner = { domid: cfg.domid, devid: cfg.devid };
      const addrs = resolved.ipv4.length + resolved.ipv6.length;
      let change: StagedChange | undefined;
      /** Whether `change` is another stager's identical change (the daemon preparing this vif). */
      let adopted = false;
      const fingerprint = fingerprintOf(m, owner, chains, cfg.namesKey);
      const restage = (): StagedChange => {
        adopted = false;
        return (change = stageInstall(cfg.name, m, chains, owner, cfg.namesKey, env));
      };
      const installed = (): boolean => {
        const { index, recovered } = loadIndex(env, log);
        const e = Object.hasOwn(index.vifs, cfg.name) ? index.vifs[cfg.name] : undefined;
        return !recovered && !index.dirty && e?.state === 'installed' && e.fingerprint === fingerprint;
      };
      return {
        installed,
        settle: async () => {
          try {
            const r = await commitStaged(backendOfPrepare, env, log);
            if (r.batch > 0) log.debug(`committed ${r.batch} staged vif changes of others`);
          } catch (e) {
            log.warning(`committing the changes others staged failed (${e instanceof Error ? e.message : String(e)}); installing ${cfg.name}'s rules again`);
            return false;
          }
          return installed();
        },
        summary: `firewall: ${resolved.guest ? `rule file guest ${resolved.guest}` : 'defaults'}${resolved.nameSource !== 'name' && resolved.policyName ? ` (name ${resolved.policyName}: ${describeIdentity({ source: resolved.nameSource, ...(resolved.target !== undefined ? { target: resolved.target } : {}) })})` : ''}, ${addrs} address${addrs === 1 ? '' : 'es'}, inbound ${resolved.inbound}, outbound ${resolved.outbound}`,
        warnings: resolved.warnings,
        stage: () => {
          const other = findStagedInstall(cfg.name, fingerprint, env);
          adopted = other !== undefined;
          change = other ?? restage();
        },
        committedByOthers: (signal) =>
          new Promise<void>((resolve) => {
            if (!change) return;
            const token = change.token;
            let watcher: FSWatcher | undefined;
            const stop = (): void => {
              clearInterval(poll);
              watcher?.close();
            };
            const check = (): void => {
              if (isStaged(token, env) || !confirmed(cfg.name, token, env)) return;
              stop();
              resolve();
            };
            // The committer removes the staged file after confirming the index: watch for that
            // (and poll, in case the watch misses it).
            const poll = setInterval(check, 500);
            try {
              watcher = watch(pendingDir(env), check);
              watcher.on('error', () => undefined);
            } catch {
              /* polling only */
            }
            signal.addEventListener('abort', stop, { once: true });
          }),
        commit: async (options = {}) => {
          const backend = backendOfPrepare;
          enableBridgeNetfilter(backend.engine, env);
          const token = (change ?? restage()).token;
          if (isStaged(token, env)) {
            try {
              const r = await commitStaged(backend, env, log);
              if (r.batch > 1) log.debug(`committed ${r.batch} staged vif changes in one transaction`);
            } catch (e) {
              // Another stager's change may be what the kernel rejects: try ours alone.
              if (!isStaged(token, env)) throw e;
              log.warning(`committing the staged batch failed (${e instanceof Error ? e.message : String(e)}); trying ${cfg.name} alone`);
              await commitStaged(backend, env, log, { only: new Set([token]) });
            }
          }
          if (!confirmed(cfg.name, token, env)) {
            // Superseded by a newer install of the same name (the hook's own, while this was a
            // prepare waiting for the lock): never put older rules back over it.
            if (options.superseded === 'yield') return false;
            // Our staged change was discarded (unreadable?): stage it again and commit it alone.
            const again = restage();
            await commitStaged(backend, env, log, { only: new Set([again.token]) });
            if (!confirmed(cfg.name, again.token, env)) throw new HookFailure(`the firewall change for ${cfg.name} was not recorded as committed`);
          }
          return true;
        },
        unstage: () => {
          if (!change) return 'withdrawn';
          if (adopted) return 'maybe-committed'; // another stager's change: theirs to take back
          const wasStaged = unstage(change.token, env);
          return wasStaged && !recorded(cfg.name, change.token, env) ? 'withdrawn' : 'maybe-committed';
        },
      };
    },
    async remove(target) {
      const staged = stageRemoval(target);
      if (!staged) return false;
      const backend = await backendFor(env, log);
      enableBridgeNetfilter(backend.engine, env);
      // Names the index does not know may still have live rules (an index lost, a commit killed
      // before its write-ahead): only the live rules can tell, so read them.
      await commitStaged(backend, env, log, { only: staged.tokens, full: staged.full });
      return staged.known;
    },
    ...(options.commitSoon
      ? {
          removeSoon: async (target: FirewallTarget) => {
            const staged = stageRemoval(target);
            if (!staged) return false;
            options.commitSoon!(staged.full);
            return staged.known;
          },
        }
      : {}),
  };
}
