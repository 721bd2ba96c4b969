/**
 * The rule file schema (`/etc/xen/xennet.yaml`). The TypeScript types the rest of xennet uses are
 * inferred from it, and `xennet schema` prints the JSON Schema generated from the same source.
 * Unknown keys are errors everywhere.
 */
import { z } from 'zod';
import { InvalidValue, parseCidr, parseGuestKey, parseMac, type CidrOptions } from '../net/index.js';

/** A string field parsed by one of xennet's value parsers (src/net): the output is its type. */
function parsedBy<T>(parse: (raw: string) => T) {
  return z.string().transform((raw, ctx): T => {
    try {
      return parse(raw);
    } catch (e) {
      ctx.addIssue({ code: 'custom', input: raw, message: e instanceof InvalidValue ? `${JSON.stringify(raw)} ${e.reason}` : String(e) });
      return z.NEVER;
    }
  });
}

export const macSchema = parsedBy((s) => parseMac(s)).describe('MAC address of the guest interface, like 00:16:3e:12:34:56 (unicast, not all-zero)');

function cidrOf(options: CidrOptions, example: string) {
  return parsedBy((s) => parseCidr(s, 'address', options)).describe(`${options.family === 'ipv4' ? 'IPv4' : options.family === 'ipv6' ? 'IPv6' : 'IPv4 or IPv6'} address or prefix, like ${example}`);
}

export const ipv4Schema = cidrOf({ family: 'ipv4', guest: true }, '192.168.0.5 or 10.0.0.0/29');
export const ipv6Schema = cidrOf({ family: 'ipv6', guest: true }, '2001:db8::5 or 2001:db8:1::/64');
const anyCidr = cidrOf({}, '192.168.0.0/24 or 2001:db8::/32');

const portSchema = z
  .union([
    z.number().int().min(1, { message: 'ports are 1-65535' }).max(65535, { message: 'ports are 1-65535' }),
    z
      .string()
      .regex(/^\d{1,5}-\d{1,5}$/, { message: 'expected a port (80) or a range ("8000-8080")' })
      .refine((r) => {
        const [a, b] = r.split('-').map(Number) as [number, number];
        return a >= 1 && b <= 65535 && a <= b;
      }, { message: 'a port range is low-high within 1-65535' }),
  ])
  .describe('port number, or a range "low-high"');

const verdict = z.enum(['accept', 'drop']);

const antispoofSchema = z
  .union([
    z.boolean(),
    z.strictObject({
      mac: z.boolean().optional().describe('drop frames whose source MAC is not the guest MAC'),
      arp: z.boolean().optional().describe('drop ARP whose sender MAC or IP is not the guest'),
      ipv4: z.boolean().optional().describe('drop IPv4 whose source is not a guest address (DHCP client exchange allowed)'),
      ipv6: z.boolean().optional().describe('drop IPv6 whose source is not a guest address or its EUI-64 link-local (DAD allowed), router advertisements, and neighbour advertisements for foreign targets'),
    }),
  ])
  .describe('anti-spoofing: true/false for all, or per family');

export const ruleSchema = z
  .strictObject({
    proto: z.enum(['tcp', 'udp', 'icmp', 'icmpv6', 'any']).describe('protocol; icmp is ICMP for IPv4, icmpv6 for IPv6'),
    ports: z.array(portSchema).min(1).optional().describe('destination ports (tcp, udp)'),
    icmp_types: z.array(z.number().int().min(0).max(254, { message: 'ICMP types are 0-254 (iptables reads 255 as every type; to allow every type, leave icmp_types out)' })).min(1).optional().describe('ICMP or ICMPv6 type numbers 0-254 (icmp, icmpv6)'),
    from: z.array(anyCidr).min(1).optional().describe('allowed sources (allow_in)'),
    to: z.array(anyCidr).min(1).optional().describe('allowed destinations (allow_out)'),
  })
  .superRefine((r, ctx) => {
    if (r.ports && r.proto !== 'tcp' && r.proto !== 'udp') ctx.addIssue({ code: 'custom', path: ['ports'], message: `ports need proto tcp or udp, not ${r.proto}` });
    if (r.icmp_types && r.proto !== 'icmp' && r.proto !== 'icmpv6') ctx.addIssue({ code: 'custom', path: ['icmp_types'], message: `icmp_types need proto icmp or icmpv6, not ${r.proto}` });
  })
  .describe('an allow rule');

const ethertype = z
  .union([z.number().int().min(0x600).max(0xffff), z.string().regex(/^0x[0-9a-fA-F]{4}$/, { message: 'expected an ethertype like 0x88cc' })])
  .transform((v) => (typeof v === 'number' ? v : Number.parseInt(v, 16)))
  .refine((v) => v >= 0x600, { message: 'ethertypes start at 0x0600' })
  .describe('extra ethertype allowed from the guest (beyond IPv4, IPv6, ARP), like 0x88cc');

const commonFields = {
  antispoof: antispoofSchema.optional(),
  inbound: verdict.optional().describe('verdict for traffic to the guest that no allow_in rule matched'),
  outbound: verdict.optional().describe('verdict for traffic from the guest that no allow_out rule matched'),
  isolation: z.boolean().optional().describe('the guest neither reaches nor is reached by other guests on the bridge'),
  allow_ethertypes: z.array(ethertype).optional(),
  router_advertisements: z.boolean().optional().describe('allow the guest to send IPv6 router advertisements (a router guest)'),
  dhcp_server: z.boolean().optional().describe('allow the guest to answer DHCP/DHCPv6 (a DHCP server guest)'),
  log_drops: z.boolean().optional().describe('hand what the IP checks and policies drop to the daemon, at most 6 a minute per rule, which logs it with the domain and reason (xennet drops; default true)'),
  identity_guard: z
    .boolean()
    .optional()
    .describe("while the guest is attached, frames from every other port (the uplink, dom0's port, other guests) that carry its MAC or one of its addresses as their source (or as the sender of an ARP, the target of a neighbour advertisement) are dropped before the bridge learns them (default true); turn it off for an address shared with a machine on the LAN (a VRRP address)"),
  learn_addresses: z
    .boolean()
    .optional()
    .describe('for a guest with no declared address (rule file or xenstore ip): learn its addresses the way a switch does, from the DHCPACK and DHCPv6 Reply of a trusted server (the uplink, dom0, a guest with dhcp_server: true) and, first come first served, from its own duplicate address detection (DAD, ARP probes); until bound it sends only what gets it an address. The daemon does the learning; without it a guest keeps the bindings recorded so far (default true; false leaves such a guest open: it may send from any address)'),
};

export const interfaceSchema = z.strictObject({
  devid: z.number().int().min(0).max(65535).optional().describe('the vif device index (the N of vifD.N); default 0 for the guest-level fields'),
  mac: macSchema.optional(),
  ipv4: z.array(ipv4Schema).optional().describe('the interface IPv4 addresses or prefixes'),
  ipv6: z.array(ipv6Schema).optional().describe('the interface IPv6 addresses or prefixes'),
});

export const guestSchema = z
  .strictObject({
    mac: macSchema.optional(),
    ipv4: z.array(ipv4Schema).optional().describe('IPv4 addresses or prefixes of the first interface (devid 0)'),
    ipv6: z.array(ipv6Schema).optional().describe('IPv6 addresses or prefixes of the first interface (devid 0)'),
    interfaces: z.array(interfaceSchema).optional().describe('further interfaces, matched to a vif by devid or MAC'),
    allow_in: z.array(ruleSchema).optional().describe('traffic to the guest to accept'),
    allow_out: z.array(ruleSchema).optional().describe('traffic from the guest to accept'),
    ...commonFields,
  })
  .describe('a guest, keyed by its domain name');

export const policySchema = z
  .strictObject({
    version: z.literal(1, { message: 'the only rule file version is 1' }),
    backend: z.enum(['xtables', 'nftables']).optional().describe('what the firewall is written to: nftables (xennet\'s own tables bridge xennet and inet xennet) or xtables (iptables physdev + ebtables); `xennet apply` moves the whole firewall. Unset: the backend installed, else nftables where nf_tables and nft work, else xtables'),
    defaults: z.strictObject(commonFields).optional().describe('host-wide defaults for every guest'),
    guests: z
      .record(
        z.string().superRefine((raw, ctx) => {
          try {
            parseGuestKey(raw);
          } catch (e) {
            ctx.addIssue({ code: 'custom', input: raw, message: e instanceof InvalidValue ? `${JSON.stringify(raw)} ${e.reason}` : String(e) });
          }
        }),
        guestSchema,
      )
      .optional()
      .describe('guests by Xen domain name'),
  })
  .describe('xennet rule file');

export type PolicyFile = z.infer<typeof policySchema>;
export type GuestEntry = z.infer<typeof guestSchema>;
export type AllowRule = z.infer<typeof ruleSchema>;
export type Verdict = z.infer<typeof verdict>;

/** The JSON Schema of the rule file (for editors: yaml-language-server `$schema`). */
export function jsonSchema(): unknown {
  return z.toJSONSchema(policySchema, { io: 'input', unrepresentable: 'any' });
}
