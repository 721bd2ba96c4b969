/**
 * Which network manager claims the NIC, from its configuration files (the daemons need not run).
 * A takeover under a manager's feet is undone by it (it reconfigures "its" NIC, now the bridge
 * port peth0, or fights over the new eth0), so `xennet bridge start` refuses such a NIC.
 *
 * Recognised (a documented subset of what the managers match on):
 *
 * - systemd-networkd: `*.network` files in /etc/systemd/network, /run/systemd/network,
 *   /usr/lib/systemd/network and /lib/systemd/network. A file of the same name in an earlier
 *   directory hides the later ones (an empty file or a link to /dev/null masks it). The [Match]
 *   section is evaluated for `Name=` (space-separated shell globs, `!` before the list inverts
 *   it, an empty assignment resets it) and `MACAddress=`/`PermanentMACAddress=` (lists of
 *   MACs). A file with an empty or missing [Match] matches every link, as networkd does. A
 *   [Match] with only other conditions (Type=, Driver=, Kind=, ...) is not taken as a claim.
 *   Other conditions next to a matching Name=/MAC are assumed to hold. Drop-ins
 *   (`*.network.d/*.conf`) and alternative names are not read.
 * - NetworkManager: keyfiles `*.nmconnection` in /etc/NetworkManager/system-connections and
 *   /run/NetworkManager/system-connections whose [connection] `interface-name=` is the NIC, or
 *   whose [ethernet] (or [802-3-ethernet]) `mac-address=` is the NIC's MAC.
 *
 * ifupdown (/etc/network/interfaces) is not a claim: xennet's takeover keeps the NIC's name on
 * the host side, where ifupdown expects it.
 */
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';

export type ManagerName = 'systemd-networkd' | 'NetworkManager';

/** A configuration file as read: where it lies and its text. */
export interface ConfigFile {
  /** The directory it was found in. */
  dir: string;
  /** The file name. */
  name: string;
  /** Its text; null for a masked file (empty, or a link to /dev/null). */
  text: string | null;
}

export interface ManagerFiles {
  /** `*.network` files, per directory in networkd's order of precedence (first wins). */
  networkd: ConfigFile[][];
  /** NetworkManager keyfiles. */
  networkManager: ConfigFile[];
}

export interface ManagerClaim {
  manager: ManagerName;
  /** The file that claims the NIC. */
  file: string;
  /** Which setting matched, e.g. `Name=en*`. */
  match: string;
}

export interface ManagerRoots {
  networkd: string[];
  networkManager: string[];
}

export const defaultManagerRoots: ManagerRoots = {
  networkd: ['/etc/systemd/network', '/run/systemd/network', '/usr/lib/systemd/network', '/lib/systemd/network'],
  networkManager: ['/etc/NetworkManager/system-connections', '/run/NetworkManager/system-connections'],
};

/** An INI-like file (systemd unit syntax and NetworkManager keyfiles) as [section, key, value] rows in order. */
function parseIni(text: string): { section: string; key: string; value: string }[] {
  const rows: { section: string; key: string; value: string }[] = [];
  let section = '';
  let pending = '';
  for (const raw of text.split('\n')) {
    let line = pending + raw.replace(/\r$/, '');
    pending = '';
    if (line.endsWith('\\')) {
      pending = line.slice(0, -1) + ' ';
      continue;
    }
    line = line.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!.trim();
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    rows.push({ section, key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() });
  }
  return rows;
}

/** A MAC in any of networkd's and NetworkManager's spellings as 12 lower-case hex digits, or undefined. */
export function normaliseMac(text: string): string | undefined {
  const hex = text.toLowerCase().replace(/[:.-]/g, '');
  return /^[0-9a-f]{12}$/.test(hex) ? hex : undefined;
}

/**
 * fnmatch(3) without flags: `*`, `?` and `[...]` (with `!`/`^` negation). Matched position by
 * position (time linear in the pattern times the name), never through a backtracking regular
 * expression: a hostile `Name=***...Z` in a .network file must not stall the boot takeover.
 */
export function globMatch(pattern: string, name: string): boolean {
  const tokens: ({ star: true } | { one: (c: string) => boolean })[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (!('star' in (tokens[tokens.length - 1] ?? {}))) tokens.push({ star: true });
    } else if (c === '?') tokens.push({ one: () => true });
    else if (c === '[' && pattern.indexOf(']', i + 2) >= 0) {
      const end = pattern.indexOf(']', i + 2);
      let body = pattern.slice(i + 1, end);
      if (body.startsWith('!') || body.startsWith('^')) body = '^' + body.slice(1);
      let cls: RegExp;
      try {
        cls = new RegExp(`^[${body.replace(/\\/g, '\\\\')}]$`);
      } catch {
        return false;
      }
      tokens.push({ one: (x) => cls.test(x) });
      i = end;
    } else tokens.push({ one: (x) => x === c });
  }
  let reach = new Array<boolean>(name.length + 1).fill(false);
  reach[0] = true;
  for (const t of tokens) {
    const next = new Array<boolean>(name.length + 1).fill(false);
    if ('star' in t) {
      let seen = false;
      for (let j = 0; j <= name.length; j++) next[j] = seen = seen || reach[j]!;
    } else {
      for (let j = 0; j < name.length; j++) if (reach[j] && t.one(name[j]!)) next[j + 1] = true;
    }
    reach = next;
  }
  return reach[name.length]!;
}

/** The words of a list setting, systemd-style (whitespace-separated, optional quotes). */
function words(value: string): string[] {
  return value
    .split(/\s+/)
    .map((w) => w.replace(/^"(.*)"$/, '$1'))
    .filter((w) => w !== '');
}

/** Whether a networkd `.network` file's [Match] section selects the NIC; the matching setting, or undefined. */
export function networkdMatch(text: string, nic: { name: string; mac: string }): string | undefined {
  const rows = parseIni(text).filter((r) => r.section === 'Match');
  let names: string[] = [];
  let macs: string[] = [];
  let macKey = '';
  let others = 0;
  for (const r of rows) {
    if (r.key === 'Name') {
      names = r.value === '' ? [] : [...names, ...words(r.value)];
    } else if (r.key === 'MACAddress' || r.key === 'PermanentMACAddress') {
      macs = r.value === '' ? [] : [...macs, ...words(r.value)];
      macKey = r.key;
    } else if (r.value !== '') {
      others++;
    }
  }
  if (names.length === 0 && macs.length === 0) return others === 0 ? '[Match] (empty: every link)' : undefined;
  const hits: string[] = [];
  if (names.length > 0) {
    const inverted = names[0]!.startsWith('!');
    const globs = inverted ? [names[0]!.slice(1), ...names.slice(1)].filter((g) => g !== '') : names;
    const hit = globs.some((g) => globMatch(g, nic.name));
    if (hit === inverted) return undefined;
    hits.push(`Name=${names.join(' ')}`);
  }
  if (macs.length > 0) {
    const inverted = macs[0]!.startsWith('!');
    const list = (inverted ? [macs[0]!.slice(1), ...macs.slice(1)] : macs).map(normaliseMac);
    const hit = list.includes(normaliseMac(nic.mac));
    if (hit === inverted) return undefined;
    hits.push(`${macKey}=${macs.join(' ')}`);
  }
  return hits.join(', ');
}

/** Whether a NetworkManager keyfile is a connection for the NIC; the matching setting, or undefined. */
export function keyfileMatch(text: string, nic: { name: string; mac: string }): string | undefined {
  const rows = parseIni(text);
  const iface = rows.find((r) => r.section === 'connection' && r.key === 'interface-name');
  if (iface && iface.value === nic.name) return `interface-name=${iface.value}`;
  const mac = rows.find((r) => (r.section === 'ethernet' || r.section === '802-3-ethernet') && r.key === 'mac-address');
  if (mac && normaliseMac(mac.value) !== undefined && normaliseMac(mac.value) === normaliseMac(nic.mac)) return `mac-address=${mac.value}`;
  // [match] interface-name=: globs, `!` excludes (NetworkManager 1.14 and later).
  const matchNames = rows.find((r) => r.section === 'match' && r.key === 'interface-name');
  if (matchNames) {
    const pats = matchNames.value.split(/[;,\s]+/).filter((p) => p !== '');
    if (pats.some((p) => p.startsWith('!') && globMatch(p.slice(1), nic.name))) return undefined;
    const hit = pats.find((p) => !p.startsWith('!') && globMatch(p, nic.name));
    if (hit !== undefined) return `[match] interface-name=${matchNames.value}`;
    return undefined;
  }
  // An ethernet profile bound to no interface and no MAC (NetworkManager's "Wired connection 1")
  // is applied to any ethernet NIC, this one included.
  const type = rows.find((r) => r.section === 'connection' && r.key === 'type')?.value;
  if ((type === 'ethernet' || type === '802-3-ethernet') && !iface && !mac) return `type=${type} with no interface-name or mac-address (any ethernet NIC)`;
  return undefined;
}

/** The managers whose configuration claims the NIC (pure: the files are given). */
export function findManagerClaims(files: ManagerFiles, nic: { name: string; mac: string }): ManagerClaim[] {
  const claims: ManagerClaim[] = [];
  // networkd: a name seen in an earlier directory hides the same name later; files apply in name order.
  const effective = new Map<string, ConfigFile>();
  for (const dir of files.networkd) for (const f of dir) if (!effective.has(f.name)) effective.set(f.name, f);
  for (const name of [...effective.keys()].sort()) {
    const f = effective.get(name)!;
    if (f.text === null) continue;
    const match = networkdMatch(f.text, nic);
    if (match !== undefined) claims.push({ manager: 'systemd-networkd', file: join(f.dir, f.name), match });
  }
  for (const f of files.networkManager) {
    if (f.text === null) continue;
    const match = keyfileMatch(f.text, nic);
    if (match !== undefined) claims.push({ manager: 'NetworkManager', file: join(f.dir, f.name), match });
  }
  return claims;
}

function readDir(dir: string, suffix: string): ConfigFile[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(suffix));
  } catch {
    return [];
  }
  const out: ConfigFile[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    try {
      if (realpathSync(path) === '/dev/null') {
        out.push({ dir, name, text: null });
        continue;
      }
      if (!statSync(path).isFile()) continue;
      const text = readFileSync(path, 'utf8');
      out.push({ dir, name, text: text.trim() === '' ? null : text });
    } catch {
      // A dangling link or an unreadable file: the manager cannot use it either.
    }
  }
  return out;
}

/** Reads the managers' configuration files from `roots` (the real paths unless a test passes others). */
export function readManagerFiles(roots: ManagerRoots = defaultManagerRoots): ManagerFiles {
  return {
    networkd: roots.networkd.map((d) => readDir(d, '.network')),
    networkManager: roots.networkManager.flatMap((d) => readDir(d, '.nmconnection')),
  };
}

/** What to do instead, per manager, for the refusal's hint. */
export function managerAdvice(manager: ManagerName, nic: string, bridge: string): string {
  if (manager === 'systemd-networkd') {
    return (
      `let systemd-networkd build the bridge: a ${bridge}.netdev with [NetDev] Name=${bridge} Kind=bridge, ` +
      `[Match] Name=${nic} + [Network] Bridge=${bridge} in the file that claims ${nic}, and the host's addresses in a ${bridge}.network ` +
      `([Match] Name=${bridge}); then point the toolstack at ${bridge} and use xennet only for the vif hooks and the firewall`
    );
  }
  return (
    `let NetworkManager build the bridge: nmcli connection add type bridge ifname ${bridge} con-name ${bridge} ` +
    `(with the host's addresses: ipv4.method ...), nmcli connection add type bridge-slave ifname ${nic} master ${bridge}, ` +
    `and take down the connection that claims ${nic}; then point the toolstack at ${bridge} and use xennet only for the vif hooks and the firewall`
  );
}
