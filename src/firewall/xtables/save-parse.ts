/**
 * Parses `iptables-save`, `ip6tables-save` and `ebtables-save` output (one format serves all:
 * `*table`, `:CHAIN POLICY`, `-A CHAIN rule`, `COMMIT`; counters as `[p:b] -A ...` for iptables
 * `-c`, `... -c p b` for ebtables) into xennet's owned chains, the root jumps into them, and the
 * built-in and foreign chains around them (kept, never touched, but read: a rule of someone
 * else's above xennet's jump can let a guest's packets skip its rules).
 */
import { kernelTable, type BuiltinChain, type XtablesTable } from '../model.js';
import { isOwnedChain } from '../names.js';
import { emptyLive, type Counter, type LiveTable } from '../live.js';

const rootChains = new Set<string>(['FORWARD', 'INPUT', 'PREROUTING']);

/** Parses save output; `table` picks the `*filter` or `*nat` section (ebtables nat: `ebnat`). */
export function parseSave(text: string, table: XtablesTable | 'filter' | 'mangle' | 'raw' = 'filter'): LiveTable {
  const section = table === 'filter' || table === 'mangle' || table === 'raw' ? table : kernelTable(table);
  const live = emptyLive();
  let inTable = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      inTable = line.slice(1) === section;
      continue;
    }
    if (!inTable) continue;
    if (line === 'COMMIT') {
      inTable = false;
      continue;
    }
    if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(/\s+/);
      if (!name) continue;
      if (isOwnedChain(name)) {
        if (!live.chains.has(name)) live.chains.set(name, []);
        if (!live.counters.has(name)) live.counters.set(name, []);
      } else {
        if (policy && policy !== '-') live.policies.set(name, policy);
        if (isBuiltin(name)) {
          if (!live.builtins.has(name)) live.builtins.set(name, []);
        } else if (!live.foreign.has(name)) {
          live.foreign.set(name, []);
        }
      }
      continue;
    }
    let rest = line;
    let counter: Counter | undefined;
    const pre = /^\[(\d+):(\d+)\]\s+/.exec(rest);
    if (pre) {
      counter = { packets: Number(pre[1]), bytes: Number(pre[2]) };
      rest = rest.slice(pre[0].length);
    }
    const post = /\s+-c\s+(\d+)\s+(\d+)$/.exec(rest);
    if (post) {
      counter = { packets: Number(post[1]), bytes: Number(post[2]) };
      rest = rest.slice(0, post.index);
    }
    const m = /^-A\s+(\S+)\s*(.*)$/.exec(rest);
    if (!m) continue;
    const chain = m[1]!;
    const rule = m[2]!;
    if (isOwnedChain(chain)) {
      if (!live.chains.has(chain)) live.chains.set(chain, []);
      live.chains.get(chain)!.push(rule);
      if (!live.counters.has(chain)) live.counters.set(chain, []);
      live.counters.get(chain)!.push(counter ?? { packets: 0, bytes: 0 });
      continue;
    }
    if (isBuiltin(chain)) {
      if (!live.builtins.has(chain)) live.builtins.set(chain, []);
      live.builtins.get(chain)!.push(rule);
      if (rootChains.has(chain) && /-[jg]\s+XN-\S+$/.test(rule)) live.roots.push({ chain: chain as BuiltinChain, rule });
      else live.foreignRules++;
      continue;
    }
    if (!live.foreign.has(chain)) live.foreign.set(chain, []);
    live.foreign.get(chain)!.push(rule);
  }
  return live;
}

function isBuiltin(name: string): boolean {
  return ['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING', 'BROUTING'].includes(name);
}
