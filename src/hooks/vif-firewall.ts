/**
 * The firewall step of the vif hook: install a vif's rules on online, remove them on offline.
 * Runs under Xen's host-wide `iptables` hotplug lock. Until the guest firewall lands this is a
 * no-op hook point.
 */
import type { VifConfig } from './vif-plan.js';

export interface VifFirewall {
  install(cfg: VifConfig, bridge: string): Promise<void>;
  remove(name: string): Promise<void>;
}

export const noFirewall: VifFirewall = {
  install: async () => undefined,
  remove: async () => undefined,
};
