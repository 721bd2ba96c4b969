/** Metrics: the exposition passes promtool's check, labels are escaped, hook figures follow the journal across its rotation. */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HookRecord } from '../../src/hooks/hook-journal.js';
import { labelValue, renderMetrics } from '../../src/metrics/exposition.js';
import { HOOK_BUCKETS, HookStats, JournalFollower } from '../../src/metrics/hook-stats.js';
import type { HostStatus } from '../../src/status/host-status.js';
import { vifStatus } from './lib/vif-status.js';
import { findProgram, run } from '../../src/sys/exec.js';

const vif = vifStatus;

const host: HostStatus = {
  ok: false,
  problems: ['vif9.0 (evil): firewall drifted'],
  notes: [],
  backend: null,
  bridgeNetfilter: {},
  rules: { file: '/etc/xen/xennet.yaml', state: 'valid' },
  xenstore: 'x',
  bridges: [],
  vifs: [
    vif('vif5.0', { drops: { packets: 23, bytes: 1380, reasons: { spoof4: { packets: 20, bytes: 1200 }, in: { packets: 3, bytes: 180 } } }, claims: { mac: [], ipv4: [], ipv6: [], dropped: { packets: 4, bytes: 240 } } }),
    // A guest may name its domain anything xenstore takes: quotes, backslashes, a newline.
    vif('vif9.0', { domain: 'evil"} 1\nxennet_status_ok{x="\\', domid: 9, firewall: 'drifted', drops: { packets: 7, bytes: 0, reasons: { out: { packets: 7, bytes: 0 } } } }),
  ],
  staleChains: [],
  failedBackends: [],
  pendingBackends: [],
  installed: true,
};

const record = (command: string, ms: number, ok = true, via: HookRecord['via'] = 'daemon'): HookRecord => ({ at: new Date().toISOString(), command, vif: 'vif5.0', domid: 5, devid: 0, ms, via, ok, message: 'x' });

describe('metrics', () => {
  const text = (): string => {
    const hooks = new HookStats();
    for (const r of [record('online', 12), record('online', 180), record('offline', 3, false, 'in-process'), record('evil"op', 1)]) hooks.add(r);
    return renderMetrics({ status: host, readAt: Date.parse('2026-12-06T04:00:00Z'), hooks: hooks.all(), daemon: { repairs: 2, rssBytes: 99_000_000, uptimeSeconds: 3600 } });
  };

  it('pass `promtool check metrics` (the Debian package prometheus; CI installs it)', async () => {
    const promtool = findProgram('promtool');
    assert.ok(promtool, 'promtool is not installed (apt-get install prometheus)');
    const r = await run(promtool, ['check', 'metrics'], { input: text() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout + r.stderr, '', 'no lint warning either');
  });

  it('drops by guest and reason, in sync per guest, hooks by operation and path; hostile names escaped, unknown operations are `other`', () => {
    const t = text();
    assert.match(t, /^xennet_guest_dropped_packets_total\{domain="web01",interface="vif5\.0",reason="spoof4"\} 20$/m);
    assert.match(t, /^xennet_guest_dropped_bytes_total\{domain="web01",interface="vif5\.0",reason="in"\} 180$/m);
    assert.match(t, /^xennet_guest_firewall_in_sync\{domain="web01",interface="vif5\.0"\} 1$/m);
    assert.match(t, /^xennet_guest_identity_dropped_packets_total\{domain="web01",interface="vif5\.0"\} 4$/m);
    assert.ok(t.includes(`xennet_guest_firewall_in_sync{domain="${labelValue('evil"} 1\nxennet_status_ok{x="\\')}",interface="vif9.0"} 0`));
    assert.equal(labelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
    assert.ok(!t.split('\n').some((l) => l.startsWith('xennet_status_ok{')), 'a domain name cannot make a line of its own');
    assert.match(t, /^xennet_hook_duration_seconds_bucket\{operation="online",path="daemon",le="0\.025"\} 1$/m);
    assert.match(t, /^xennet_hook_duration_seconds_bucket\{operation="online",path="daemon",le="\+Inf"\} 2$/m);
    assert.match(t, /^xennet_hook_duration_seconds_sum\{operation="online",path="daemon"\} 0\.192$/m);
    assert.match(t, /^xennet_hook_failures_total\{operation="offline",path="in-process"\} 1$/m);
    assert.match(t, /operation="other"/);
    assert.ok(!t.includes('evil"op'));
    assert.match(t, /^xennet_daemon_resident_memory_bytes 99000000$/m);
    assert.match(t, /^xennet_status_ok 0$/m);
    assert.match(t, /^xennet_problems 1$/m);
    assert.ok(!/192\.168|2001:db8/.test(t), 'never an address');
  });

  it('a histogram\'s buckets are cumulative', () => {
    const h = new HookStats();
    h.add(record('online', 7));
    h.add(record('online', 60_000));
    const [s] = h.all();
    assert.deepEqual(s!.buckets, HOOK_BUCKETS.map((b) => (b >= 0.01 ? 1 : 0)));
    assert.equal(s!.count, 2);
  });

  it('the journal is followed: new lines only, a cut line once it is whole, across its rotation', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-journal-'));
    try {
      const path = join(dir, 'hooks.log');
      const line = (ms: number): string => `${JSON.stringify(record('online', ms))}\n`;
      writeFileSync(`${path}.1`, line(1));
      writeFileSync(path, line(2) + line(3));
      const f = new JournalFollower(path);
      assert.deepEqual(f.next().map((r) => r.ms), [1, 2, 3], 'first: all it holds');
      assert.deepEqual(f.next(), []);
      const four = line(4);
      appendFileSync(path, four.slice(0, 10));
      assert.deepEqual(f.next(), [], 'a line being written waits');
      appendFileSync(path, four.slice(10) + line(5));
      assert.deepEqual(f.next().map((r) => r.ms), [4, 5]);
      appendFileSync(path, line(6));
      renameSync(path, `${path}.1`);
      writeFileSync(path, line(7));
      assert.deepEqual(f.next().map((r) => r.ms), [6, 7], 'the rest of the one moved aside, then the new one');
      // Moved aside, and no new journal yet (the next hook call makes it): nothing counted twice.
      appendFileSync(path, line(8));
      renameSync(path, `${path}.1`);
      assert.deepEqual(f.next().map((r) => r.ms), [8]);
      assert.deepEqual(f.next(), [], 'the older generation is not read again');
      assert.deepEqual(f.next(), []);
      writeFileSync(path, line(9));
      assert.deepEqual(f.next().map((r) => r.ms), [9]);
      // Moved aside twice between two looks: the generation between is read whole, then the new journal.
      appendFileSync(path, line(10));
      renameSync(path, `${path}.1`);
      writeFileSync(path, line(11));
      renameSync(path, `${path}.1`);
      writeFileSync(path, line(12));
      assert.deepEqual(f.next().map((r) => r.ms), [11, 12]);
      // A reader that counts from its own start.
      const late = new JournalFollower(path);
      late.skipToEnd();
      appendFileSync(path, line(13));
      assert.deepEqual(late.next().map((r) => r.ms), [13]);
      assert.deepEqual(new JournalFollower(join(dir, 'none.log')).next(), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
