/**
 * xennet's nftables tables as the kernel holds them (nfnetlink objects) -> the same LiveTable that
 * parseNftList makes of `nft list` (pure).
 *
 * A rule's text is not decoded from its expressions: its tag (its comment, nft/tag.ts) names the
 * rule text it was made from, looked up among the rules the caller knows (those it would write),
 * and the digest of its expressions written into its userdata with it (native/expr-digest.ts)
 * says that they are still those. When any rule's tag is not among them, its expressions are not
 * the ones written (or it was written without a digest: by `nft`, or by a version before it), or
 * anything else is not as xennet writes it (a base chain's hook, a set element of an unexpected
 * shape), the answer is undefined: the caller reads the tables through `nft` instead, which
 * prints whatever is there.
 */
import type { NftChainObject, NftElementObject, NftRuleObject } from '../../bridge/nl/nftables.js';
import { HOOK, VERDICT } from '../../bridge/nl/nft-numbers.js';
import { hostCidr } from '../../net/index.js';
import { emptyLive, type LiveTable } from '../live.js';
import { BASE_CHAINS, constElementText, NFT_CONST_SETS, NFT_SETS } from './compile.js';
import { CLAIM_SETS } from './guard.js';
import { chainKey, isDeclaredSet, putElementChains, straySetKey } from './script.js';
import { rawHex } from './syntax.js';
import { ruleTag } from './tag.js';
import { expressionsAsWritten, type OwnSetElements } from './native/expr-digest.js';

export type NftFamilyRead = 'bridge' | 'inet';

export interface NativeTables {
  /** Per family: undefined when its table does not exist. */
  tables: Record<NftFamilyRead, { chains: NftChainObject[]; rules: NftRuleObject[] } | undefined>;
  /** The elements of `bridge xennet`'s sets, by set name (absent sets are missing). */
  elements: Map<string, NftElementObject[]>;
  /** The elements of the rules' own (anonymous) sets, by `<family> <name>` (absent sets are missing). */
  ownSets?: Map<string, NftElementObject[]>;
  /** Each table's named (not anonymous) sets and maps. */
  setNames?: Partial<Record<NftFamilyRead, { name: string; map: boolean }[]>>;
}

/** The sets whose elements parseNftList reads: the dispatch maps and sets, the guard's, the constant ones. */
export const NATIVE_SETS: readonly string[] = [...NFT_SETS.map((s) => s.name), ...new Set(CLAIM_SETS.flatMap((s) => [s.ports, s.keys])), ...NFT_CONST_SETS.map((s) => s.name)];

/** The rule texts a reader may find, by tag. */
export function knownRules(chains: Iterable<readonly string[]>): Map<string, string> {
  const out = new Map<string, string>();
  for (const rules of chains) for (const r of rules) out.set(ruleTag(r), r);
  return out;
}

/** A key field as nft prints it, or undefined when the bytes are not of that type. */
type Field = 'ifname' | 'ether' | 'ipv4' | 'ipv6' | 'raw128';
const fieldLength: Record<Field, number> = { ifname: 16, ether: 6, ipv4: 4, ipv6: 16, raw128: 16 };

function fieldText(f: Field, b: Buffer): string | undefined {
  switch (f) {
    case 'ifname': {
      const end = b.indexOf(0);
      const s = b.subarray(0, end < 0 ? b.length : end).toString('latin1');
      return /^[\x21-\x7e]+$/.test(s) && !s.includes('"') ? `"${s}"` : undefined;
    }
    case 'ether':
      return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
    case 'ipv4':
      return hostCidr('ipv4', [...b]).addr;
    case 'ipv6':
      return hostCidr('ipv6', [...b]).addr;
    case 'raw128':
      return rawHex(b.toString('hex'));
  }
}

/** A concatenated key (each field padded to 4 bytes) as nft prints it: `a . b`. */
export function keyText(fields: readonly Field[], key: Buffer): string | undefined {
  const parts: string[] = [];
  let off = 0;
  for (const f of fields) {
    const len = fieldLength[f];
    if (off + len > key.length) return undefined;
    const t = fieldText(f, key.subarray(off, off + len));
    if (t === undefined) return undefined;
    parts.push(t);
    off += (len + 3) & ~3;
  }
  // One field alone is not padded (a MAC is 6 bytes); a concatenation's fields are.
  const exact = fields.length === 1 ? fieldLength[fields[0]!] : off;
  return key.length === off || key.length === exact ? parts.join(' . ') : undefined;
}

const claimFields = (ports: boolean, kind: string, keys: string): Field[] => {
  const k: Field = kind === 'mac' ? 'ether' : kind === 'ipv4' ? 'ipv4' : keys === 'id_na' ? 'raw128' : 'ipv6';
  return ports ? [k, 'ifname'] : [k];
};

/** A base chain's rule 0 as nft prints it, when the kernel's chain is the one xennet writes. */
function hookLine(c: NftChainObject): string | undefined {
  const spec = BASE_CHAINS[c.name];
  if (!spec) return c.hook ? undefined : '';
  if (!c.hook || c.hook.num !== HOOK[spec.hook] || c.hook.priority !== spec.priority || c.policy !== 1 || c.type !== 'filter') return undefined;
  return spec.printed;
}

/** The LiveTable of xennet's tables, or undefined when a reader of `nft` text must be asked. */
export function liveFromNative(read: NativeTables, known: ReadonlyMap<string, string>): LiveTable | undefined {
  const live = emptyLive();
  for (const family of ['bridge', 'inet'] as const) {
    const t = read.tables[family];
    if (!t) continue;
    live.policies.set(`table ${family}`, 'present');
    const ownSet: OwnSetElements = ({ name }) => read.ownSets?.get(`${family} ${name}`)?.map((e) => ({ key: e.key, flags: e.flags }));
    for (const { name, map } of read.setNames?.[family] ?? []) {
      if (isDeclaredSet(family, name)) continue;
      const key = straySetKey(family, map ? 'map' : 'set', name);
      live.chains.set(key, []);
      live.counters.set(key, []);
    }
    for (const c of t.chains) {
      // A chain of another family's name (an inet chain called like a guest's bridge chain) is
      // keyed with its family: it does not stand for the other.
      const key = chainKey(family, c.name);
      const hook = key === c.name ? hookLine(c) : c.hook ? undefined : '';
      if (hook === undefined) return undefined;
      live.chains.set(key, hook === '' ? [] : [hook]);
      live.counters.set(key, hook === '' ? [] : [{ packets: 0, bytes: 0 }]);
    }
    for (const r of t.rules) {
      const key = chainKey(family, r.chain);
      const rules = live.chains.get(key);
      const text = r.comment === undefined ? undefined : known.get(r.comment);
      // Its tag names the text it was written from; the digest written with it, that its
      // expressions are still those (not a rule replaced by hand that kept its comment).
      if (!rules || text === undefined || !r.exprs || !expressionsAsWritten(r.exprs, r.userdata, ownSet)) return undefined;
      rules.push(text);
      live.counters.get(key)!.push(r.counter ?? { packets: 0, bytes: 0 });
    }
  }
  if (!read.tables.bridge) return live;
  // The dispatch entries and the guard's port claims, per port: its XN-E pseudo-chain.
  const perPort = new Map<string, Map<string, string>>();
  const portClaims = new Map<string, string[]>();
  for (const s of NFT_SETS) {
    for (const e of read.elements.get(s.name) ?? []) {
      const key = keyText(['ifname'], e.key);
      if (key === undefined) return undefined;
      let line: string;
      if (s.map) {
        const v = e.verdict;
        if (!v || (v.code !== VERDICT.jump && v.code !== VERDICT.goto) || v.chain === undefined) return undefined;
        line = `@${s.name} ${key} : ${v.code === VERDICT.jump ? 'jump' : 'goto'} ${v.chain}`;
      } else line = `@${s.name} ${key}`;
      const port = key.slice(1, -1);
      let per = perPort.get(port);
      if (!per) perPort.set(port, (per = new Map()));
      per.set(s.name, line);
    }
  }
  const keyClaims: { line: string; packets: number; bytes: number }[] = [];
  for (const set of new Set(CLAIM_SETS.map((s) => s.ports))) {
    const spec = CLAIM_SETS.find((s) => s.ports === set)!;
    for (const e of read.elements.get(set) ?? []) {
      const text = keyText(claimFields(true, spec.kind, spec.keys), e.key);
      if (text === undefined) return undefined;
      const port = /"([^"]*)"$/.exec(text)![1]!;
      const list = portClaims.get(port) ?? [];
      list.push(`@${set} ${text}`);
      portClaims.set(port, list);
    }
  }
  for (const set of new Set(CLAIM_SETS.map((s) => s.keys))) {
    const spec = CLAIM_SETS.find((s) => s.keys === set)!;
    for (const e of read.elements.get(set) ?? []) {
      const text = keyText(claimFields(false, spec.kind, spec.keys), e.key);
      if (text === undefined) return undefined;
      keyClaims.push({ line: `@${set} ${text}`, packets: e.counter?.packets ?? 0, bytes: e.counter?.bytes ?? 0 });
    }
  }
  const constLines: string[] = [];
  for (const set of NFT_CONST_SETS) {
    for (const e of read.elements.get(set.name) ?? []) {
      // An ethertype is 2 bytes, a protocol 1, in network order (the rest of a register, zero).
      const width = set.type === 'ether_type' ? 2 : 1;
      if (e.key.length < width || e.key.subarray(width).some((b) => b !== 0)) return undefined;
      constLines.push(`@${set.name} ${constElementText(set.type, width === 2 ? e.key.readUInt16BE(0) : e.key[0]!)}`);
    }
  }
  putElementChains(live, perPort, portClaims, keyClaims, constLines);
  return live;
}

