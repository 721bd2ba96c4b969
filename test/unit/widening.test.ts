/** Widenings: what a new policy opens up against the one a guest's installed rules came from. */
import assert from 'node:assert/strict';
import { parsePolicy } from '../../src/config/load.js';
import { planWidenings } from '../../src/firewall/cli-plan.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import type { IndexEntry } from '../../src/firewall/store.js';
import { coarseWidenings, filterRecord, parseFilterRecord, widenings, type FilterRecord } from '../../src/firewall/widening.js';
import { dom, ifn } from './lib/values.js';

/** The filter record of guest web as `guest` (YAML flow mapping) describes it. */
function rec(guest: string): FilterRecord {
  const policy = parsePolicy(`version: 1\nguests:\n  web: ${guest}\n`, 'x.yaml');
  return filterRecord(resolveVif(policy, { name: ifn('vif5.0'), bridge: ifn('xenbr0'), domain: dom('web'), ipv4: [], ipv6: [] }));
}

const wider = (before: string, after: string): string[] => widenings(rec(before), rec(after));

describe('plan widenings (pure)', () => {
  it('inbound or outbound drop gone, isolation removed', () => {
    assert.deepEqual(wider('{ inbound: drop, isolation: true }', '{}'), ['inbound drop -> accept', 'isolation removed']);
    assert.deepEqual(wider('{ outbound: drop }', '{ outbound: accept }'), ['outbound drop -> accept']);
    assert.deepEqual(wider('{}', '{ inbound: drop, isolation: true }'), [], 'narrowing is not widening');
    assert.deepEqual(wider('{ inbound: drop, isolation: true }', '{ inbound: drop, isolation: true }'), []);
  });

  it('an allow list grown: a rule added, ports or prefixes grown, proto any, a prefix dropped', () => {
    const base = '{ inbound: drop, allow_in: [ { proto: tcp, ports: [443], from: [10.0.0.0/8] } ] }';
    assert.deepEqual(wider(base, '{ inbound: drop, allow_in: [ { proto: tcp, ports: [443], from: [10.0.0.0/8] }, { proto: udp, ports: [53] } ] }'), ['allow_in now also accepts udp port 53 from anywhere']);
    assert.deepEqual(wider(base, '{ inbound: drop, allow_in: [ { proto: tcp, ports: ["443-444"], from: [10.0.0.0/8] } ] }'), ['allow_in now also accepts tcp port 443-444 from 10.0.0.0/8']);
    assert.deepEqual(wider(base, '{ inbound: drop, allow_in: [ { proto: tcp, ports: [443], from: [10.0.0.0/7] } ] }'), ['allow_in now also accepts tcp port 443 from 10.0.0.0/7']);
    assert.deepEqual(wider(base, '{ inbound: drop, allow_in: [ { proto: tcp, ports: [443] } ] }'), ['allow_in now also accepts tcp port 443 from anywhere']);
    assert.deepEqual(wider(base, '{ inbound: drop, allow_in: [ { proto: tcp, from: [10.0.0.0/8] } ] }'), ['allow_in now also accepts tcp from 10.0.0.0/8']);
    assert.deepEqual(wider(base, '{ inbound: drop, allow_in: [ { proto: any, from: [10.0.0.0/8] } ] }'), ['allow_in now also accepts any from 10.0.0.0/8']);
    assert.deepEqual(wider('{ outbound: drop, allow_out: [ { proto: icmp, icmp_types: [8] } ] }', '{ outbound: drop, allow_out: [ { proto: icmp } ] }'), ['allow_out now also accepts icmp to anywhere']);
  });

  it('an allow list narrowed, split or unchanged is not a widening', () => {
    const base = '{ inbound: drop, allow_in: [ { proto: tcp, ports: ["8000-8080"], from: [10.0.0.0/8] }, { proto: any, from: [192.168.0.0/16] } ] }';
    assert.deepEqual(wider(base, base), []);
    assert.deepEqual(wider(base, '{ inbound: drop, allow_in: [ { proto: tcp, ports: [8000, "8001-8080"], from: [10.1.0.0/16, 10.2.0.0/16] } ] }'), []);
    assert.deepEqual(wider(base, '{ inbound: drop, allow_in: [ { proto: udp, ports: [53], from: [192.168.1.0/24] } ] }'), [], 'proto any of the old covers it');
    assert.deepEqual(wider(base, '{ inbound: drop }'), []);
    assert.deepEqual(wider('{ inbound: drop, allow_in: [ { proto: tcp, ports: ["1-100"] }, { proto: tcp, ports: ["101-200"] } ] }', '{ inbound: drop, allow_in: [ { proto: tcp, ports: ["50-150"] } ] }'), [], 'the union of the old ranges covers it');
    assert.deepEqual(wider('{ inbound: drop, allow_in: [ { proto: tcp, ports: ["1-100"] }, { proto: tcp, ports: ["102-200"] } ] }', '{ inbound: drop, allow_in: [ { proto: tcp, ports: ["50-150"] } ] }'), ['allow_in now also accepts tcp port 50-150 from anywhere'], 'port 101 was closed');
    assert.deepEqual(wider('{ inbound: drop, allow_in: [ { proto: tcp, ports: [22] } ] }', '{ inbound: drop, allow_in: [ { proto: tcp, ports: [22], from: [2001:db8::/32] } ] }'), []);
  });

  it('an allow list of a direction that accepts anyway does not count', () => {
    assert.deepEqual(wider('{ allow_in: [ { proto: tcp, ports: [22] } ] }', '{ allow_in: [ { proto: any } ] }'), []);
  });

  it('records survive the index (JSON) and a damaged one is not taken for a policy', () => {
    const r = rec('{ inbound: drop, isolation: true, allow_in: [ { proto: tcp, ports: [443, "8000-8080"], from: [10.0.0.0/8, 2001:db8::/32] } ], allow_out: [ { proto: icmpv6, icmp_types: [128] } ] }');
    assert.deepEqual(parseFilterRecord(JSON.parse(JSON.stringify(r))), r);
    assert.equal(parseFilterRecord({ ...r, inbound: 'maybe' }), undefined);
    assert.equal(parseFilterRecord({ ...r, allowIn: [{ proto: 'gre' }] }), undefined);
    assert.equal(parseFilterRecord(null), undefined);
  });

  it('per vif, from the index: the full record when there is one, else inbound and isolation', () => {
    const policy = parsePolicy('version: 1\nguests:\n  web: {}\n  db: { inbound: drop }\n  app: {}\n', 'x.yaml');
    const resolved = ['web', 'db', 'app', 'new'].map((n, i) => resolveVif(policy, { name: ifn(`vif${i + 1}.0`), bridge: ifn('xenbr0'), domain: dom(n), ipv4: [], ipv6: [] }));
    const entry = (e: Partial<IndexEntry>): IndexEntry => ({ bridge: ifn('xenbr0'), inbound: false, isolated: false, state: 'installed', ...e });
    const installed: Record<string, IndexEntry> = {
      'vif1.0': entry({ inbound: true, isolated: true, filter: rec('{ inbound: drop, isolation: true }') }),
      'vif2.0': entry({ inbound: true, filter: rec('{ inbound: drop, allow_in: [ { proto: tcp, ports: [22] } ] }') }),
      // Adopted from the live rules (no record of the policy): what the index knows.
      'vif3.0': entry({ inbound: true, isolated: true }),
    };
    assert.deepEqual(planWidenings(installed, resolved), [
      { vif: 'vif1.0', domain: 'web', changes: ['inbound drop -> accept', 'isolation removed'] },
      { vif: 'vif3.0', domain: 'app', changes: ['inbound drop -> accept', 'isolation removed'] },
    ]);
    assert.deepEqual(coarseWidenings({ inbound: true, isolated: false }, rec('{ inbound: drop }')), []);
  });
});
