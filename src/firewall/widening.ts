/**
 * Widenings (pure): where a new policy lets more traffic reach or leave a guest than the policy its
 * installed rules were compiled from. The index records that policy per vif (FilterRecord); the
 * plan compares it with the newly resolved one, so a reviewer sees "inbound drop -> accept" or
 * "isolation removed" before apply, not after.
 *
 * Allow rules are compared as sets of atoms (protocol, one port range or ICMP type, one prefix):
 * a new atom that no old one covers (ports: the union of the old ranges) is a widening. Prefixes
 * are covered by one old prefix each, so a prefix split across two old rules is reported too: the
 * check errs on the side of saying "widening".
 */
import type { AllowRule, Verdict } from '../config/schema.js';
import { cidrBytes, cidrText, parseCidr, type Cidr } from '../net/index.js';
import type { ResolvedVif } from './model.js';

/** An allow rule as the index stores it (prefixes as text). */
export interface StoredRule {
  proto: AllowRule['proto'];
  ports?: (number | string)[];
  icmp_types?: number[];
  /** allow_in: sources; allow_out: destinations. */
  peers?: string[];
}

/** The parts of a vif's resolved policy that decide what traffic it accepts. */
export interface FilterRecord {
  inbound: Verdict;
  outbound: Verdict;
  isolation: boolean;
  allowIn: StoredRule[];
  allowOut: StoredRule[];
}

const storedRule = (r: AllowRule, dir: 'in' | 'out'): StoredRule => {
  const s: StoredRule = { proto: r.proto };
  if (r.ports) s.ports = [...r.ports];
  if (r.icmp_types) s.icmp_types = [...r.icmp_types];
  const peers = dir === 'in' ? r.from : r.to;
  if (peers) s.peers = peers.map(cidrText);
  return s;
};

export function filterRecord(v: Pick<ResolvedVif, 'inbound' | 'outbound' | 'isolation' | 'allowIn' | 'allowOut'>): FilterRecord {
  return { inbound: v.inbound, outbound: v.outbound, isolation: v.isolation, allowIn: v.allowIn.map((r) => storedRule(r, 'in')), allowOut: v.allowOut.map((r) => storedRule(r, 'out')) };
}

const PROTOS = new Set(['tcp', 'udp', 'icmp', 'icmpv6', 'any']);

/** A FilterRecord read back from the index; undefined when it is not one. */
export function parseFilterRecord(raw: unknown): FilterRecord | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  const verdict = (v: unknown): v is Verdict => v === 'accept' || v === 'drop';
  const rules = (v: unknown): StoredRule[] | undefined => {
    if (!Array.isArray(v)) return undefined;
    const out: StoredRule[] = [];
    for (const x of v as unknown[]) {
      if (typeof x !== 'object' || x === null) return undefined;
      const o = x as Record<string, unknown>;
      if (typeof o['proto'] !== 'string' || !PROTOS.has(o['proto'])) return undefined;
      const s: StoredRule = { proto: o['proto'] as StoredRule['proto'] };
      if (o['ports'] !== undefined) {
        if (!Array.isArray(o['ports']) || !o['ports'].every((p) => typeof p === 'number' || (typeof p === 'string' && /^\d{1,5}-\d{1,5}$/.test(p)))) return undefined;
        s.ports = o['ports'] as (number | string)[];
      }
      if (o['icmp_types'] !== undefined) {
        if (!Array.isArray(o['icmp_types']) || !o['icmp_types'].every((t) => Number.isInteger(t))) return undefined;
        s.icmp_types = o['icmp_types'] as number[];
      }
      if (o['peers'] !== undefined) {
        if (!Array.isArray(o['peers']) || !o['peers'].every((p) => typeof p === 'string')) return undefined;
        s.peers = o['peers'] as string[];
      }
      out.push(s);
    }
    return out;
  };
  const allowIn = rules(r['allowIn']);
  const allowOut = rules(r['allowOut']);
  if (!verdict(r['inbound']) || !verdict(r['outbound']) || typeof r['isolation'] !== 'boolean' || !allowIn || !allowOut) return undefined;
  return { inbound: r['inbound'], outbound: r['outbound'], isolation: r['isolation'], allowIn, allowOut };
}

interface Atom {
  proto: StoredRule['proto'];
  /** Inclusive port range; undefined: every port (or not a port protocol). */
  ports?: [number, number];
  icmp?: number;
  peer?: Cidr;
}

function atoms(rules: readonly StoredRule[]): Atom[] | undefined {
  const out: Atom[] = [];
  for (const r of rules) {
    let peers: (Cidr | undefined)[];
    try {
      peers = r.peers ? r.peers.map((p) => parseCidr(p)) : [undefined];
    } catch {
      return undefined;
    }
    const ports: ([number, number] | undefined)[] = r.ports
      ? r.ports.map((p) => {
          const [lo, hi] = String(p).split('-').map(Number) as [number, number | undefined];
          return [lo, hi ?? lo];
        })
      : [undefined];
    const icmps: (number | undefined)[] = r.icmp_types ? [...r.icmp_types] : [undefined];
    for (const peer of peers)
      for (const port of ports)
        for (const icmp of icmps) {
          const a: Atom = { proto: r.proto };
          if (port) a.ports = port;
          if (icmp !== undefined) a.icmp = icmp;
          if (peer) a.peer = peer;
          out.push(a);
        }
  }
  return out;
}

/** Whether prefix `outer` holds every address of `inner`. */
function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.len > inner.len) return false;
  const a = cidrBytes(outer);
  const b = cidrBytes(inner);
  for (let bit = 0; bit < outer.len; bit++) {
    const i = bit >> 3;
    const m = 0x80 >> (bit & 7);
    if ((a[i]! & m) !== (b[i]! & m)) return false;
  }
  return true;
}

/** Whether the old atoms together match everything `a` matches. */
function covered(a: Atom, old: readonly Atom[]): boolean {
  const cands = old.filter((o) => (o.proto === 'any' || o.proto === a.proto) && (o.peer === undefined || (a.peer !== undefined && contains(o.peer, a.peer))) && (o.icmp === undefined || o.icmp === a.icmp));
  // A port-less old atom covers every port of its protocol; else the union of the old ranges must hold a's.
  if (cands.some((o) => o.ports === undefined)) return true;
  if (a.ports === undefined) return false;
  const [from, to] = a.ports;
  let next = from;
  for (const [lo, hi] of cands.map((o) => o.ports!).sort((x, y) => x[0] - y[0])) {
    if (lo > next) break;
    next = Math.max(next, hi + 1);
  }
  return next > to;
}

const atomText = (a: Atom, dir: 'in' | 'out'): string =>
  `${a.proto}${a.ports ? ` port ${a.ports[0] === a.ports[1] ? a.ports[0] : `${a.ports[0]}-${a.ports[1]}`}` : ''}${a.icmp !== undefined ? ` type ${a.icmp}` : ''} ${dir === 'in' ? 'from' : 'to'} ${a.peer ? cidrText(a.peer) : 'anywhere'}`;

/**
 * How `after` lets more traffic through than `before`, one phrase per widening (empty: none).
 * An allow list matters only while its direction drops what it does not list.
 */
export function widenings(before: FilterRecord, after: FilterRecord): string[] {
  const out: string[] = [];
  for (const [dir, key, list] of [
    ['in', 'inbound', 'allowIn'],
    ['out', 'outbound', 'allowOut'],
  ] as const) {
    if (before[key] !== 'drop') continue;
    if (after[key] !== 'drop') {
      out.push(`${key} drop -> ${after[key]}`);
      continue;
    }
    const old = atoms(before[list]);
    const now = atoms(after[list]);
    if (!old || !now) {
      out.push(`allow_${dir} changed (the earlier rules cannot be compared)`);
      continue;
    }
    const wider = now.filter((a) => !covered(a, old));
    if (wider.length > 0) out.push(`allow_${dir} now also accepts ${[...new Set(wider.map((a) => atomText(a, dir)))].join(', ')}`);
  }
  if (before.isolation && !after.isolation) out.push('isolation removed');
  return out;
}

/**
 * Only what the index knew before per-vif filter records: whether inbound was filtered and the vif
 * isolated (from index entries of older versions, or rules adopted from the live tables).
 */
export function coarseWidenings(before: { inbound: boolean; isolated: boolean }, after: FilterRecord): string[] {
  const out: string[] = [];
  if (before.inbound && after.inbound !== 'drop') out.push(`inbound drop -> ${after.inbound}`);
  if (before.isolated && !after.isolation) out.push('isolation removed');
  return out;
}
