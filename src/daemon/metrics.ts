/**
 * The daemon's metrics: what `xennet status` knows, in Prometheus' text format (metrics/
 * exposition.ts), written every 15 s to `/var/lib/prometheus/node-exporter/xennet.prom` when that
 * directory exists (Debian's prometheus-node-exporter reads `*.prom` files there: no port is
 * opened), atomically (a temporary file renamed), and given to `xennet metrics`.
 *
 * The status is the one the daemon remembers while nothing it reads has changed, at most a minute
 * old (its counters move without notice), or 40 times as old as a full read took (a large host
 * on xtables, whose every status is a full read, spends at most 2.5 % of a core on it).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { rulesSource } from '../config/load.js';
import { journalPath } from '../hooks/hook-journal.js';
import { renderMetrics } from '../metrics/exposition.js';
import { HookStats, JournalFollower } from '../metrics/hook-stats.js';
import { reasonOf } from '../sys/errors.js';
import { writeTextAtomic } from '../sys/statefile.js';
import type { DaemonContext } from './server.js';

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

  constructor(private readonly d: DaemonContext) {
    this.follower = new JournalFollower(journalPath(d.env));
  }

  /** The exposition now. */
  async text(): Promise<string> {
    for (const r of this.follower.next()) this.hooks.add(r);
    const cache = this.d.statusCache;
    const answer = await cache.get(rulesSource(undefined, this.d.env), false, Math.max(MAX_AGE_MS, 40 * cache.lastReadMs));
    const s = this.d.stats();
    return renderMetrics({ status: answer.status, readAt: Date.parse(answer.asOf), hooks: this.hooks.all(), daemon: { repairs: s.repairs, rssBytes: process.memoryUsage.rss(), uptimeSeconds: s.uptimeSeconds } });
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), METRICS_INTERVAL_MS);
    this.timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.writing;
  }

  private tick(): Promise<void> {
    if (this.writing || this.d.shuttingDown() || !isDirectory(TEXTFILE_DIR)) return Promise.resolve();
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
