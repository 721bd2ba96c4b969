/**
 * The throw-away machine the system suite runs on: enter.ts builds it inside a private mount
 * namespace (tmpfs over /run, /etc/xen, /var/log, /tmp; overlayfs over /etc, /usr, /var/lib)
 * and records it here. The test files refuse to run anywhere else, so a plain `mocha`
 * on dist/test/system cannot touch the real /etc/xen, /var/lib or /usr.
 */
import { readFileSync, readlinkSync } from 'node:fs';

export interface Machine {
  /** Where the overlays' upper layers are: `<overlays>/<name>/upper` (etc, usr, var-lib). */
  overlays: string;
  /** Where this suite's mount namespace was checked to be private. */
  mountNamespace: string;
}

let machine: Machine | undefined;

export function setMachine(m: Machine): void {
  machine = m;
}

/** Whether this process's mount namespace differs from its parent's and from pid 1's, and `/` does not propagate. */
export function inPrivateMountNamespace(): { ok: boolean; why: string } {
  const self = readlinkSync('/proc/self/ns/mnt');
  for (const other of [String(process.ppid), '1']) {
    let theirs: string;
    try {
      theirs = readlinkSync(`/proc/${other}/ns/mnt`);
    } catch {
      continue;
    }
    if (theirs === self) return { ok: false, why: `mount namespace ${self} is shared with pid ${other}` };
  }
  const root = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] === '/');
  const shared = root.find((f) => f.slice(6, f.indexOf('-')).some((o) => o.startsWith('shared:')));
  if (shared) return { ok: false, why: `/ is a shared mount (${shared.slice(6, shared.indexOf('-')).join(' ')})` };
  return { ok: true, why: self };
}

/** The machine enter.ts built; throws outside it. */
export function theMachine(): Machine {
  const check = inPrivateMountNamespace();
  if (!machine || !check.ok || readlinkSync('/proc/self/ns/mnt') !== machine.mountNamespace) {
    throw new Error(`the system suite runs only through \`npm run test:system\` (unshare + dist/test/system/enter.js), never on the real machine${check.ok ? '' : `: ${check.why}`}`);
  }
  return machine;
}

export const XEN_SCRIPTS = '/etc/xen/scripts';
export const RULES_FILE = '/etc/xen/xennet.yaml';
export const STATE_DIR = '/var/lib/xennet';
export const LOCK_DIR = '/var/run/xen-hotplug';
export const LOCK_FILE = '/var/run/xen-hotplug/iptables';
export const XENSTORED_SOCKET = '/var/run/xenstored/socket';
