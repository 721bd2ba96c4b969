/**
 * Which name a domain's policy is resolved from: its real identity, not always the name it has
 * right now (pure, plus the xenstore reader).
 *
 *   - `xl migrate` creates the domain on the receiving host as `<name>--incoming` and renames it
 *     to `<name>` once it runs there; the sending host renames its copy `<name>--migratedaway`
 *     just before it hands over (tools/xl/xl_migrate.c). Both are `<name>`, running elsewhere:
 *     its policy applies, but its MAC and addresses are not guarded against other ports here.
 *   - A device-model stub domain (`<name>-dm`, libxl__spawn_stub_dm) carries an HVM guest's
 *     emulated NIC: libxl writes `/local/domain/<dm>/target` (read-only for the stub domain)
 *     with the guest's domid. Its vif gets the guest's policy.
 *
 * Names come from dom0's toolstack (a guest cannot write `name` or `target`), but they are parsed
 * as hostile anyway: a `target` that is not a guest's domid is ignored and reported.
 */
import { parseDomainName, type DomainName } from '../net/index.js';
import type { XenstoreClient } from '../xenstore/client.js';

export type PolicyNameSource = 'name' | 'incoming' | 'migratedaway' | 'stubdom';

export interface DomainIdentity {
  /** The name the policy is resolved from (undefined: no usable name). */
  policyName?: DomainName;
  source: PolicyNameSource;
  /**
   * The guest runs on another host, or not yet here (a live migration in flight): its frames
   * legitimately come in through the uplink, so its MAC and addresses are not guarded here.
   */
  elsewhere: boolean;
  /** For a stub domain: the domid of the guest it serves. */
  target?: number;
  /** What was read that did not make sense (ignored). */
  warnings: string[];
}

/** What xenstore says about a domain's name: its own name, `target`, and the target's name. */
export interface DomainNames {
  domid: number;
  name?: string | undefined;
  target?: string | undefined;
  targetName?: string | undefined;
}

const SUFFIXES: readonly [string, PolicyNameSource][] = [
  ['--incoming', 'incoming'],
  ['--migratedaway', 'migratedaway'],
];

const DOMID_FIRST_RESERVED = 0x7ff0;

/** A `target` node: the decimal domid of a guest (1 .. DOMID_FIRST_RESERVED-1), else undefined. */
export function parseTargetDomid(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^[1-9]\d{0,4}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n < DOMID_FIRST_RESERVED ? n : undefined;
}

/** A name without xl's migration suffix, and which suffix it had. */
function unsuffixed(name: DomainName): { name: DomainName; source: PolicyNameSource } {
  for (const [suffix, source] of SUFFIXES) {
    if (name.length > suffix.length && name.endsWith(suffix)) return { name: name.slice(0, -suffix.length) as DomainName, source };
  }
  return { name, source: 'name' };
}

function parsedName(raw: string | undefined, what: string, warnings: string[]): DomainName | undefined {
  if (raw === undefined || raw === '') return undefined;
  try {
    return parseDomainName(raw, what);
  } catch (e) {
    warnings.push(e instanceof Error ? e.message : String(e));
    return undefined;
  }
}

export function domainIdentity(n: DomainNames): DomainIdentity {
  const warnings: string[] = [];
  if (n.target !== undefined && n.target !== '') {
    const target = parseTargetDomid(n.target);
    if (target === undefined || target === n.domid) {
      warnings.push(`/local/domain/${n.domid}/target ${JSON.stringify(n.target.slice(0, 20))} is not another guest's domid: ignored`);
    } else {
      const name = parsedName(n.targetName, `/local/domain/${target}/name`, warnings);
      const u = name ? unsuffixed(name) : undefined;
      const id: DomainIdentity = { source: 'stubdom', elsewhere: u !== undefined && u.source !== 'name', target, warnings };
      if (u) id.policyName = u.name;
      return id;
    }
  }
  const name = parsedName(n.name, `/local/domain/${n.domid}/name`, warnings);
  if (!name) return { source: 'name', elsewhere: false, warnings };
  const u = unsuffixed(name);
  return { policyName: u.name, source: u.source, elsewhere: u.source !== 'name', warnings };
}

/** How the policy name was found, in words (status, logs). */
export function describeIdentity(id: Pick<DomainIdentity, 'source' | 'target'>): string {
  switch (id.source) {
    case 'incoming':
      return 'being received by live migration';
    case 'migratedaway':
      return 'migrated away, about to be destroyed';
    case 'stubdom':
      return `stub domain of domain ${id.target ?? '?'}`;
    default:
      return 'its name';
  }
}

/** The xenstore paths the identity depends on (watched to follow renames). */
export function identityPaths(n: Pick<DomainNames, 'domid' | 'target'>): string[] {
  const t = parseTargetDomid(n.target);
  return [`/local/domain/${n.domid}/name`, `/local/domain/${n.domid}/target`, ...(t !== undefined ? [`/local/domain/${t}/name`] : [])];
}

/** A digest of what the identity was read from: it changes when the domain (or its target) is renamed. */
export function namesKey(n: DomainNames): string {
  return JSON.stringify([n.name || null, n.target || null, n.targetName || null]);
}

/** Reads a domain's name, its `target` and (for a stub domain) the target's name. */
export async function readDomainNames(xs: Pick<XenstoreClient, 'read'>, domid: number): Promise<DomainNames> {
  const [name, target] = await Promise.all([xs.read(`/local/domain/${domid}/name`), xs.read(`/local/domain/${domid}/target`)]);
  const t = parseTargetDomid(target);
  const targetName = t !== undefined && t !== domid ? await xs.read(`/local/domain/${t}/name`) : undefined;
  return { domid, name, target, targetName };
}
