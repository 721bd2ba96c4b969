/** Values from outside, parsed once at the boundary into types downstream code can trust. */
export { InvalidValue } from './invalid.js';
export { hasUnsafeChars, printable, shown } from './printable.js';
export { isIfName, looksLikeXenVif, parseIfName, xenVifName, type IfName } from './ifname.js';
export { BACKEND_MAC, macBytes, parseMac, type Mac } from './mac.js';
export { cidrBytes, cidrSortKey, cidrText, hostCidr, inetNtop6, overlaps, parseCidr, parseGuestAddressList, type Cidr, type CidrOptions, type IpFamily } from './ip.js';
export { parseDomainName, parseGuestKey, type DomainName } from './domain.js';
export { parseMtu, type Mtu } from './mtu.js';
export { eui64LinkLocal } from './eui64.js';
