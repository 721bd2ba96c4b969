/**
 * The daemon gives memory back after its peaks. A full repair or a storm of hooks at 1000 guests
 * allocates hundreds of MiB over a few seconds; V8 then keeps its heap at the size the peak
 * needed (RSS 193-306 MiB at 1000 guests, where 115 MiB holds what is live). Once the heap has
 * grown by GROWTH_MIB since the last full collection and no call is in flight (BUSY_GROWTH_MIB
 * when calls never stop), the daemon runs one (the unit's and the hook's `--expose-gc`); V8 then
 * returns the pages it emptied. Without
 * the flag (an operator's own `xennet daemon`), nothing happens.
 */
import { getHeapStatistics } from 'node:v8';

const CHECK_MS = 1_000;
const GROWTH_MIB = 16;
/**
 * A daemon that is never idle (hooks always in flight, as in a long churn) collects anyway once
 * the heap grew this much: the pause (tens of ms) is less than a hook's own time, and without it
 * the soak saw RSS at 164-187 MiB after a repair amid the churn.
 */
const BUSY_GROWTH_MIB = 48;

export interface MemoryKeeperState {
  /** Full collections run by the daemon (0 without --expose-gc). */
  collections: number;
  available: boolean;
}

export class MemoryKeeper {
  private timer: NodeJS.Timeout | undefined;
  private baseline: number;
  private collections = 0;
  private readonly gc = (globalThis as { gc?: () => void }).gc;

  /** `heapUsed`: V8's used heap, in bytes (a test gives its own: V8 collects when it likes). */
  constructor(
    private readonly idle: () => boolean,
    private readonly heapUsed: () => number = () => getHeapStatistics().used_heap_size,
  ) {
    this.baseline = this.heapUsed();
  }

  start(): void {
    if (!this.gc) return;
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  state(): MemoryKeeperState {
    return { collections: this.collections, available: this.gc !== undefined };
  }

  /** One full collection when the heap grew enough since the last one and nothing runs (or much more, whatever runs). */
  check(): void {
    if (!this.gc) return;
    const grown = this.heapUsed() - this.baseline;
    if (grown < (this.idle() ? GROWTH_MIB : BUSY_GROWTH_MIB) * 1024 * 1024) return;
    this.gc();
    this.collections++;
    this.baseline = this.heapUsed();
  }
}
