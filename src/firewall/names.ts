/**
 * Names of xennet's chains. Everything xennet owns starts with `XN-` and fits iptables' 28
 * characters (ebtables allows 31): `XN-<k>-<vif>` with a vif name of at most 15 characters.
 */
import { XennetError } from '../sys/errors.js';

export const OWNED_PREFIX = 'XN-';
/** iptables: the per-bridge jump target from FORWARD (from-tree, to-tree, accept). */
export const CHAIN_FORWARD = 'XN-FORWARD';
/** Root of the dispatch tree on the input port (from a guest). */
export const CHAIN_FROM = 'XN-FROM';
/** Root of the dispatch tree on the output port (to a guest). */
export const CHAIN_TO = 'XN-TO';
export const MAX_CHAIN_NAME = 28;

export type VifChainKind = 'O' | 'I' | 'S' | 'N' | 'E' | 'L' | 'O4' | 'O6' | 'I4' | 'I6' | 'D4';
/**
 * O: from the guest; I: to the guest; S: source check; N: neighbour-advertisement check; E:
 * ebtables (nftables: the guest's set elements); L: its DHCP replies (learning); O4, O6, I4
 * and I6 (nftables): its IPv4 and IPv6 frames, from O and I by ethertype; D4 (nftables): its
 * IPv4 DHCP messages (UDP port 68 either way), from O4.
 */
export function vifChain(kind: VifChainKind, vif: string): string {
  return `XN-${kind}-${vif}`;
}

/** Tree node chains: F = from-guest (input port), T = to-guest (output port). */
export function treeChain(dir: 'F' | 'T', prefix: string): string {
  return `XN-${dir}-${prefix}`;
}

const firewallable = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

/** Whether a name can be a vif's in chain names and interface matches (see checkVifName). */
export const isFirewallableName = (name: string): boolean => firewallable.test(name);

/** A vif name that can appear in chain names and interface matches. */
export function checkVifName(name: string): string {
  if (!firewallable.test(name)) {
    throw new XennetError('usage', `interface ${JSON.stringify(name)} cannot be firewalled: names are 1-15 of A-Z a-z 0-9 _ . - (no ':')`, { exitCode: 1 });
  }
  return name;
}

export function isOwnedChain(name: string): boolean {
  return name.startsWith(OWNED_PREFIX);
}

/** The vif a per-vif chain belongs to, or undefined for shared chains. */
export function vifOfChain(chain: string): string | undefined {
  const m = /^XN-(?:[OISNEL]|[OI][46]|D4)-(.+)$/.exec(chain);
  return m?.[1];
}

/** The domain and device a guest interface's Xen name says (`vif<D>.<N>`, `-emu` for the emulated NIC), or undefined. */
export function ownerOfVifName(name: string): { domid: number; devid: number } | undefined {
  const m = /^vif(\d+)\.(\d+)(?:-emu)?$/.exec(name);
  return m ? { domid: Number(m[1]), devid: Number(m[2]) } : undefined;
}

/** The domain and device xennet's mark on an interface it renamed says (its alias `xennet:vif<D>.<N>`), or undefined. */
export function ownerOfMark(alias: string | undefined): { domid: number; devid: number } | undefined {
  const m = /^xennet:vif(\d+)\.(\d+)$/.exec(alias ?? '');
  return m ? { domid: Number(m[1]), devid: Number(m[2]) } : undefined;
}
