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

interface CacheEntry {
  version: 2;
  file: string;
  identity: string | null;
  policy: PolicyFile;
  fromFile: boolean;
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

/** The loaded policy of `file`, from the cache when the file is unchanged. */
export async function cachedPolicy(source: RulesSource, env: NodeJS.ProcessEnv = process.env): Promise<{ policy: PolicyFile; fromFile: boolean; cached: boolean }> {
  const { file, absentOk } = source;
  const cachePath = join(stateDir(env), 'firewall', 'policy-cache.json');
  const identity = identityOf(file);
  // No rule file at the default path: the built-in defaults, without loading the parser at all.
  // Anything else the cache cannot vouch for goes to the loader, which refuses it with a reason.
  if (identity === null && absentOk) return { policy: { version: 1 }, fromFile: false, cached: true };
  let hit: CacheEntry | undefined;
  try {
    hit = readJson(cachePath) as CacheEntry | undefined;
  } catch {
    hit = undefined;
  }
  if (identity && hit && hit.version === 2 && hit.file === file && hit.identity === identity) return { policy: hit.policy, fromFile: hit.fromFile, cached: true };
  const { loadPolicy } = await import('./load.js');
  const loaded = loadPolicy(file, { absentOk });
  if (typeof identity !== 'string') return { policy: loaded.policy, fromFile: loaded.fromFile, cached: false };
  try {
    writeJsonAtomic(cachePath, { version: 2, file, identity, policy: loaded.policy, fromFile: loaded.fromFile } satisfies CacheEntry, { durable: false });
  } catch {
    /* a read-only state dir only costs speed */
  }
  return { policy: loaded.policy, fromFile: loaded.fromFile, cached: false };
}
