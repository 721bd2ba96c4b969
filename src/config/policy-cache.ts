/**
 * The validated rule file, cached by the file's identity (device, inode, size, mtime, ctime), so the vif
 * hook normally skips YAML parsing and schema validation (and does not even load the parser).
 * Any change to the file changes its identity and the next hook validates it again.
 */
import { statSync } from 'node:fs';
import { danglingTarget } from './paths.js';
import { join } from 'node:path';
import { statIdentity } from '../sys/file-identity.js';
import { readJson, stateDir, writeJsonAtomic } from '../sys/statefile.js';
import type { RulesSource } from './paths.js';
import type { PolicyFile } from './schema.js';
import type { LoadedPolicy } from './load.js';

interface CacheEntry {
  version: 2;
  file: string;
  identity: string | null;
  policy: PolicyFile;
  fromFile: boolean;
  /** The file's text, to parse again before its policy stands in for the file (see cachedPolicy). */
  text?: string;
  /** When it was validated (ISO time). */
  at?: string;
}

/** null: no such file; undefined: it cannot be looked at (the loader says why). */
function identityOf(file: string): string | null | undefined {
  try {
    const s = statSync(file, { bigint: true });
    return s.isFile() ? statIdentity(s) : undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' && danglingTarget(file) === undefined ? null : undefined;
  }
}

const cachePath = (env: NodeJS.ProcessEnv): string => join(stateDir(env), 'firewall', 'policy-cache.json');

function readEntry(env: NodeJS.ProcessEnv): CacheEntry | undefined {
  try {
    const v = readJson(cachePath(env)) as CacheEntry | undefined;
    return v && v.version === 2 && typeof v.file === 'string' && typeof v.policy === 'object' && v.policy !== null && !Array.isArray(v.policy) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Records `loaded` as the last good policy of its file (the daemon's load, an apply, a hook's
 * validation): what a hook without the daemon keeps when the file turns invalid or is deleted.
 * Under the identity the file had before it was read, and only while it still has it: a file
 * replaced during the load is not recorded (its successor would be taken for what was read).
 */
export function recordPolicy(loaded: LoadedPolicy, env: NodeJS.ProcessEnv = process.env): void {
  const now = identityOf(loaded.file);
  const identity = loaded.fromFile ? (loaded.identity ?? undefined) : null;
  if (identity === undefined || now !== identity) return;
  const had = readEntry(env);
  if (had && had.file === loaded.file && had.identity === identity && had.fromFile === loaded.fromFile && had.text === loaded.text) return;
  try {
    writeJsonAtomic(cachePath(env), { version: 2, file: loaded.file, identity, policy: loaded.policy, fromFile: loaded.fromFile, ...(loaded.text !== undefined ? { text: loaded.text } : {}), at: new Date().toISOString() } satisfies CacheEntry);
  } catch {
    /* a read-only state dir: no last good policy to keep */
  }
}

/**
 * The last good policy recorded from `file` itself, parsed again from its recorded text (the
 * record is a file like any other: one that does not parse stands for nothing).
 */
export function lastGoodPolicy(file: string, env: NodeJS.ProcessEnv = process.env): Promise<{ policy: PolicyFile; since?: string } | undefined> {
  return parseRecorded(lastGoodText(file, env), file);
}

async function parseRecorded(recorded: { text: string; since?: string } | undefined, file: string): Promise<{ policy: PolicyFile; since?: string } | undefined> {
  if (!recorded) return undefined;
  const { parsePolicy } = await import('./load.js');
  try {
    return { policy: parsePolicy(recorded.text, file), ...(recorded.since !== undefined ? { since: recorded.since } : {}) };
  } catch {
    return undefined;
  }
}

/** The recorded text of `file`'s last good policy (to parse: see lastGoodPolicy), and when it was validated. */
export function lastGoodText(file: string, env: NodeJS.ProcessEnv = process.env): { text: string; since?: string } | undefined {
  return recordedText(readEntry(env), file);
}

function recordedText(e: CacheEntry | undefined, file: string): { text: string; since?: string } | undefined {
  if (!e || e.file !== file || !e.fromFile || typeof e.text !== 'string') return undefined;
  return { text: e.text, ...(typeof e.at === 'string' ? { since: e.at } : {}) };
}

export interface CachedPolicy {
  policy: PolicyFile;
  fromFile: boolean;
  cached: boolean;
  /**
   * Set when the file cannot be used now (invalid, or deleted while its policy was in force): the
   * last good policy stays in force, as the daemon keeps it. Why, and when that one was validated.
   */
  kept?: { problem: string; since?: string };
}

/**
 * The loaded policy of `file`, from the cache when the file is unchanged; the last good one when
 * it cannot be used now (see CachedPolicy.kept). Gone back to the built-in defaults only when they
 * were recorded (an apply, or the daemon's start, with no file).
 */
export async function cachedPolicy(source: RulesSource, env: NodeJS.ProcessEnv = process.env): Promise<CachedPolicy> {
  const { file, absentOk } = source;
  const identity = identityOf(file);
  const hit = readEntry(env);
  const last = hit && hit.file === file ? hit : undefined;
  const keptFor = async (problem: string): Promise<CachedPolicy | undefined> => {
    const good = await parseRecorded(recordedText(last, file), file);
    return good ? { policy: good.policy, fromFile: true, cached: true, kept: { problem, ...(good.since !== undefined ? { since: good.since } : {}) } } : undefined;
  };
  // No rule file at the default path: the built-in defaults, without loading the parser at all,
  // unless it was deleted while its policy was in force.
  const defaults: CachedPolicy = { policy: { version: 1 }, fromFile: false, cached: true };
  if (identity === null && absentOk) return last?.fromFile === true ? ((await keptFor('the file was deleted')) ?? defaults) : defaults;
  if (identity && last && last.identity === identity) return { policy: last.policy, fromFile: last.fromFile, cached: true };
  const { loadPolicy, ConfigError, problemsText } = await import('./load.js');
  let loaded;
  try {
    loaded = loadPolicy(file, { absentOk });
  } catch (e) {
    const kept = e instanceof ConfigError ? await keptFor(problemsText(e.problems)) : undefined;
    if (kept) return kept;
    throw e;
  }
  recordPolicy(loaded, env);
  return { policy: loaded.policy, fromFile: loaded.fromFile, cached: false };
}
