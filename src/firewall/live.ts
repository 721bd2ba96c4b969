/** A table as read from the kernel: xennet's chains, its root jumps, and what is around them. */
import type { RootJump } from './model.js';

export interface Counter {
  packets: number;
  bytes: number;
}

export interface LiveTable {
  chains: Map<string, string[]>;
  /** Per owned chain, the counters of each rule (when saved with counters). */
  counters: Map<string, Counter[]>;
  roots: RootJump[];
  /** Rules in built-in chains that are not xennet's (kept, never touched). */
  foreignRules: number;
  /** Built-in chains' policies. */
  policies: Map<string, string>;
  /** Every rule of every built-in chain, in order (xennet's root jumps included). */
  builtins: Map<string, string[]>;
  /** Chains that are not xennet's and not built in, with their rules. */
  foreign: Map<string, string[]>;
}

export function emptyLive(): LiveTable {
  return { chains: new Map(), counters: new Map(), roots: [], foreignRules: 0, policies: new Map(), builtins: new Map(), foreign: new Map() };
}
