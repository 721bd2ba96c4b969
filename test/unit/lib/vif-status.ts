/** A guest interface as `status` reports it, for tests: web01's vif5.0, in sync, with what a test changes. */
import type { VifStatus } from '../../../src/status/host-status.js';

export const vifStatus = (name: string, over: Partial<VifStatus>): VifStatus => ({
  name,
  domain: 'web01',
  domid: 5,
  devid: 0,
  mac: '00:16:3e:00:00:05',
  addresses: ['192.168.0.105'],
  mtu: 1500,
  up: true,
  bridge: 'xenbr0',
  hotplugStatus: 'connected',
  firewall: 'in-sync',
  drops: { packets: 0, bytes: 0, reasons: {} },
  policy: 'web01',
  policyName: 'web01',
  policySource: 'name',
  claims: { mac: [], ipv4: [], ipv6: [], dropped: { packets: 0, bytes: 0 } },
  addressSource: 'declared',
  learned: [],
  ...over,
});
