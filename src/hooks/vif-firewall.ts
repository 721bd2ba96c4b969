/**
 * The firewall step of the vif hook. `prepare` runs before any change (a broken rule file fails
 * the hook with nothing touched); `install` runs under Xen's host-wide `iptables` hotplug lock,
 * before the vif is attached, so a guest is never on the bridge without its rules; `remove` runs
 * on offline.
 */
import type { VifConfig } from './vif-plan.js';

export interface PreparedFirewall {
  /** One line for the hook's log, e.g. `firewall: rule file guest web01, 2 addresses`. */
  summary: string;
  warnings: string[];
  /** Records the change before the lock is taken (so a lock holder may commit it in a batch). */
  stage?(): void;
  install(): Promise<void>;
}

export interface VifFirewall {
  prepare(cfg: VifConfig, bridge: string): Promise<PreparedFirewall>;
  /** Removes the vif's rules; true when there were any. */
  remove(name: string): Promise<boolean>;
}

export const noFirewall: VifFirewall = {
  prepare: async () => ({ summary: 'no firewall', warnings: [], install: async () => undefined }),
  remove: async () => false,
};
