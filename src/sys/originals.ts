/**
 * What host settings were before xennet first changed them (this boot), so `xennet uninstall`
 * can put them back: the br_netfilter sysctls, a guest port's dom0 IP stack settings, and a
 * bridge's no_linklocal_learn.
 *
 * One small JSON file per setting under <state dir>/originals/ (`sysctl-<key>.json`,
 * `port-<ifname>.json`, `bridge-<ifname>.json`), not one shared file: hooks run concurrently
 * (a boot storm), and a file per setting needs no lock. A record is written only when xennet is
 * about to change a value (the caller has read it and it differs), before the change, and
 * atomically: a fully written temporary file is link(2)ed to its name, so the first writer wins
 * and the value xennet found first is the one kept. No fsync: the settings themselves do not
 * survive a reboot, and a record of another boot (or of an earlier link of the same name) is
 * ignored and replaced.
 */
import { closeSync, linkSync, lstatSync, openSync, readdirSync, readFileSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { bridgeNetfilterSysctls, guestPortStack } from './sysctl.js';
import { currentBootId } from './boot.js';
import { stateDir, writeAllSync } from './statefile.js';

export interface SysctlOriginal {
  kind: 'sysctl';
  key: string;
  value: string;
}

export interface PortOriginal {
  kind: 'port';
  port: string;
  /** The link's ifindex: a later link of the same name is another port. */
  ifindex: number;
  /** `<family>/<key>` (e.g. `ipv6/disable_ipv6`) -> value before xennet's first change. */
  values: Record<string, string>;
}

export interface BridgeOriginal {
  kind: 'bridge';
  bridge: string;
  ifindex: number;
  noLinkLocalLearn: boolean;
}

export type Original = SysctlOriginal | PortOriginal | BridgeOriginal;
type Stored = Original & { bootId: string };

export const originalsDir = (env: NodeJS.ProcessEnv = process.env): string => join(stateDir(env), 'originals');

export function originalFile(o: Pick<SysctlOriginal, 'kind' | 'key'> | Pick<PortOriginal, 'kind' | 'port'> | Pick<BridgeOriginal, 'kind' | 'bridge'>): string {
  const name = o.kind === 'sysctl' ? o.key : o.kind === 'port' ? o.port : o.bridge;
  if (name.includes('/') || name === '.' || name === '..' || name === '') throw new Error(`not a setting name: ${JSON.stringify(name)}`);
  return `${o.kind}-${name}.json`;
}

/**
 * A record is read as hostile: uninstall writes what it says into /proc/sys as root, and the
 * daemon that may write the state directory runs sandboxed, without that power. So only the
 * settings xennet itself changes are accepted, with values such a setting can have, on a link
 * name the kernel could have, in the file named after that very setting.
 */
const PORT_KEYS = new Set(guestPortStack.map((s) => `${s.family}/${s.key}`));
const SYSCTL_KEYS = new Set<string>(bridgeNetfilterSysctls);
const SETTING_VALUE = /^[0-2]$/;
const LINK_NAME = /^[A-Za-z0-9_.:@+-]{1,15}$/;
const IFINDEX = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v > 0;

function isStored(v: unknown): v is Stored {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  if (typeof o['bootId'] !== 'string') return false;
  if (o['kind'] === 'sysctl') return typeof o['key'] === 'string' && SYSCTL_KEYS.has(o['key']) && typeof o['value'] === 'string' && SETTING_VALUE.test(o['value']);
  if (o['kind'] === 'port') {
    const values = o['values'];
    if (typeof o['port'] !== 'string' || !LINK_NAME.test(o['port']) || !IFINDEX(o['ifindex']) || typeof values !== 'object' || values === null || Array.isArray(values)) return false;
    return Object.entries(values).every(([k, x]) => PORT_KEYS.has(k) && typeof x === 'string' && SETTING_VALUE.test(x));
  }
  if (o['kind'] === 'bridge') return typeof o['bridge'] === 'string' && LINK_NAME.test(o['bridge']) && IFINDEX(o['ifindex']) && typeof o['noLinkLocalLearn'] === 'boolean';
  return false;
}

/** A record file: a regular file (never followed through a link), valid, and named after its own setting. */
function readStored(path: string): Stored | undefined {
  try {
    const st = lstatSync(path);
    if (!st.isFile() || st.size > 4096) return undefined;
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return isStored(v) && originalFile(v) === basename(path) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The records directory, when it is a real directory (a link is never followed). */
function realDir(dir: string): boolean {
  try {
    return lstatSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** Whether a stored record still describes this setting (this boot, the same link). */
function current(s: Stored | undefined, o: Original, boot: string): boolean {
  if (!s || s.bootId !== boot || s.kind !== o.kind) return false;
  if (s.kind === 'port' && o.kind === 'port') return s.ifindex === o.ifindex;
  if (s.kind === 'bridge' && o.kind === 'bridge') return s.ifindex === o.ifindex;
  return true;
}

/**
 * Records a setting's value before xennet changes it, unless this boot's record of it (of the
 * same link) exists: the first value found is kept. Returns whether it wrote a record. Never
 * throws: a record that cannot be written must not stop the change it protects (uninstall then
 * leaves that setting as it is and says so).
 */
export function recordOriginal(o: Original, env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    const dir = originalsDir(env);
    const path = join(dir, originalFile(o));
    const boot = currentBootId();
    const existing = readStored(path);
    if (current(existing, o, boot)) return false;
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    if (!realDir(dir)) return false;
    const tmp = `${path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeAllSync(fd, JSON.stringify({ ...o, bootId: boot }) + '\n');
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    } finally {
      closeSync(fd);
    }
    try {
      if (existing === undefined) {
        try {
          linkSync(tmp, path); // first writer wins
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          // Someone else's record appeared meanwhile: theirs (this boot's) stands, a stale one goes.
          if (current(readStored(path), o, boot)) return false;
          renameSync(tmp, path);
        }
      } else {
        renameSync(tmp, path); // a record of another boot or link: replaced
      }
    } finally {
      rmSync(tmp, { force: true });
    }
    return true;
  } catch {
    return false;
  }
}

export interface OriginalsOnDisk {
  /** This boot's records. */
  records: Original[];
  /** Files of other boots, unreadable ones and leftover temporary files (to remove). */
  stale: string[];
}

export function readOriginals(env: NodeJS.ProcessEnv = process.env): OriginalsOnDisk {
  const dir = originalsDir(env);
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return { records: [], stale: [] };
  }
  if (!realDir(dir)) return { records: [], stale: [] };
  const boot = currentBootId();
  const out: OriginalsOnDisk = { records: [], stale: [] };
  for (const n of names) {
    const s = n.endsWith('.json') ? readStored(join(dir, n)) : undefined;
    if (s && s.bootId === boot) {
      const { bootId: _boot, ...record } = s;
      void _boot;
      out.records.push(record as Original);
    } else {
      out.stale.push(n);
    }
  }
  return out;
}

/** Forgets a port's record (its guest went offline: the link is gone or going, nothing to restore). */
export function forgetPort(port: string, env: NodeJS.ProcessEnv = process.env): void {
  try {
    rmSync(join(originalsDir(env), originalFile({ kind: 'port', port })), { force: true });
  } catch {
    /* not a name a record can have */
  }
}

/** Forgets every record (the directory goes). */
export function removeOriginals(env: NodeJS.ProcessEnv = process.env): void {
  rmSync(originalsDir(env), { recursive: true, force: true });
}
