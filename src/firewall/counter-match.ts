/** Which kernel rule's counter is a recorded rule's (pure; no driver: the drivers' readers use it). */
import type { Counter } from './live.js';
import type { RuleDialect } from './model.js';
import { normalizeRule } from './normalize.js';

/**
 * The counter of each recorded rule, from a chain as the kernel holds it (its rules' text and
 * counters): each recorded rule takes the first live rule of the same text not taken yet, so a
 * rule someone inserted or removed moves no count to another rule; zero where none matches.
 */
export function countersOfRecorded(recorded: readonly string[], liveRules: readonly string[], liveCounters: readonly Counter[], dialect: RuleDialect): Counter[] {
  const free = new Map<string, number[]>();
  liveRules.forEach((r, i) => {
    const k = normalizeRule(r, dialect);
    const at = free.get(k);
    if (at) at.push(i);
    else free.set(k, [i]);
  });
  return recorded.map((r) => {
    const i = free.get(normalizeRule(r, dialect))?.shift();
    return i === undefined ? { packets: 0, bytes: 0 } : (liveCounters[i] ?? { packets: 0, bytes: 0 });
  });
}
