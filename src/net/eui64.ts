/** The EUI-64 link-local address a guest kernel configures from its MAC (RFC 4291, appendix A). */
import { hostCidr, type Cidr } from './ip.js';
import { macBytes, type Mac } from './mac.js';

export function eui64LinkLocal(mac: Mac): Cidr {
  const b = macBytes(mac);
  return hostCidr('ipv6', [0xfe, 0x80, 0, 0, 0, 0, 0, 0, b[0]! ^ 0x02, b[1]!, b[2]!, 0xff, 0xfe, b[3]!, b[4]!, b[5]!]);
}
