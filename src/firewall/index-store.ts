/**
 * What xennet has installed, so a vif hook can change only its own vif's chains and the few
 * shared tree chains on its path without reading the whole ruleset (its cost must not grow with
 * the number of guests):
 *   $XENNET_STATE_DIR/firewall/index.json      { bootId, vifs: { name: bridge } }
 *   $XENNET_STATE_DIR/firewall/vif/<name>.json  the vif's compiled chains per table
 * Written under the hotplug lock. An index from an earlier boot describes rules that are gone
 * and is ignored. `xennet apply` rewrites it from a full reconcile.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { currentBootId } from '../sys/boot.js';
import { readJson, stateDir, writeJsonAtomic } from '../sys/statefile.js';
import { emptyRuleSet, tableNames, type RuleSet, type TableName } from './model.js';

export interface FirewallIndex {
  version: 1;
  bootId: string;
  backend?: string;
  /** Firewalled vifs: their bridge and whether traffic to them is filtered (to-guest tree). */
  vifs: Record<string, { bridge: string; inbound: boolean }>;
}

const dirOf = (env: NodeJS.ProcessEnv): string => join(stateDir(env), 'firewall');

export function readIndex(env: NodeJS.ProcessEnv = process.env): FirewallIndex {
  const raw = readJson(join(dirOf(env), 'index.json')) as Partial<FirewallIndex> | undefined;
  const boot = currentBootId();
  if (!raw || raw.version !== 1 || raw.bootId !== boot || typeof raw.vifs !== 'object' || raw.vifs === null) return { version: 1, bootId: boot, vifs: {} };
  const vifs: FirewallIndex['vifs'] = {};
  for (const [name, v] of Object.entries(raw.vifs)) if (v && typeof v === 'object' && typeof v.bridge === 'string') vifs[name] = { bridge: v.bridge, inbound: v.inbound === true };
  return { version: 1, bootId: boot, vifs, ...(raw.backend ? { backend: raw.backend } : {}) };
}

export function writeIndex(index: FirewallIndex, env: NodeJS.ProcessEnv = process.env): void {
  writeJsonAtomic(join(dirOf(env), 'index.json'), index, { durable: false });
}

type StoredChains = Record<TableName, [string, string[]][]>;

/** Writes a vif's chains (atomically; an unchanged file is left alone). */
export function writeVifChains(name: string, rs: RuleSet, env: NodeJS.ProcessEnv = process.env): void {
  const stored = Object.fromEntries(tableNames.map((t) => [t, [...rs[t].chains.entries()]])) as StoredChains;
  const path = join(dirOf(env), 'vif', `${name}.json`);
  try {
    if (readFileSync(path, 'utf8') === JSON.stringify(stored, null, 2) + '\n') return;
  } catch {
    /* new */
  }
  writeJsonAtomic(path, stored, { durable: false });
}

export function readVifChains(name: string, env: NodeJS.ProcessEnv = process.env): RuleSet | undefined {
  const raw = readJson(join(dirOf(env), 'vif', `${name}.json`)) as StoredChains | undefined;
  if (!raw) return undefined;
  const rs = emptyRuleSet();
  for (const t of tableNames) for (const [c, rules] of raw[t] ?? []) rs[t].chains.set(c, rules);
  return rs;
}

export function removeVifChains(name: string, env: NodeJS.ProcessEnv = process.env): void {
  rmSync(join(dirOf(env), 'vif', `${name}.json`), { force: true });
}

/** Replaces the whole index and the per-vif files (after a full reconcile). */
export function replaceAll(index: FirewallIndex, perVif: Map<string, RuleSet>, env: NodeJS.ProcessEnv = process.env): void {
  let existing: string[] = [];
  try {
    existing = readdirSync(join(dirOf(env), 'vif')).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
  } catch {
    /* none yet */
  }
  for (const [name, rs] of perVif) writeVifChains(name, rs, env);
  for (const name of existing) if (!perVif.has(name)) removeVifChains(name, env);
  writeIndex({ ...index, bootId: currentBootId() }, env);
}
