/**
 * The firewall step of the vif hook. `prepare` runs before any change (a broken rule file fails
 * the hook with nothing touched). The change is staged, then committed under Xen's host-wide
 * `iptables` hotplug lock, or found committed by another lock holder that took it into its batch.
 * Only then is the vif attached, so a guest is never on the bridge without its rules. `remove`
 * runs on offline, once the vif is off the bridge.
 */
import type { IfName } from '../net/index.js';
import type { VifConfig } from './vif-plan.js';

export interface PreparedFirewall {
  /** One line for the hook's log, e.g. `firewall: rule file guest web01, 2 addresses`. */
  summary: string;
  warnings: string[];
  /**
   * Whether exactly these rules are recorded as installed (by an earlier online, `xennet apply`,
   * or the daemon when the backend appeared): then the hook needs only the lock, no commit.
   */
  installed(): boolean;
  /** Under the lock: commits what others staged, then says whether these rules are installed. */
  settle(): Promise<boolean>;
  /** Records the change before the lock is taken (so a lock holder may commit it in a batch). */
  stage(): void;
  /** Resolves once another lock holder committed the staged change; stops watching on abort. */
  committedByOthers(signal: AbortSignal): Promise<void>;
  /**
   * Commits the staged change (the caller holds the hotplug lock); nothing when already done.
   * When the change was superseded (another install of the same name recorded in its place), the
   * hook stages and commits its own again (it is the toolstack's call: its rules are the ones to
   * have); `{ superseded: 'yield' }` (the daemon preparing ahead of the hook) returns false
   * instead, leaving the newer rules in place.
   */
  commit(options?: { superseded?: 'restage' | 'yield' }): Promise<boolean>;
  /**
   * Takes back the staged change (the hook failed): `withdrawn` when nobody had committed it (no
   * rules to remove), `maybe-committed` when a batch holder may have installed it.
   */
  unstage(): 'withdrawn' | 'maybe-committed';
}

/** Whose rules to remove: a guest interface (domain, device) and the names it provably had. */
export interface FirewallTarget {
  domid: number;
  devid: number;
  names: IfName[];
}

export interface VifFirewall {
  prepare(cfg: VifConfig, bridge: IfName): Promise<PreparedFirewall>;
  /** Removes the rules of the target (the caller holds the hotplug lock); true when there were any. */
  remove(target: FirewallTarget): Promise<boolean>;
  /**
   * With a resident committer (the daemon): stages the removal now, without the lock, and leaves
   * the commit to it. For a vif already off the bridge, whose rules serve nobody; a later install
   * under the same name is staged after it and committed after it.
   */
  removeSoon?(target: FirewallTarget): Promise<boolean>;
}

export const noFirewall: VifFirewall = {
  prepare: async () => ({ summary: 'no firewall', warnings: [], installed: () => false, settle: async () => false, stage: () => undefined, committedByOthers: () => new Promise(() => undefined), commit: async () => true, unstage: () => 'withdrawn' as const }),
  remove: async () => false,
};
