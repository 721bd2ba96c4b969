/** The guest firewall as the vif hook uses it (rule file + xenstore facts -> this vif's chains). */
import type { PreparedFirewall, VifFirewall } from '../hooks/vif-firewall.js';
import { HookFailure, type VifConfig } from '../hooks/vif-plan.js';
import type { IfName } from '../net/index.js';
import type { Deadline } from '../sys/deadline.js';
import type { Logger } from '../sys/log.js';
import { rulesPath } from '../config/paths.js';
import { cachedPolicy } from '../config/policy-cache.js';
import type { ConfigError } from '../config/load.js';
import { xtablesBackend, detectVariant, type Backend } from './backend/xtables.js';
import { compileVif, treeMember } from './compile.js';
import { enableBridgeNetfilter } from './host.js';
import { commitPending, installVif, removeVif, stageInstall } from './incremental.js';
import { readIndex } from './index-store.js';
import type { VifFacts } from './model.js';
import { resolveVif } from './resolve.js';

async function backendFor(env: NodeJS.ProcessEnv): Promise<Backend> {
  const recorded = readIndex(env).backend;
  const variant = env['XENNET_IPTABLES'] || (recorded === 'nft' || recorded === 'legacy' ? recorded : undefined);
  return xtablesBackend(variant === 'nft' || variant === 'legacy' ? variant : await detectVariant(env));
}

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
  if (cfg.mac !== undefined) facts.mac = cfg.mac;
  return facts;
}

function isConfigError(e: unknown): e is ConfigError {
  return e instanceof Error && Array.isArray((e as Partial<ConfigError>).problems);
}

export function createHookFirewall(env: NodeJS.ProcessEnv, log: Logger, _deadline?: Deadline): VifFirewall {
  return {
    async prepare(cfg, bridge): Promise<PreparedFirewall> {
      let loaded;
      try {
        loaded = await cachedPolicy(rulesPath(undefined, env), env);
      } catch (e) {
        if (isConfigError(e)) throw new HookFailure(`the rule file is invalid, so ${cfg.name} cannot be firewalled: ${e.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.path}: ${p.message}`).join('; ')}`, 'fix it (`xennet check`) and start the guest again');
        throw e;
      }
      const resolved = resolveVif(loaded.policy, factsFromConfig(cfg, bridge));
      const chains = compileVif(resolved);
      const addrs = resolved.ipv4.length + resolved.ipv6.length;
      let token: string | undefined;
      return {
        summary: `firewall: ${resolved.guest ? `rule file guest ${resolved.guest}` : 'defaults'}, ${addrs} address${addrs === 1 ? '' : 'es'}, inbound ${resolved.inbound}, outbound ${resolved.outbound}`,
        warnings: resolved.warnings,
        stage: () => {
          token = stageInstall(treeMember(resolved), chains, env);
        },
        install: async () => {
          enableBridgeNetfilter();
          const backend = await backendFor(env);
          if (token === undefined) await installVif(backend, treeMember(resolved), chains, env, log);
          else {
            const { batch } = await commitPending(backend, token, env, log);
            if (batch > 1) log.debug(`committed ${batch} staged vif changes in one transaction`);
          }
        },
      };
    },
    async remove(target) {
      const backend = await backendFor(env);
      let any = false;
      for (const name of target.names) if (await removeVif(backend, name, env, log)) any = true;
      return any;
    },
  };
}
