/** `Mtu`: an interface MTU from xenstore (68-65535, plain decimal). */
import { InvalidValue } from './invalid.js';

declare const mtuBrand: unique symbol;
export type Mtu = number & { readonly [mtuBrand]: true };

export function parseMtu(raw: string, what = 'mtu'): Mtu {
  if (!/^[1-9]\d{1,4}$/.test(raw)) throw new InvalidValue(what, raw, 'is not a number');
  const mtu = Number(raw);
  if (mtu < 68 || mtu > 65535) throw new InvalidValue(what, raw, 'is outside 68-65535');
  return mtu as Mtu;
}
