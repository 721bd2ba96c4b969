/** Value types for test fixtures, made by the same parsers production code uses. */
import { parseCidr, parseGuestKey, parseIfName, parseMac, type Cidr, type DomainName, type IfName, type Mac } from '../../../src/net/index.js';

export const ifn = (s: string): IfName => parseIfName(s);
export const mac = (s: string): Mac => parseMac(s);
export const cidr = (s: string): Cidr => parseCidr(s);
export const dom = (s: string): DomainName => parseGuestKey(s);
