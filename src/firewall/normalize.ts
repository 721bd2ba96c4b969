/**
 * Canonical form of a rule for comparing live and desired: `*-save` may print options in another
 * order than they were given (ebtables moves -s before -i), spell ethertypes by name, or put an
 * ebtables negation after the option. Rules are compared as sorted option groups.
 */
import { readFileSync } from 'node:fs';
import type { RuleDialect } from './model.js';

function tokenize(rule: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(rule); m; m = re.exec(rule)) out.push(m[1] !== undefined ? `"${m[1]}"` : m[2]!);
  return out;
}

let ethertypeNames: Map<string, string> | undefined;

/** Ethertype names as ebtables prints them (from /etc/ethertypes, else a built-in list). */
function ethertypes(): Map<string, string> {
  if (ethertypeNames) return ethertypeNames;
  const map = new Map<string, string>([
    ['ipv4', '0800'],
    ['arp', '0806'],
    ['ipv6', '86dd'],
    ['802_1q', '8100'],
    ['lldp', '88cc'],
  ]);
  try {
    for (const line of readFileSync('/etc/ethertypes', 'utf8').split('\n')) {
      const m = /^([A-Za-z0-9_-]+)\s+([0-9A-Fa-f]{4})\b/.exec(line.trim());
      if (m) map.set(m[1]!.toLowerCase(), m[2]!.toLowerCase());
    }
  } catch {
    /* the built-in list */
  }
  ethertypeNames = map;
  return map;
}

function normalizeValue(opt: string, value: string, eb: boolean): string {
  if (eb && (opt === '-p' || opt === '--protocol')) {
    const v = value.toLowerCase();
    const hex = v.startsWith('0x') ? v.slice(2).padStart(4, '0') : ethertypes().get(v);
    return hex ? `0x${hex}` : v;
  }
  if (eb && /^(-s|-d|--arp-mac-src|--arp-mac-dst)$/.test(opt)) {
    return value
      .toLowerCase()
      .split(':')
      .map((x) => x.padStart(2, '0'))
      .join(':');
  }
  return value;
}

/** Spacing an nft rule's canonical form does not have: two blanks, a blank other than a space, one at either end. */
const NFT_SPACING = /\s\s|[^\S ]|^\s|\s$/;

/** The rule as a canonical string (order of option groups does not matter). */
export function normalizeRule(rule: string, dialect: RuleDialect = 'iptables'): string {
  // nft rules are compared as nft prints them (xennet writes them in that form).
  // (Most are already: a test is cheaper than a new string, 35,000 rules at a time.)
  if (dialect === 'nft') return NFT_SPACING.test(rule) ? rule.replace(/\s+/g, ' ').trim() : rule;
  const eb = dialect === 'ebtables';
  const tokens = tokenize(rule);
  const groups: string[][] = [];
  let negateNext = false;
  for (const tok of tokens) {
    if (tok === '!') {
      const last = groups[groups.length - 1];
      // ebtables style `-s ! MAC`: the option came first and has no value yet.
      if (last && last.length === 1 && last[0]!.startsWith('-')) last[0] = `!${last[0]}`;
      else negateNext = true;
      continue;
    }
    if (tok.startsWith('-') && !/^-\d/.test(tok)) {
      groups.push([negateNext ? `!${tok}` : tok]);
      negateNext = false;
    } else if (groups.length > 0) {
      const g = groups[groups.length - 1]!;
      g.push(normalizeValue(g[0]!.replace(/^!/, ''), tok, eb));
    } else {
      groups.push([tok]);
    }
  }
  return groups
    .map((g) => g.join(' '))
    .sort()
    .join(' ');
}

export function sameRules(a: readonly string[], b: readonly string[], dialect: RuleDialect = 'iptables'): boolean {
  // Equal text is the same rule (compiled against compiled, or listed as written): no parsing.
  return a.length === b.length && a.every((r, i) => r === b[i] || normalizeRule(r, dialect) === normalizeRule(b[i]!, dialect));
}
