/**
 * `xennet bridge start|stop|status`: the imperative shell around the pure takeover planner.
 * Every change is journaled step by step (./journal.ts); a failed step undoes the completed ones;
 * a command killed half way is repaired by the next one.
 */
import { refused, XennetError } from '../sys/errors.js';
import { acquireLock } from '../sys/lock.js';
import { silentLogger, type Logger } from '../sys/log.js';
import { StepFailed, applyOp, undoOps, type LinkOpsClient } from './apply-ops.js';
import { compareHostSide } from './compare.js';
import { currentBootId, journalPath, lockPath, readJournal, removeJournal, writeJournal, type TakeoverJournal } from './journal.js';
import type { HostState } from './model.js';
import { describeOp, inverseOf } from './ops.js';
import { classifyLayout, foreignPorts, planTakeover, resolveTakeoverSpec, type TakeoverArgs, type TakeoverSpec } from './takeover-plan.js';

export type HostClient = LinkOpsClient & { readHost(): Promise<HostState> };

export interface TakeoverContext {
  client: HostClient;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
}

export interface TakeoverResult {
  action: 'started' | 'stopped' | 'already-started' | 'not-started' | 'repaired';
  spec: TakeoverSpec;
  /** Steps run (forward for start, inverse for stop). */
  steps: string[];
  /** Set when a half-done earlier command was finished or undone first. */
  repaired?: string;
  warnings: string[];
}

/** Test-only fault seam: XENNET_TEST_FAULT=fail-at:N or kill-at:N acts just before step N (1-based). */
function faultAt(env: NodeJS.ProcessEnv, step: number, what: string): void {
  const spec = env['XENNET_TEST_FAULT'];
  if (!spec) return;
  const m = /^(fail|kill)-at:(\d+)$/.exec(spec);
  if (!m || Number(m[2]) !== step) return;
  if (m[1] === 'kill') process.kill(process.pid, 'SIGKILL');
  throw new XennetError('internal', `injected fault before ${what}`);
}

interface Session {
  client: HostClient;
  env: NodeJS.ProcessEnv;
  log: Logger;
  path: string;
}

/** Loads the journal, discarding one left by an earlier boot (its kernel state is gone). */
function loadJournal(s: Session, warnings: string[]): TakeoverJournal | undefined {
  const journal = readJournal(s.path);
  if (journal && journal.bootId !== currentBootId()) {
    warnings.push(`discarded ${s.path}: it was written before the last reboot`);
    removeJournal(s.path);
    return undefined;
  }
  return journal;
}

/** Undoes a start that did not finish (ops[0..done], the op at `done` may have half run). */
async function undoHalfStart(s: Session, j: TakeoverJournal): Promise<string> {
  const ran = j.ops.slice(0, Math.min(j.done + 1, j.ops.length));
  const errors = await undoOps(s.client, inverseOf(ran));
  if (errors.length > 0) throw new XennetError('step-failed', `could not undo the half-done start recorded in ${s.path}: ${errors.join('; ')}`, { hint: 'fix the cause and run the command again' });
  removeJournal(s.path);
  return `undid a start of ${j.spec.bridge} that stopped after ${j.done} of ${j.ops.length} steps`;
}

/** Runs (or continues) the inverse sequence of a completed start. */
async function runStop(s: Session, j: TakeoverJournal, steps: string[]): Promise<void> {
  const inverse = inverseOf(j.ops);
  if (j.phase !== 'stopping') {
    j.phase = 'stopping';
    j.undone = 0;
    writeJournal(s.path, j);
  }
  const errors: string[] = [];
  for (let i = j.undone; i < inverse.length; i++) {
    const o = inverse[i]!;
    faultAt(s.env, i + 1, describeOp(o));
    try {
      if ((await applyOp(s.client, o, 'tolerant')) === 'done') steps.push(describeOp(o));
    } catch (e) {
      errors.push(`${describeOp(o)}: ${e instanceof Error ? e.message : String(e)}`);
    }
    j.undone = i + 1;
    writeJournal(s.path, j);
  }
  if (errors.length > 0) {
    throw new XennetError('step-failed', `stop of ${j.spec.bridge} could not complete ${errors.length} step(s): ${errors.join('; ')}`, {
      hint: `the journal ${s.path} is kept; fix the cause and run stop again`,
    });
  }
  removeJournal(s.path);
}

async function withSession<T>(ctx: TakeoverContext, bridge: string, fn: (s: Session) => Promise<T>): Promise<T> {
  const env = ctx.env ?? process.env;
  const lock = await acquireLock(lockPath(bridge, env));
  try {
    return await fn({ client: ctx.client, env, log: ctx.log ?? silentLogger, path: journalPath(bridge, env) });
  } finally {
    lock.release();
  }
}

export async function bridgeStart(args: TakeoverArgs, ctx: TakeoverContext): Promise<TakeoverResult> {
  const first = await ctx.client.readHost();
  const spec = resolveTakeoverSpec(args, first);
  return withSession(ctx, spec.bridge, async (s) => {
    const warnings: string[] = [];
    const steps: string[] = [];
    let repaired: string | undefined;
    let journal = loadJournal(s, warnings);
    if (journal && journal.phase === 'starting') {
      repaired = await undoHalfStart(s, journal);
      journal = undefined;
    } else if (journal && journal.phase === 'stopping') {
      await runStop(s, journal, []);
      repaired = `finished a stop of ${spec.bridge} that had been interrupted`;
      journal = undefined;
    }
    if (repaired) s.log.info(repaired);
    const host = await s.client.readHost();
    const layout = classifyLayout(spec, host);
    if (journal) {
      if (layout.kind === 'taken-over') return { action: 'already-started', spec, steps, warnings };
      throw new XennetError('state', `${s.path} records a takeover of ${spec.netdev} by ${spec.bridge}, but the host does not have that layout`, {
        hint: 'someone changed the links by hand; run `xennet bridge stop` to restore the recorded state, then start again',
      });
    }
    if (layout.kind === 'taken-over') {
      throw refused(`${spec.netdev} is already bridged by ${spec.bridge} through ${spec.pdev}, but xennet has no record of it (${s.path}); nothing was changed`, 'another tool (Xen network-bridge?) set this up: stop it with that tool first');
    }
    const ops = planTakeover(spec, host);
    const j: TakeoverJournal = { version: 1, spec, bootId: currentBootId(), startedAt: new Date().toISOString(), before: host, ops, phase: 'starting', done: 0, undone: 0 };
    writeJournal(s.path, j);
    for (const [i, o] of ops.entries()) {
      try {
        faultAt(s.env, i + 1, describeOp(o));
        await applyOp(s.client, o, 'strict');
      } catch (e) {
        const errors = await undoOps(s.client, inverseOf(ops.slice(0, i + 1)));
        if (errors.length === 0) removeJournal(s.path);
        throw new StepFailed(i + 1, ops.length, o, e, true, errors);
      }
      steps.push(describeOp(o));
      j.done = i + 1;
      writeJournal(s.path, j);
    }
    j.phase = 'up';
    writeJournal(s.path, j);
    return repaired ? { action: 'started', spec, steps, repaired, warnings } : { action: 'started', spec, steps, warnings };
  });
}

export interface StopOptions {
  /** Stop even when guest vifs are still attached to the bridge (they are detached). */
  force?: boolean;
}

export async function bridgeStop(args: TakeoverArgs, ctx: TakeoverContext, options: StopOptions = {}): Promise<TakeoverResult> {
  const first = await ctx.client.readHost();
  const spec = resolveTakeoverSpec(args, first);
  return withSession(ctx, spec.bridge, async (s) => {
    const warnings: string[] = [];
    const steps: string[] = [];
    const journal = loadJournal(s, warnings);
    if (!journal) {
      const layout = classifyLayout(spec, await s.client.readHost());
      if (layout.kind === 'taken-over') {
        throw refused(`${spec.bridge} bridges ${spec.pdev}, but xennet has no record of taking it over (${s.path}); nothing was changed`, 'stop it with the tool that started it');
      }
      return { action: 'not-started', spec, steps, warnings };
    }
    if (journal.phase === 'starting') {
      const repaired = await undoHalfStart(s, journal);
      s.log.info(repaired);
      return { action: 'repaired', spec: journal.spec, steps, repaired, warnings };
    }
    const host = await s.client.readHost();
    const guests = foreignPorts(journal.spec, host);
    if (guests.length > 0 && !options.force) {
      throw refused(`${journal.spec.bridge} still has other ports (${guests.join(', ')}); nothing was changed`, 'shut those guests down first, or pass --force to detach them');
    }
    const wasStopping = journal.phase === 'stopping';
    await runStop(s, journal, steps);
    const after = await s.client.readHost();
    warnings.push(...compareHostSide(journal.before, after, journal.spec.netdev).map((d) => `after stop: ${d}`));
    const result: TakeoverResult = { action: 'stopped', spec: journal.spec, steps, warnings };
    if (wasStopping) result.repaired = 'finished a stop that had been interrupted';
    return result;
  });
}
