/**
 * `Mac`: a guest's Ethernet address, canonical (lower case, colon separated). Only what a guest
 * interface can own: unicast, not all-zero, and not fe:ff:ff:ff:ff:ff, the address Xen gives the
 * backend ends (vifs, peth0, vif0.0) so the bridge never adopts it.
 */
import { InvalidValue } from './invalid.js';

declare const macBrand: unique symbol;
export type Mac = string & { readonly [macBrand]: true };

export const BACKEND_MAC = 'fe:ff:ff:ff:ff:ff';

export function parseMac(raw: string, what = 'MAC address'): Mac {
  if (!/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(raw)) throw new InvalidValue(what, raw, 'is not a MAC address like 00:16:3e:12:34:56');
  const mac = raw.toLowerCase();
  if (mac === '00:00:00:00:00:00') throw new InvalidValue(what, raw, 'is the all-zero address; a guest interface needs its own unicast MAC');
  if ((Number.parseInt(mac.slice(0, 2), 16) & 1) === 1) throw new InvalidValue(what, raw, `is a ${mac === 'ff:ff:ff:ff:ff:ff' ? 'broadcast' : 'multicast'} address; a guest interface needs a unicast MAC (first octet even)`);
  if (mac === BACKEND_MAC) throw new InvalidValue(what, raw, 'is the address Xen gives backend interfaces; a guest interface needs its own');
  return mac as Mac;
}

/** The 6 bytes of a MAC. */
export function macBytes(mac: Mac): number[] {
  return mac.split(':').map((x) => Number.parseInt(x, 16));
}
