/**
 * `DomainName`: a Xen domain name as xennet uses it: to find the guest in the rule file and to
 * show it. 1-128 characters, none of them a control, line-break or bidi-override character.
 */
import { InvalidValue } from './invalid.js';
import { hasUnsafeChars } from './printable.js';

declare const domainBrand: unique symbol;
export type DomainName = string & { readonly [domainBrand]: true };

export function parseDomainName(raw: string, what = 'domain name'): DomainName {
  if (raw.length === 0 || raw.length > 128) throw new InvalidValue(what, raw, 'must be 1-128 characters');
  if (hasUnsafeChars(raw)) throw new InvalidValue(what, raw, 'contains control or line-break characters');
  return raw as DomainName;
}

/** Rule-file guest keys: a domain name without spaces (printable ASCII), as `xl create` names them. */
export function parseGuestKey(raw: string, what = 'guest name'): DomainName {
  if (!/^[\x21-\x7e]{1,128}$/.test(raw)) throw new InvalidValue(what, raw, 'is not a domain name (1-128 printable characters without spaces)');
  return raw as DomainName;
}
