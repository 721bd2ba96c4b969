/**
 * The daemon's metrics: what `xennet status` knows, in Prometheus' text format (metrics/
 * exposition.ts), written every 15 s to `/var/lib/prometheus/node-exporter/xennet.prom` when that
 * directory exists (Debian's prometheus-node-exporter reads `*.prom` files there: no port is
 * opened), atomically (a temporary file renamed), and given to `xennet metrics`.
 *
 * The status in it is read at most once a minute, or once per 40 times as long as a full read took
 * (a large host on xtables, whose every status is a full read, spends at most 2.5 % of a core on
 * it); between, the figures of the last read are written again with the daemon's own. Hook
 * figures count from the daemon's start (a restart is a counter reset, as Prometheus expects of a
 * process). On a clean stop the file goes: node-exporter then has no xennet figures, instead of
 * stale ones that say the daemon is up (after a crash, its `node_textfile_mtime_seconds` ages).
 */
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { rulesSource } from '../config/load.js';
import { journalPath } from '../hooks/hook-journal.js';
import { renderMetrics } from '../metrics/exposition.js';
import { HookStats, JournalFollower } from '../metrics/hook-stats.js';
import { reasonOf } from '../sys/errors.js';
import { sweepTempFiles, writeTextAtomic } from '../sys/statefile.js';
import type { DaemonContext } from './server.js';
import type { HostStatus } from '../status/host-status.js';
import { learningProblems, withDaemon } from '../status/daemon-problems.js';

/** Where prometheus-node-exporter's textfile collector reads (Debian's default `--collector.textfile.directory`). */
export const TEXTFILE_DIR = '/var/lib/prometheus/node-exporter';
export const METRICS_FILE = 'xennet.prom';
export const METRICS_INTERVAL_MS = 15_000;
const MAX_AGE_MS = 60_000;

export class DaemonMetrics {
  private readonly hooks = new HookStats();
  private readonly follower: JournalFollower;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private failing = false;
  private stopped = false;

  private last: { status: HostStatus; readAt: number; tookMs: number } | undefined;

  constructor(private readonly d: DaemonContext) {
    this.follower = new JournalFollower(journalPath(d.env));
    this.follower.skipToEnd();
  }

  /** The exposition now. */
  async text(): Promise<string> {
    for (const r of this.follower.next()) this.hooks.add(r);
    const s = this.d.stats();
    const last = this.last;
    let status: HostStatus;
    let readAt: number;
    if (last && Date.now() - last.readAt < Math.max(MAX_AGE_MS, 40 * last.tookMs)) ({ status, readAt } = last);
    else {
      const t0 = Date.now();
      const answer = await this.d.statusCache.get(rulesSource(undefined, this.d.env), false, MAX_AGE_MS);
      // What `xennet status` adds of the daemon's own (its rule file kept, learning unheard).
      status = learningProblems(withDaemon({ status: answer.status, daemon: s }));
      readAt = Date.parse(answer.asOf);
      this.last = { status, readAt, tookMs: answer.remembered ? (last?.tookMs ?? 0) : Date.now() - t0 };
    }
    return renderMetrics({ status, readAt, hooks: this.hooks.all(), daemon: { repairs: s.repairs, rssBytes: process.memoryUsage.rss(), uptimeSeconds: s.uptimeSeconds } });
  }

  start(): void {
    // What a daemon killed while writing left (it is no *.prom: node-exporter never read it).
    if (isDirectory(TEXTFILE_DIR)) sweepTempFiles(TEXTFILE_DIR, METRICS_FILE);
    this.timer = setInterval(() => void this.tick(), METRICS_INTERVAL_MS);
    this.timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopped = true;
    await this.writing;
    try {
      rmSync(join(TEXTFILE_DIR, METRICS_FILE), { force: true });
    } catch {
      /* a read-only directory keeps it: its mtime ages */
    }
  }

  private tick(): Promise<void> {
    if (this.writing || this.stopped || this.d.shuttingDown() || !isDirectory(TEXTFILE_DIR)) return Promise.resolve();
    this.writing = this.write().finally(() => {
      this.writing = undefined;
    });
    return this.writing;
  }

  private async write(): Promise<void> {
    try {
      writeTextAtomic(join(TEXTFILE_DIR, METRICS_FILE), await this.text(), { durable: false });
      if (this.failing) this.d.log.info(`metrics written again to ${join(TEXTFILE_DIR, METRICS_FILE)}`);
      this.failing = false;
    } catch (e) {
      // Said once, not every 15 s.
      if (!this.failing) this.d.log.warning(`the metrics could not be written to ${join(TEXTFILE_DIR, METRICS_FILE)}: ${reasonOf(e)}`);
      this.failing = true;
    }
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
