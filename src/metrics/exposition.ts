/**
 * What `xennet status` knows, in Prometheus' text exposition format (pure): drops by guest and
 * reason, each guest's firewall in sync, hook durations and failures, the daemon's repairs,
 * memory and uptime, the problems found. Labels are domain and interface names and fixed words
 * (reasons, operations, paths), never addresses: a host's series are bounded by its guests.
 * Names and help texts follow `promtool check metrics` (base units, `_total` on counters).
 */
import { DROP_REASONS } from '../firewall/drop-reasons.js';
import type { HostStatus } from '../status/host-status.js';
import { HOOK_BUCKETS, type HookSeries } from './hook-stats.js';

export interface MetricsInput {
  status: HostStatus;
  /** When the status was read (ms since the epoch). */
  readAt: number;
  hooks: readonly HookSeries[];
  /** The resident daemon, when one runs (and answered). */
  daemon?: { repairs: number; rssBytes: number; uptimeSeconds: number };
}

/** A label value as the format wants it: backslash, double quote and newline escaped. */
export const labelValue = (s: string): string => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

const labels = (l: Record<string, string>): string => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${labelValue(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
};

/** A number as the format writes it (integers without a fraction, no exponent for small ones). */
const num = (n: number): string => (Number.isFinite(n) ? (Number.isInteger(n) ? String(n) : String(Math.round(n * 1e6) / 1e6)) : 'NaN');

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string, samples: readonly { suffix?: string; labels?: Record<string, string>; value: number }[]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const s of samples) this.lines.push(`${name}${s.suffix ?? ''}${labels(s.labels ?? {})} ${num(s.value)}`);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

export function renderMetrics(input: MetricsInput): string {
  const { status } = input;
  const e = new Exposition();
  const guest = (v: HostStatus['vifs'][number]): Record<string, string> => ({ domain: v.domain ?? '', interface: v.name });
  e.family('xennet_status_ok', 'gauge', 'Whether xennet status found nothing wrong (1) or at least one problem (0).', [{ value: status.ok ? 1 : 0 }]);
  e.family('xennet_problems', 'gauge', 'Problems xennet status found (its exit code is 1 when there is any).', [{ value: status.problems.length }]);
  e.family('xennet_status_read_timestamp_seconds', 'gauge', 'When the figures below were read from the kernel (Unix time).', [{ value: Math.floor(input.readAt / 1000) }]);
  const vifs = [...status.vifs].sort((a, b) => a.name.localeCompare(b.name));
  e.family('xennet_guest_firewall_in_sync', 'gauge', "Whether a guest interface's firewall is in place as xennet installed it (1) or missing or drifted (0).", vifs.filter((v) => v.firewall !== 'not-managed').map((v) => ({ labels: guest(v), value: v.firewall === 'in-sync' ? 1 : 0 })));
  const drops = (field: 'packets' | 'bytes') => vifs.flatMap((v) => DROP_REASONS.filter((r) => v.drops.reasons?.[r] !== undefined).map((r) => ({ labels: { ...guest(v), reason: r }, value: v.drops.reasons[r]![field] })));
  e.family('xennet_guest_dropped_packets_total', 'counter', "Packets a guest interface's own rules dropped, by reason (they only grow while the interface exists).", drops('packets'));
  e.family('xennet_guest_dropped_bytes_total', 'counter', "Bytes a guest interface's own rules dropped, by reason.", drops('bytes'));
  e.family('xennet_guest_identity_dropped_packets_total', 'counter', "Frames from other ports that carried a guest's MAC or addresses, dropped by the identity guard.", vifs.filter((v) => v.claims.dropped.packets > 0).map((v) => ({ labels: guest(v), value: v.claims.dropped.packets })));
  const hookSamples = input.hooks.flatMap((h) => {
    const l = { operation: h.operation, path: h.path };
    return [...HOOK_BUCKETS.map((b, i) => ({ suffix: '_bucket', labels: { ...l, le: String(b) }, value: h.buckets[i]! })), { suffix: '_bucket', labels: { ...l, le: '+Inf' }, value: h.count }, { suffix: '_sum', labels: l, value: h.sumSeconds }, { suffix: '_count', labels: l, value: h.count }];
  });
  e.family('xennet_hook_duration_seconds', 'histogram', 'How long the vif hook took, from its start to its answer to the toolstack, by operation and by path (daemon or in-process).', hookSamples);
  e.family('xennet_hook_failures_total', 'counter', 'Hook calls that failed (the toolstack was told hotplug-status error), by operation and path.', input.hooks.map((h) => ({ labels: { operation: h.operation, path: h.path }, value: h.failures })));
  e.family('xennet_daemon_up', 'gauge', 'Whether the resident daemon runs and answered (1) or not (0).', [{ value: input.daemon ? 1 : 0 }]);
  if (input.daemon) {
    e.family('xennet_drift_repairs_total', 'counter', "Times the daemon put xennet's rules back after another program changed them.", [{ value: input.daemon.repairs }]);
    e.family('xennet_daemon_resident_memory_bytes', 'gauge', "The daemon's resident memory.", [{ value: input.daemon.rssBytes }]);
    e.family('xennet_daemon_uptime_seconds', 'gauge', 'How long the daemon has run.', [{ value: input.daemon.uptimeSeconds }]);
  }
  return e.text();
}
