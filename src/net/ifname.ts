/**
 * `IfName`: a network interface name that is safe everywhere xennet puts one: netlink requests,
 * iptables/ebtables interface matches and chain names, `*-restore` input, log lines.
 *
 * The kernel takes 1-15 bytes other than `/`, `:` and whitespace. xennet narrows that to
 * `[A-Za-z0-9_.-]`, first character alphanumeric or `_`: `+` would be a wildcard in an iptables
 * interface match, `!` a negation, quotes and spaces would split restore input, and `-` first
 * would read as an option.
 */
import { InvalidValue } from './invalid.js';

declare const ifNameBrand: unique symbol;
export type IfName = string & { readonly [ifNameBrand]: true };

const pattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

export function isIfName(s: string): s is IfName {
  return pattern.test(s);
}

export function parseIfName(raw: string, what = 'interface name'): IfName {
  if (isIfName(raw)) return raw;
  const why = raw.length === 0 ? 'is empty' : raw.length > 15 ? 'is longer than 15 characters' : 'is not a valid interface name';
  throw new InvalidValue(what, raw, `${why} (1-15 of A-Z a-z 0-9 _ . -, starting with a letter, digit or _)`);
}

/** The Xen backend device of a guest interface: `vif<domid>.<devid>`, `-emu` for an emulated NIC. */
export function xenVifName(domid: number, devid: number, emulated = false): IfName {
  return `vif${domid}.${devid}${emulated ? '-emu' : ''}` as IfName;
}

/** Whether a name has the form of a Xen backend device (`vif3.0`, `vif3.0-emu`), anyone's. */
export function looksLikeXenVif(name: string): boolean {
  return /^vif\d+\.\d+(-emu)?$/.test(name);
}
