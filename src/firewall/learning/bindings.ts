/**
 * Address bindings of learning guests (pure): which port may send from which address, how it was
 * learned and until when. A binding comes from a trusted server's lease (DHCP, DHCPv6), or first
 * come first served from the guest's own duplicate address detection (DAD, an ARP probe): then
 * only if no other port holds the address (RFC 6620). A lease ends with its time, its release or
 * the vif; a first-come binding with the vif, or when the port holds too many.
 */
import { z } from 'zod';
import type { LearnEvent } from './packets.js';

export type LearnedFamily = 'ipv4' | 'ipv6';
export type LearnedHow = 'dhcp' | 'dhcpv6' | 'dad' | 'arp-probe' | 'announce';

export interface Binding {
  vif: string;
  family: LearnedFamily;
  /** Canonical text (dotted quad; RFC 5952 for IPv6). */
  address: string;
  how: LearnedHow;
  /** When it was learned, and when it ends (epoch ms; null: with the vif). */
  since: number;
  expires: number | null;
  /** Whether other ports are refused it as a source (the guest's identity guard is on). */
  guarded?: boolean;
  /** The domain whose vif learned it (a vif name outlives its domain: a later one is not it). */
  domid?: number;
}

/** Whether a binding is another domain's than `domid` (the vif's owner now), when both are known. */
export const ofAnotherDomain = (b: Pick<Binding, 'domid'>, domid: number | undefined): boolean => domid !== undefined && b.domid !== undefined && b.domid !== domid;

/** Whether a binding is a server's lease (else it was learned first come, first served). */
export const isLease = (b: Pick<Binding, 'how'>): boolean => b.how === 'dhcp' || b.how === 'dhcpv6';

/** At most this many bindings per port and family: a guest flooding DAD cannot grow the sets. */
export const MAX_PER_PORT: Record<LearnedFamily, number> = { ipv4: 16, ipv6: 64 };

export const bindingSchema = z.strictObject({
  vif: z.string().regex(/^[A-Za-z0-9._-]{1,15}$/),
  family: z.enum(['ipv4', 'ipv6']),
  address: z.string().min(2).max(45),
  how: z.enum(['dhcp', 'dhcpv6', 'dad', 'arp-probe', 'announce']),
  since: z.number().int().nonnegative(),
  expires: z.number().int().nonnegative().nullable(),
  guarded: z.boolean().optional(),
  domid: z.number().int().nonnegative().max(0x7fff).optional(),
});

export interface Decision {
  /** The bindings after the event. */
  bindings: Binding[];
  /** Kernel changes: bindings to write (new or with a new end) and to remove. */
  write: Binding[];
  remove: Binding[];
  /** One line for the log (nothing when the event changed nothing and refused nothing). */
  message?: string;
}

const same = (a: Binding, family: LearnedFamily, address: string): boolean => a.family === family && a.address === address;

/**
 * Applies one event seen on `vif`. `heldBy(family, address)` names another port that declares
 * the address (rule file, xenstore), whose claim always wins.
 */
/**
 * `guarded`: the guest's identity guard is on. Only a lease is then guarded against every other
 * port: a first-come binding is not (the LAN host that holds the same address must keep it).
 */
export function decide(bindings: readonly Binding[], vif: string, event: LearnEvent, now: number, heldBy: (family: LearnedFamily, address: string) => string | undefined = () => undefined, guarded = false, domid?: number): Decision {
  // What has ended holds nothing any more (a lease over, not yet swept from the record), nor does
  // what an earlier domain's vif of this name learned (its offline never ran).
  const current = expire(bindings, now);
  const earlier = current.live.filter((b) => b.vif === vif && ofAnotherDomain(b, domid));
  let out = current.live.filter((b) => !earlier.includes(b));
  const write: Binding[] = [];
  const remove: Binding[] = [...current.ended, ...earlier];
  const notes: string[] = [];
  const owner = (family: LearnedFamily, address: string): string | undefined => heldBy(family, address) ?? out.find((b) => b.vif !== vif && same(b, family, address))?.vif;
  const drop = (family: LearnedFamily, address: string, why: string): void => {
    const had = out.find((b) => b.vif === vif && same(b, family, address));
    if (!had) return;
    out = out.filter((b) => b !== had);
    remove.push(had);
    notes.push(`${address} unbound (${why})`);
  };
  const bind = (family: LearnedFamily, address: string, how: LearnedHow, seconds: number | null, lease: boolean): void => {
    if (lease && heldBy(family, address) === undefined) {
      // The server is the authority on its addresses: its lease moves the address here from
      // another port that learned it (first come, or a lease the server has since given up).
      for (const other of out.filter((b) => b.vif !== vif && same(b, family, address))) {
        out = out.filter((b) => b !== other);
        remove.push(other);
        notes.push(`${address} taken from ${other.vif} (${other.how}): the server leased it here`);
      }
    }
    const held = owner(family, address);
    if (held !== undefined) {
      notes.push(`${address} refused: ${held} holds it (${how})`);
      return;
    }
    const expires = seconds === null ? null : now + seconds * 1000;
    const had = out.find((b) => b.vif === vif && same(b, family, address));
    if (had) {
      // A first-come binding never shortens a lease; a lease renews or replaces either kind.
      if (!lease && isLease(had)) return;
      if (!lease && had.expires === null) return;
      const next: Binding = { ...had, how, expires, ...(guarded && lease ? { guarded: true } : {}) };
      out = out.map((b) => (b === had ? next : b));
      write.push(next);
      if (had.expires !== expires || had.how !== how) notes.push(`${address} ${lease ? 'renewed' : 'bound'} (${how}${expires === null ? '' : `, ${seconds} s`})`);
      return;
    }
    const mine = out.filter((b) => b.vif === vif && b.family === family);
    if (mine.length >= MAX_PER_PORT[family]) {
      // Over the limit: the oldest first-come binding goes; leases are never pushed out.
      const oldest = mine.filter((b) => !isLease(b)).sort((a, b) => a.since - b.since)[0];
      if (!oldest) {
        notes.push(`${address} refused: ${vif} holds ${mine.length} ${family} leases already`);
        return;
      }
      drop(family, oldest.address, `over ${MAX_PER_PORT[family]} ${family} addresses`);
    }
    const b: Binding = { vif, family, address, how, since: now, expires, ...(guarded && lease ? { guarded: true } : {}), ...(domid !== undefined ? { domid } : {}) };
    out.push(b);
    write.push(b);
    notes.push(`${address} bound (${how}${expires === null ? '' : `, ${seconds} s`})`);
  };
  switch (event.kind) {
    case 'dhcp-ack':
      bind('ipv4', event.address, 'dhcp', event.leaseSeconds, true);
      break;
    case 'dhcp-release':
      drop('ipv4', event.address, 'released by the guest');
      break;
    case 'dhcpv6-reply':
      for (const a of event.addresses) {
        if (a.validSeconds === 0) drop('ipv6', a.address, 'valid lifetime 0 in the server\'s reply');
        else bind('ipv6', a.address, 'dhcpv6', a.validSeconds, true);
      }
      break;
    case 'dhcpv6-release':
      for (const a of event.addresses) drop('ipv6', a, 'released by the guest');
      break;
    case 'dad':
      bind('ipv6', event.address, 'dad', null, false);
      break;
    case 'arp-probe':
      bind('ipv4', event.address, 'arp-probe', null, false);
      break;
    case 'announce':
      bind(event.family, event.address, 'announce', null, false);
      break;
  }
  return { bindings: out, write, remove, ...(notes.length > 0 ? { message: `${vif}: ${notes.join('; ')}` } : {}) };
}

/** The bindings that have not ended by `now`, and those that have. */
export function expire(bindings: readonly Binding[], now: number): { live: Binding[]; ended: Binding[] } {
  const live: Binding[] = [];
  const ended: Binding[] = [];
  for (const b of bindings) (b.expires !== null && b.expires <= now ? ended : live).push(b);
  return { live, ended };
}
