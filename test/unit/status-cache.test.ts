/** A remembered status served later: learned bindings' remaining time moves on; never below 0. */
import assert from 'node:assert/strict';
import { agedStatus } from '../../src/daemon/status-cache.js';
import type { HostStatus, VifStatus } from '../../src/status/host-status.js';

const vif = (name: string, learned: VifStatus['learned']): VifStatus =>
  ({ name, learned }) as unknown as VifStatus;
const status = (vifs: VifStatus[]): HostStatus => ({ ok: true, problems: [], notes: [], vifs }) as unknown as HostStatus;

describe('a remembered status, served later', function () {
  it('counts each learned binding down by the time since it was read', function () {
    const s = status([vif('vif1.0', [{ address: '192.0.2.5', how: 'dhcp', expiresInSeconds: 100 }, { address: 'fe80::1', how: 'dad', expiresInSeconds: null }]), vif('vif2.0', [])]);
    const later = agedStatus(s, 30_400);
    assert.deepEqual(later.vifs[0]!.learned, [{ address: '192.0.2.5', how: 'dhcp', expiresInSeconds: 70 }, { address: 'fe80::1', how: 'dad', expiresInSeconds: null }]);
    assert.equal(s.vifs[0]!.learned[0]!.expiresInSeconds, 100, 'the remembered one is left as it was');
    assert.equal(agedStatus(s, 900), s, 'within the same second: as read');
  });

  it('never counts a binding below 0 (the answer itself ends when the first binding runs out)', function () {
    const s = status([vif('vif1.0', [{ address: '192.0.2.5', how: 'dhcp', expiresInSeconds: 10 }])]);
    assert.equal(agedStatus(s, 9_000).vifs[0]!.learned[0]!.expiresInSeconds, 1);
    assert.equal(agedStatus(s, 10_900).vifs[0]!.learned[0]!.expiresInSeconds, 0);
  });
});
