/**
 * Bounded waits. A `Deadline` is a point in time a whole operation must finish by (the vif hook
 * has a budget well inside libxl's 40 s kill); each wait takes a slice of what is left.
 */
import { XennetError } from './errors.js';

export class Deadline {
  private constructor(readonly at: number) {}

  static in(ms: number): Deadline {
    return new Deadline(Date.now() + ms);
  }

  static never(): Deadline {
    return new Deadline(Number.POSITIVE_INFINITY);
  }

  remainingMs(): number {
    return Math.max(0, this.at - Date.now());
  }

  /** What a single wait may take: at most `capMs`, and leave `reserveMs` of the budget over. */
  slice(capMs: number, reserveMs = 0): number {
    return Math.max(0, Math.min(capMs, this.remainingMs() - reserveMs));
  }
}

export function timeoutError(what: string, ms: number, hint?: string): XennetError {
  const s = ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${Math.round(ms)} ms`;
  return new XennetError('timeout', `${what}: no result within ${s}`, hint === undefined ? {} : { hint });
}

/** Settles like `p`, or rejects with a timeout error after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string, hint?: string): Promise<T> {
  if (!Number.isFinite(ms)) return p;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timeoutError(what, ms, hint)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
