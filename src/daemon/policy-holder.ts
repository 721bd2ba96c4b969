/**
 * The rule file, kept parsed in memory and re-read when it changes. A file that fails validation
 * (or is deleted, or replaced by something huge) does not change the policy in force: the last
 * good one stays, and the problem is logged and shown by `status`. A file that appears where
 * there was none is loaded. At start there is no policy to keep: a file the daemon cannot use
 * (named by $XENNET_RULES and missing, invalid, empty, unreadable) is an error and the daemon does
 * not start, so its hooks never install wider rules than the file says (without a daemon the
 * hooks run in-process and fail the guest on such a file).
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ConfigError, loadPolicy, parsePolicy, problemsText, type LoadedPolicy, type RulesSource } from '../config/load.js';
import { lastGoodText, recordPolicy } from '../config/policy-cache.js';
import type { PolicyFile } from '../config/schema.js';
import { reasonOf } from '../sys/errors.js';
import { fileIdentity } from '../sys/file-identity.js';
import type { Logger } from '../sys/log.js';

/** How long a changed rule file must be left alone before the daemon reads it. */
const SETTLE_MS = 1000;

/** Milliseconds since the file was last modified (undefined: no file). */
function ageMs(file: string): number | undefined {
  try {
    return Math.max(0, Date.now() - statSync(file).mtimeMs);
  } catch {
    return undefined;
  }
}

export interface PolicyState {
  file: string;
  /** `valid`: the file in force; `absent`: no file, built-in defaults; `kept`: the file is bad, the last good policy stays. */
  state: 'valid' | 'absent' | 'kept';
  loadedAt: string;
  problem?: string;
}

export class PolicyHolder {
  private current: LoadedPolicy;
  private identity: string;
  private loadedAt = new Date();
  private problem: string | undefined;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;

  readonly file: string;
  private readonly absentOk: boolean;

  /** Throws (a ConfigError) when the file cannot be used: there is no earlier policy to keep. */
  constructor(
    source: RulesSource,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.file = source.file;
    this.absentOk = source.absentOk;
    this.identity = fileIdentity(this.file);
    try {
      this.current = loadPolicy(this.file, { absentOk: this.absentOk });
    } catch (e) {
      // A file that cannot be used, with a last good policy recorded: started on that one, as the
      // hooks run without the daemon keep it (config/policy-cache.ts); with none, not started.
      const recorded = e instanceof ConfigError ? lastGoodText(this.file, this.env) : undefined;
      let policy: PolicyFile | undefined;
      try {
        policy = recorded ? parsePolicy(recorded.text, this.file) : undefined;
      } catch {
        policy = undefined;
      }
      if (!policy) throw e;
      this.current = { file: this.file, policy, fromFile: true };
      this.problem = describe(e);
      if (recorded?.since !== undefined) this.loadedAt = new Date(recorded.since);
      this.log.err(`rule file ${this.file} cannot be used; starting on the last good policy (validated ${this.loadedAt.toISOString()}): ${this.problem}`);
      return;
    }
    // The last good policy, where a hook run without the daemon keeps it too (config/policy-cache.ts).
    recordPolicy(this.current, this.env);
  }

  get policy(): PolicyFile {
    return this.current.policy;
  }

  get loaded(): LoadedPolicy {
    return this.current;
  }

  state(): PolicyState {
    const s: PolicyState = { file: this.file, state: this.problem ? 'kept' : this.current.fromFile ? 'valid' : 'absent', loadedAt: this.loadedAt.toISOString() };
    if (this.problem) s.problem = this.problem;
    return s;
  }

  /**
   * Re-reads the file now (SIGHUP, or a change seen); returns whether the policy changed.
   * `applied`: an `apply` just installed what the file says now (the built-in defaults when it is
   * gone): that is the policy in force from now on.
   */
  reload(why: string, options: { applied?: boolean } = {}): boolean {
    this.identity = fileIdentity(this.file);
    let next: LoadedPolicy;
    try {
      next = loadPolicy(this.file, { absentOk: this.absentOk });
    } catch (e) {
      this.problem = describe(e);
      this.log.err(`rule file ${this.file} (${why}) cannot be used; the policy loaded ${this.loadedAt.toISOString()} stays in force: ${this.problem}`);
      return false;
    }
    if (!next.fromFile && this.current.fromFile && !options.applied) {
      // Gone while in force (deleted, or mid-replace): the built-in defaults would silently drop
      // every guest's policy. Keep it; an operator who wants the defaults restarts the daemon.
      this.problem = 'the file was deleted';
      this.log.err(`rule file ${this.file} (${why}) is gone; the policy loaded ${this.loadedAt.toISOString()} stays in force (restart the daemon to run on the built-in defaults)`);
      return false;
    }
    const changed = JSON.stringify(next.policy) !== JSON.stringify(this.current.policy);
    this.current = next;
    recordPolicy(next, this.env);
    this.problem = undefined;
    this.loadedAt = new Date();
    this.log.info(`rule file ${this.file} ${next.fromFile ? 'loaded' : 'is absent: built-in defaults'} (${why})${changed ? '' : ', unchanged'}`);
    return changed;
  }

  /** Watches the file's directory (a replace or delete is seen too), with a slow poll as a backstop. */
  watch(onChange: () => void): void {
    const check = (): void => {
      if (fileIdentity(this.file) === this.identity) return;
      // An editor writing in place may pause half way: only a file left alone for a second is
      // read (a rename into place, as `install` or most editors do, is whole at once anyway).
      const age = ageMs(this.file);
      if (age !== undefined && age < SETTLE_MS) {
        clearTimeout(this.pending);
        this.pending = setTimeout(check, SETTLE_MS - age + 50);
        return;
      }
      this.reload('it changed');
      onChange();
    };
    const soon = (): void => {
      clearTimeout(this.pending);
      this.pending = setTimeout(check, 150);
    };
    try {
      this.watcher = watch(dirname(this.file), (_event, name) => {
        if (name === null || name === basename(this.file) || String(name).startsWith(basename(this.file))) soon();
      });
      this.watcher.on('error', () => undefined);
    } catch (e) {
      this.log.warning(`cannot watch ${dirname(this.file)} (${reasonOf(e)}); checking the rule file every 2 s`);
    }
    this.poll = setInterval(check, 2000);
    this.poll.unref();
  }

  close(): void {
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.pending);
  }
}

function describe(e: unknown): string {
  const problems = (e as Partial<ConfigError>).problems;
  if (Array.isArray(problems)) return problemsText(problems);
  return reasonOf(e);
}
