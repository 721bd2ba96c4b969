/**
 * Whether a packet of a guest can skip xennet's rules because of what sits in the built-in chain
 * before xennet's root jump (pure). Every table is read the same way: the rules above the jump
 * are walked in order; one that may match the guest's traffic and end its walk through the chain
 * with an accept (ACCEPT; RETURN or a goto where the chain's policy accepts; a jump into another
 * tool's chain that may accept; an ebtables target whose default verdict is ACCEPT) is a bypass.
 * Rules that provably cannot match (an interface match on another interface) are not.
 * A drop above the jump is not a bypass: it is stricter, not looser.
 */
import { dialectOf, tableLabel, type RootJump, type RuleDialect, type TableName } from './model.js';
import { isEbtables } from './model.js';
import type { LiveTable } from './live.js';

function tokens(rule: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(rule); m; m = re.exec(rule)) out.push(m[1] !== undefined ? `"${m[1]}"` : m[2]!);
  return out;
}

/** The rule's verb (-j/-g), its target and the value of an ebtables `--<x>-target` option. */
function targetOf(rule: string): { verb: '-j' | '-g'; target: string; ebTarget?: string } | undefined {
  const t = tokens(rule);
  let found: { verb: '-j' | '-g'; target: string; ebTarget?: string } | undefined;
  for (let i = 0; i < t.length; i++) {
    if ((t[i] === '-j' || t[i] === '--jump' || t[i] === '-g' || t[i] === '--goto') && t[i + 1]) found = { verb: t[i] === '-g' || t[i] === '--goto' ? '-g' : '-j', target: t[i + 1]! };
    if (found && /^--[a-z-]+-target$/.test(t[i]!) && t[i + 1]) found.ebTarget = t[i + 1]!;
  }
  return found;
}

/** Interface matches of the rule: option (-i/-o), value, negated. */
function ifaceMatches(rule: string): { opt: '-i' | '-o'; value: string; negated: boolean }[] {
  const t = tokens(rule);
  const out: { opt: '-i' | '-o'; value: string; negated: boolean }[] = [];
  for (let i = 0; i < t.length; i++) {
    const opt = t[i] === '-i' || t[i] === '--in-interface' ? '-i' : t[i] === '-o' || t[i] === '--out-interface' ? '-o' : undefined;
    if (!opt) continue;
    const before = t[i - 1] === '!';
    const after = t[i + 1] === '!';
    const value = after ? t[i + 2] : t[i + 1];
    if (value !== undefined) out.push({ opt, value, negated: before || after });
  }
  return out;
}

const matchesName = (pattern: string, name: string): boolean => (pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : pattern === name);

/** What the traffic behind a root jump looks like: the interface names it can carry. */
interface Scope {
  /** Names -i can take (undefined: any). */
  in?: string[];
  /** Names -o can take (undefined: any). */
  out?: string[];
}

function scopeOf(root: RootJump, table: TableName, guests: readonly string[]): Scope {
  if (isEbtables(table)) return root.chain === 'PREROUTING' ? { in: [...guests] } : { out: [...guests] };
  const m = /-[io]\s+(\S+)/.exec(root.rule);
  const bridge = m?.[1];
  if (!bridge) return {};
  // Bridged traffic in iptables carries the bridge as its in and out interface.
  return root.chain === 'FORWARD' ? { in: [bridge], out: [bridge] } : { in: [bridge] };
}

/** Whether the rule's interface matches rule it out for every packet of `scope`. */
function excluded(rule: string, scope: Scope): boolean {
  for (const m of ifaceMatches(rule)) {
    const names = m.opt === '-i' ? scope.in : scope.out;
    if (!names || names.length === 0) continue;
    const hits = names.filter((n) => matchesName(m.value, n));
    if (!m.negated && hits.length === 0) return true;
    if (m.negated && hits.length === names.length) return true;
  }
  return false;
}

const ebDefaultAccept = new Set(['mark', 'snat', 'dnat', 'redirect', 'arpreply']);

/**
 * Targets that do not end the walk through a chain (they log, mark, classify, ...): the rules
 * after them still run. Every other target ends it, and any that is not a drop may let the packet
 * through (NFQUEUE with --queue-bypass and no listener accepts; an unknown target is assumed to).
 */
const continuing = new Set(['LOG', 'NFLOG', 'ULOG', 'MARK', 'CONNMARK', 'CT', 'NOTRACK', 'TRACE', 'CLASSIFY', 'TCPMSS', 'DSCP', 'TOS', 'SET', 'AUDIT', 'CHECKSUM', 'SECMARK', 'CONNSECMARK', 'LED', 'IDLETIMER', 'HMARK', 'RATEEST', 'TEE', 'HL', 'TTL', 'ECN', 'CONTINUE', 'log', 'nflog', 'ulog']);

/** Whether a walk through `chain` (another tool's) may end with an accept, looking `depth` deep. */
function mayAccept(live: LiveTable, chain: string, table: TableName, depth: number, scope: Scope): boolean {
  if (depth > 8) return true;
  const rules = live.foreign.get(chain);
  if (!rules) return false; // xennet's own chains, or unknown: not another tool's accept
  // An ebtables user chain ends with its policy (RETURN unless set otherwise).
  if (isEbtables(table) && live.policies.get(chain) === 'ACCEPT') return true;
  return rules.some((r) => !excluded(r, scope) && verdictAccepts(live, r, table, depth + 1, scope, false));
}

function verdictAccepts(live: LiveTable, rule: string, table: TableName, depth: number, scope: Scope, inBuiltin: boolean, policy?: string): boolean {
  const t = targetOf(rule);
  if (!t) return false;
  const target = isEbtables(table) && ebDefaultAccept.has(t.target) ? (t.ebTarget ?? 'ACCEPT') : t.target;
  if (target === 'ACCEPT') return true;
  if (target === 'RETURN') return inBuiltin && policy !== 'DROP';
  if (target === 'DROP' || target === 'REJECT') return false;
  if (continuing.has(target)) return false;
  if (target.startsWith('XN-')) return false;
  if (live.foreign.has(target)) {
    // After a goto, falling off the other chain ends the built-in chain: its policy decides.
    if (t.verb === '-g' && inBuiltin && policy !== 'DROP') return true;
    return mayAccept(live, target, table, depth, scope);
  }
  return true; // NFQUEUE, QUEUE, TPROXY, anything unknown: may let the packet through
}

export interface Bypass {
  /** 1-based position in the built-in chain. */
  position: number;
  rule: string;
}

/** The first rule before `pos` (0-based) in the root's built-in chain that lets its traffic skip it. */
export function bypassBefore(live: LiveTable, table: TableName, root: RootJump, pos: number, guests: readonly string[]): Bypass | undefined {
  const rules = live.builtins.get(root.chain) ?? [];
  const policy = live.policies.get(root.chain);
  const scope = scopeOf(root, table, guests);
  for (let i = 0; i < Math.min(pos, rules.length); i++) {
    const r = rules[i]!;
    if (excluded(r, scope)) continue;
    if (verdictAccepts(live, r, table, 0, scope, true, policy)) return { position: i + 1, rule: r };
  }
  return undefined;
}

function rootTarget(r: RootJump): string {
  return /-[jg]\s+(\S+)$/.exec(r.rule)?.[1] ?? '?';
}

function rootScope(r: RootJump): string {
  const b = /-[io]\s+(\S+)/.exec(r.rule)?.[1];
  return b ? `bridge ${b}` : 'guest ports';
}

/** What a shared chain is: part of the identity guard, and a pseudo-chain of set elements (nftables). */
export interface SharedChainKind {
  guard: boolean;
  elements: boolean;
  /** What a damage to it breaks, when it is neither the guard nor the dispatch. */
  what?: string;
}

/**
 * Everything on the path of a guest's packet that lets it skip its rules, one line each: root
 * jumps missing or below a rule that accepts first, and shared chains (XN-FORWARD, the dispatch
 * trees, isolation) that are missing or differ. Per-vif chains are checked per vif by status.
 */
export function pathProblems(live: Record<TableName, LiveTable>, desired: Record<TableName, { chains: Map<string, string[]>; roots: RootJump[] }>, sameRules: (a: readonly string[], b: readonly string[], dialect: RuleDialect) => boolean, vifOfChain: (c: string) => string | undefined, kindOf: (t: TableName, chain: string) => SharedChainKind): string[] {
  const out: string[] = [];
  for (const t of Object.keys(desired) as TableName[]) {
    const l = live[t];
    const d = desired[t];
    const eb = dialectOf(t);
    const tool = tableLabel[t];
    const guests = [...new Set([...d.chains.keys()].map(vifOfChain).filter((v): v is string => v !== undefined))];
    const norm = (r: string): string => r.replace(/\s+/g, ' ').trim();
    for (const r of d.roots) {
      const rules = l.builtins.get(r.chain) ?? [];
      const positions = rules.map((x, i) => (sameRules([x], [r.rule], eb) ? i : -1)).filter((i) => i >= 0);
      const target = rootTarget(r);
      if (positions.length === 0) {
        const policy = l.policies.get(r.chain);
        out.push(`${tool} ${r.chain} has no jump to ${target} for ${rootScope(r)}: the guests' traffic there skips every rule of theirs${policy ? ` (the chain's policy is ${policy})` : ''}`);
        continue;
      }
      if (positions.length > 1) out.push(`${tool} ${r.chain} has ${positions.length} jumps to ${target} for ${rootScope(r)}; one is right`);
      const by = bypassBefore(l, t, r, positions[0]!, guests);
      if (by) out.push(`${tool} ${r.chain} rule ${by.position} (${norm(by.rule)}) comes before xennet's jump for ${rootScope(r)} and can accept the guests' traffic: it skips their rules`);
    }
    for (const [c, rules] of d.chains) {
      if (vifOfChain(c) !== undefined) continue;
      const have = l.chains.get(c);
      const kind = kindOf(t, c);
      const what = kind.what ?? (kind.guard ? "the identity guard (guests' MACs and addresses refused from other ports) is broken" : "the dispatch to the guests' rules is broken");
      if (!have) out.push(`${tool} ${kind.elements ? 'set elements' : 'chain'} ${c} ${kind.elements ? 'are' : 'is'} missing: ${what}`);
      else if (!sameRules(have, rules, eb)) out.push(`${tool} ${kind.elements ? 'set elements' : 'chain'} ${c} differ${kind.elements ? '' : 's'} from what xennet installs: ${what}`);
    }
  }
  return out;
}

/** Mark bits a rule's target may change, from its save text (all bits when it cannot tell). */
export function markBitsWritten(rule: string, eb: boolean): number {
  const t = tokens(rule);
  const opt = (name: string): string | undefined => {
    const i = t.indexOf(name);
    return i >= 0 ? t[i + 1] : undefined;
  };
  const num = (s: string | undefined, fallback: number): number => {
    if (s === undefined) return fallback;
    const n = Number(s);
    return Number.isFinite(n) ? n >>> 0 : 0xffffffff;
  };
  const target = targetOf(rule)?.target;
  if (eb) {
    if (target !== 'mark' && opt('--mark-set') === undefined && opt('--mark-or') === undefined && opt('--mark-and') === undefined && opt('--mark-xor') === undefined) return 0;
    if (opt('--mark-set') !== undefined) return 0xffffffff;
    if (opt('--mark-or') !== undefined) return num(opt('--mark-or'), 0xffffffff);
    if (opt('--mark-xor') !== undefined) return num(opt('--mark-xor'), 0xffffffff);
    if (opt('--mark-and') !== undefined) return ~num(opt('--mark-and'), 0) >>> 0;
    return 0xffffffff;
  }
  if (target === 'MARK') {
    const x = opt('--set-xmark') ?? opt('--set-mark');
    if (x !== undefined) {
      const [, mask] = x.split('/');
      return num(mask, 0xffffffff);
    }
    if (opt('--and-mark') !== undefined) return ~num(opt('--and-mark'), 0) >>> 0;
    if (opt('--or-mark') !== undefined) return num(opt('--or-mark'), 0xffffffff);
    if (opt('--xor-mark') !== undefined) return num(opt('--xor-mark'), 0xffffffff);
    return 0xffffffff;
  }
  if (target === 'CONNMARK' && t.includes('--restore-mark')) return num(opt('--nfmask'), 0xffffffff);
  return 0;
}

/**
 * Rules in `chain` (built in, positions [from, to)) and the other tools' chains they jump to that
 * may change the mark bits `bits`, as `chain rule N (text)`.
 */
export function markWriters(live: LiveTable, chain: string, bits: number, eb: boolean, from = 0, to = Number.POSITIVE_INFINITY): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = (name: string, rules: readonly string[], lo: number, hi: number, depth: number): void => {
    for (let i = lo; i < Math.min(hi, rules.length); i++) {
      const r = rules[i]!;
      if ((markBitsWritten(r, eb) & bits) !== 0) out.push(`${name} rule ${i + 1} (${r.replace(/\s+/g, ' ').trim()})`);
      const target = targetOf(r)?.target;
      if (target && live.foreign.has(target) && !seen.has(target) && depth < 8) {
        seen.add(target);
        walk(target, live.foreign.get(target)!, 0, Number.POSITIVE_INFINITY, depth + 1);
      }
    }
  };
  walk(chain, live.builtins.get(chain) ?? [], from, to, 0);
  return out;
}
