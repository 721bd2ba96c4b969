/**
 * `xennet bridge start|stop|status`: the imperative shell around the pure takeover planner.
 * Every change is journaled step by step (./journal.ts); a failed step undoes the completed ones;
 * a command killed half way is repaired by the next one.
 */
import { reasonOf, refused, XennetError } from '../sys/errors.js';
import { acquireLock } from '../sys/lock.js';
import { silentLogger, type Logger } from '../sys/log.js';
import { sweepTempFiles } from '../sys/statefile.js';
import { basename, dirname } from 'node:path';
import { StepFailed, applyOp, type LinkOpsClient } from './apply-ops.js';
import { compareHostSide } from './compare.js';
import { currentBootId, journalPath, lockPath, readJournalOfThisBoot, recordedSpecs, removeJournal, writeJournal, type TakeoverJournal } from './journal.js';
import { findManagerClaims, managerAdvice, readManagerFiles, type ManagerFiles } from './managers.js';
import { linkByName, type HostState } from './model.js';
import { describeOp, inverseOf, type LinkOp } from './ops.js';
import { classifyLayout, foreignPorts, planTakeover, resolveTakeoverSpec, type TakeoverArgs, type TakeoverSpec, type TakeoverStacks } from './takeover-plan.js';
import type { StackSettings } from '../sys/sysctl.js';

export type HostClient = LinkOpsClient & { readHost(): Promise<HostState>; readStackSettings(name: string): Promise<StackSettings | undefined> };

/**
 * The IP-stack settings the takeover planned from `from` carries (see planTakeover): the NIC's,
 * and the future host side's (an existing veth end's, else what a new link starts with). The
 * links are found by index in `live`, what the host is now: a dry run after an interrupted start
 * plans from the recorded state while the NIC may still have another name.
 */
async function readStacks(client: HostClient, spec: TakeoverSpec, from: HostState, live: HostState): Promise<TakeoverStacks | undefined> {
  const nameNow = (name: string): string | undefined => {
    const l = linkByName(from, name);
    return l ? live.links.find((x) => x.index === l.index)?.name : undefined;
  };
  const nic = nameNow(spec.netdev);
  const hostSide = linkByName(from, spec.vdev) ? nameNow(spec.vdev) : 'default';
  if (nic === undefined || hostSide === undefined) return undefined;
  const [n, h] = [await client.readStackSettings(nic), await client.readStackSettings(hostSide)];
  return n && h ? { nic: n, hostSide: h } : undefined;
}

export interface TakeoverContext {
  client: HostClient;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** The network managers' configuration files (default: read from their real directories). */
  managerFiles?: () => ManagerFiles;
}

export interface TakeoverResult {
  /** would-start/would-stop: a --dry-run; `steps` are what the command would run, nothing ran. */
  action: 'started' | 'stopped' | 'already-started' | 'not-started' | 'repaired' | 'would-start' | 'would-stop';
  spec: TakeoverSpec;
  /** Steps run (forward for start, inverse for stop). */
  steps: string[];
  /** Set when a half-done earlier command was finished or undone first. */
  repaired?: string;
  warnings: string[];
}

/**
 * Test-only fault seam: XENNET_TEST_FAULT, a comma-separated list of `fail-at:N` or `kill-at:N`
 * (just before step N of a start or a stop, 1-based), and `undo-fail-at:N` or `undo-kill-at:N`
 * (the Nth op of an undo: a start's own after a failed step, a half-done start's, a stop's; a
 * failing one fails each time it is tried).
 */
function faultAt(env: NodeJS.ProcessEnv, step: number, what: string, kind: '' | 'undo-' = ''): void {
  const spec = env['XENNET_TEST_FAULT'];
  if (!spec) return;
  for (const one of spec.split(',')) {
    const m = /^(undo-)?(fail|kill)-at:(\d+)$/.exec(one);
    if (!m || (m[1] ?? '') !== kind || Number(m[3]) !== step) continue;
    if (m[2] === 'kill') process.kill(process.pid, 'SIGKILL');
    throw new XennetError('internal', `injected fault before ${what}`);
  }
}

interface Session {
  client: HostClient;
  env: NodeJS.ProcessEnv;
  log: Logger;
  path: string;
}

/** Loads the journal, discarding one left by an earlier boot (its kernel state is gone). */
function loadJournal(s: Session, warnings: string[]): TakeoverJournal | undefined {
  const { journal, earlierBoot } = readJournalOfThisBoot(s.path);
  if (earlierBoot) {
    warnings.push(`discarded ${s.path}: it was written before the last reboot`);
    removeJournal(s.path);
  }
  return journal;
}

/**
 * Runs `inverse` from `j.undone` on, tolerantly, writing the journal after every op: an undo that
 * is killed goes on from where it was, and never runs again over what it restored (an op run
 * twice is safe; a run of them is not: an undo that starts over on a host it restored would take
 * the NIC's addresses off it again). The ops name links, and a name is the veth end's before the
 * renames and the NIC's after them: an undo goes in order or not at all. At an op that fails it
 * stops, and the next command goes on from that op; the error is returned. `faults`: the test
 * seam acts before each op.
 */
async function runUndo(s: Session, j: TakeoverJournal, inverse: readonly LinkOp[], options: { steps?: string[]; faults?: boolean; host?: HostState } = {}): Promise<string | undefined> {
  checkNicWhereRecorded(s.path, j, inverse, options.host ?? (await s.client.readHost()));
  for (let i = j.undone; i < inverse.length; i++) {
    const o = inverse[i]!;
    if (options.faults) faultAt(s.env, i + 1, describeOp(o));
    try {
      faultAt(s.env, i + 1, describeOp(o), 'undo-');
      if ((await applyOp(s.client, o, 'tolerant')) === 'done') options.steps?.push(describeOp(o));
    } catch (e) {
      writeJournal(s.path, j);
      return `step ${i + 1} of ${inverse.length} of the undo (${describeOp(o)}): ${reasonOf(e)}`;
    }
    j.undone = i + 1;
    writeJournal(s.path, j);
  }
  return undefined;
}

/**
 * Refuses, changing nothing, to run a stop's undo over a host that is not in the layout `j`
 * records: the bridge with the NIC (the link the journal took over, by ifindex) and vif0.0 as
 * its ports, and the host side paired with vif0.0. An undo by name on any other host takes apart
 * whatever the names are now (a journal copied back, of an earlier version, or edited).
 */
function checkRecordedLayout(path: string, j: TakeoverJournal, host: HostState): void {
  const { netdev, bridge, pdev } = j.spec;
  const nic = linkByName(j.before, netdev);
  const now = linkByName(host, pdev);
  const layout = classifyLayout(j.spec, host);
  const why = layout.kind !== 'taken-over' ? (layout.kind === 'other' ? layout.reason : `${netdev} is not taken over`) : nic && now && nic.index !== now.index ? `${pdev} is not the NIC the journal took over (ifindex ${now.index}, not ${nic.index})` : undefined;
  if (why !== undefined) {
    throw new XennetError('state', `${path} records a takeover of ${netdev} by ${bridge}, but the host does not have that layout (${why}); nothing was changed`, {
      hint: '`xennet bridge status` shows the layout; if the host is as it was before the takeover, move the journal away',
    });
  }
}

/** The whole undo of a journal's unfinished command: a start's (the step at `done` may have half run), or a stop's. */
function undoOf(j: TakeoverJournal): LinkOp[] {
  return j.phase === 'starting' ? inverseOf(j.ops.slice(0, Math.min(j.done + 1, j.ops.length))) : inverseOf(j.ops);
}

/** The NIC's name after `ops`, from `name` (renames follow it; any other op leaves it). */
function nameAfter(name: string, ops: readonly LinkOp[]): string {
  let n = name;
  for (const o of ops) if (o.op === 'rename' && o.from === n) n = o.to;
  return n;
}

/**
 * Refuses, changing nothing, to go on with an undo when the NIC (the link the journal took over,
 * by its ifindex) does not have the name it has at that point of the journal: after the forward
 * steps that ran and the undo's steps that ran (the one at each end may have run or not, a kill
 * between it and the journal's write). A journal copied back, or left by a command that did not
 * finish while the host was put back some other way, would have the undo's ops act by name on
 * the NIC (`eth0`, the host side's name before the renames).
 */
function checkNicWhereRecorded(path: string, j: TakeoverJournal, inverse: readonly LinkOp[], host: HostState): void {
  const nic = linkByName(j.before, j.spec.netdev);
  if (!nic) return;
  const ran = j.phase === 'starting' ? [j.ops.slice(0, j.done), j.ops.slice(0, j.done + 1)] : [j.ops];
  const names = new Set<string>();
  for (const forward of ran) {
    const after = nameAfter(j.spec.netdev, forward);
    names.add(nameAfter(after, inverse.slice(0, j.undone)));
    names.add(nameAfter(after, inverse.slice(0, j.undone + 1)));
  }
  const now = host.links.find((l) => l.index === nic.index);
  if (now && names.has(now.name)) return;
  const expected = [...names].join(' or ');
  throw new XennetError('state', `${path} records ${j.phase === 'starting' ? 'a start' : 'a stop'} of ${j.spec.bridge} that did not finish, but the host does not match it (${now ? `the NIC is ${now.name}, where the journal has it ${expected}` : `the NIC (ifindex ${nic.index}) is gone`}); nothing was changed`, {
    hint: '`xennet bridge status` shows the layout; if the host is as it was before the takeover, move the journal away',
  });
}

/** Refuses, changing nothing, to finish a stop while guests are on the bridge (as stop refuses without --force). */
function checkNoGuests(j: TakeoverJournal, host: HostState, force: boolean): void {
  const guests = foreignPorts(j.spec, host);
  if (guests.length > 0 && !force) {
    throw refused(`${j.spec.bridge} still has other ports (${guests.join(', ')}); nothing was changed`, 'shut those guests down first, or pass --force to detach them');
  }
}

/** Undoes a start that did not finish (ops[0..done], the op at `done` may have half run), from where an earlier undo of it stopped. */
async function undoHalfStart(s: Session, j: TakeoverJournal): Promise<string> {
  const error = await runUndo(s, j, undoOf(j));
  if (error !== undefined) throw new XennetError('step-failed', `could not undo the half-done start recorded in ${s.path}: ${error}`, { hint: 'fix the cause and run the command again: it goes on from that step' });
  removeJournal(s.path);
  return `undid a start of ${j.spec.bridge} that stopped after ${j.done} of ${j.ops.length} steps`;
}

/** Runs (or continues) the inverse sequence of a completed start (`host`: the links as the caller read them under the lock). */
async function runStop(s: Session, j: TakeoverJournal, steps: string[], host: HostState): Promise<void> {
  if (j.phase !== 'stopping') {
    j.phase = 'stopping';
    j.undone = 0;
    writeJournal(s.path, j);
  }
  const error = await runUndo(s, j, inverseOf(j.ops), { steps, faults: true, host });
  if (error !== undefined) {
    throw new XennetError('step-failed', `stop of ${j.spec.bridge} could not complete: ${error}`, {
      hint: `the journal ${s.path} is kept; fix the cause and run stop again: it goes on from that step`,
    });
  }
  removeJournal(s.path);
}

async function withSession<T>(ctx: TakeoverContext, bridge: string, fn: (s: Session) => Promise<T>): Promise<T> {
  const env = ctx.env ?? process.env;
  const lock = await acquireLock(lockPath(bridge, env));
  try {
    const path = journalPath(bridge, env);
    // What a takeover killed while writing its journal left (under the lock: no writer now).
    sweepTempFiles(dirname(path), basename(path));
    return await fn({ client: ctx.client, env, log: ctx.log ?? silentLogger, path });
  } finally {
    lock.release();
  }
}

export interface StartOptions {
  /** Take the NIC over even when a network manager's configuration claims it. */
  force?: boolean;
  /** Print the steps, change nothing (no journal, no lock file either). */
  dryRun?: boolean;
}

/**
 * Refuses a NIC that systemd-networkd or NetworkManager is configured to manage (they would undo
 * or fight the takeover), unless `force` (then it is a warning).
 */
function checkManagers(ctx: TakeoverContext, spec: TakeoverSpec, host: HostState, force: boolean, warnings: string[]): void {
  const nic = linkByName(host, spec.netdev);
  if (!nic) return; // checkTakeover says so
  const claims = findManagerClaims((ctx.managerFiles ?? readManagerFiles)(), { name: nic.name, mac: nic.mac });
  if (claims.length === 0) return;
  const list = claims.map((c) => `${c.manager} (${c.file}: ${c.match})`).join(' and ');
  if (force) {
    warnings.push(`${spec.netdev} is claimed by ${list}; taken over anyway (--force): that manager may undo the takeover`);
    return;
  }
  const first = claims[0]!;
  throw refused(
    `${spec.netdev} is managed by ${list}; nothing was changed`,
    `${managerAdvice(first.manager, spec.netdev, spec.bridge)}. To take ${spec.netdev} over anyway, pass --force`,
  );
}

function resolveSpec(args: TakeoverArgs, host: HostState, ctx: TakeoverContext, purpose: 'start' | 'inspect'): TakeoverSpec {
  return resolveTakeoverSpec(args, host, recordedSpecs(ctx.env ?? process.env), purpose);
}

/** A dry run's journal: this boot's, or none (one of an earlier boot would be discarded: a warning says so). */
function thisBootsJournal(path: string, warnings: string[]): TakeoverJournal | undefined {
  const { journal, earlierBoot } = readJournalOfThisBoot(path);
  if (earlierBoot) warnings.push(`would discard ${path}: it was written before the last reboot`);
  return journal;
}

/** `start --dry-run`: what a start would do from here, read only. */
async function dryRunStart(ctx: TakeoverContext, spec: TakeoverSpec, options: StartOptions): Promise<TakeoverResult> {
  const env = ctx.env ?? process.env;
  const path = journalPath(spec.bridge, env);
  const warnings: string[] = [];
  const steps: string[] = [];
  let journal = thisBootsJournal(path, warnings);
  const live = await ctx.client.readHost();
  let host = live;
  let repaired: string | undefined;
  if (journal && journal.phase !== 'up') {
    if (journal.phase === 'stopping') checkNoGuests(journal, live, false);
    checkNicWhereRecorded(path, journal, undoOf(journal), live);
    const inverse = undoOf(journal).slice(journal.undone);
    steps.push(...inverse.map((o) => `undo: ${describeOp(o)}`));
    repaired = `would first ${journal.phase === 'starting' ? 'undo a start' : 'finish a stop'} of ${spec.bridge} that was interrupted (${inverse.length} steps), then start from the recorded pre-takeover state`;
    host = journal.before;
    journal = undefined;
  }
  const layout = classifyLayout(spec, host);
  if (journal) {
    if (layout.kind === 'taken-over') return { action: 'already-started', spec, steps, warnings };
    throw new XennetError('state', `${path} records a takeover of ${spec.netdev} by ${spec.bridge}, but the host does not have that layout`, {
      hint: layout.kind === 'original' ? 'the host is in its original layout: the journal is stale (copied back?); move it away, then start again' : 'someone changed the links by hand; run `xennet bridge stop` to restore the recorded state, then start again',
    });
  }
  if (layout.kind === 'taken-over') {
    throw refused(`${spec.netdev} is already bridged by ${spec.bridge} through ${spec.pdev}, but xennet has no record of it (${path}); nothing was changed`, 'another tool (Xen network-bridge?) set this up: stop it with that tool first');
  }
  checkManagers(ctx, spec, host, options.force ?? false, warnings);
  steps.push(...planTakeover(spec, host, await readStacks(ctx.client, spec, host, live)).map(describeOp));
  return repaired ? { action: 'would-start', spec, steps, repaired, warnings } : { action: 'would-start', spec, steps, warnings };
}

export async function bridgeStart(args: TakeoverArgs, ctx: TakeoverContext, options: StartOptions = {}): Promise<TakeoverResult> {
  const first = await ctx.client.readHost();
  const spec = resolveSpec(args, first, ctx, 'start');
  if (options.dryRun) return dryRunStart(ctx, spec, options);
  return withSession(ctx, spec.bridge, async (s) => {
    const warnings: string[] = [];
    const steps: string[] = [];
    let repaired: string | undefined;
    let journal = loadJournal(s, warnings);
    if (journal && journal.phase === 'starting') {
      repaired = await undoHalfStart(s, journal);
      journal = undefined;
    } else if (journal && journal.phase === 'stopping') {
      // Finishing it detaches whatever is on the bridge: the guests' check of stop.
      const host = await s.client.readHost();
      checkNoGuests(journal, host, false);
      await runStop(s, journal, [], host);
      repaired = `finished a stop of ${spec.bridge} that had been interrupted`;
      journal = undefined;
    }
    if (repaired) s.log.info(repaired);
    const host = await s.client.readHost();
    const layout = classifyLayout(spec, host);
    if (journal) {
      if (layout.kind === 'taken-over') return { action: 'already-started', spec, steps, warnings };
      throw new XennetError('state', `${s.path} records a takeover of ${spec.netdev} by ${spec.bridge}, but the host does not have that layout`, {
        hint: layout.kind === 'original' ? 'the host is in its original layout: the journal is stale (copied back?); move it away, then start again' : 'someone changed the links by hand; run `xennet bridge stop` to restore the recorded state, then start again',
      });
    }
    if (layout.kind === 'taken-over') {
      throw refused(`${spec.netdev} is already bridged by ${spec.bridge} through ${spec.pdev}, but xennet has no record of it (${s.path}); nothing was changed`, 'another tool (Xen network-bridge?) set this up: stop it with that tool first');
    }
    checkManagers(ctx, spec, host, options.force ?? false, warnings);
    const ops = planTakeover(spec, host, await readStacks(s.client, spec, host, host));
    const j: TakeoverJournal = { version: 1, spec, bootId: currentBootId(), startedAt: new Date().toISOString(), before: host, ops, phase: 'starting', done: 0, undone: 0 };
    writeJournal(s.path, j);
    for (const [i, o] of ops.entries()) {
      try {
        faultAt(s.env, i + 1, describeOp(o));
        await applyOp(s.client, o, 'strict');
      } catch (e) {
        // Undone as the next command would undo it (j.done is i: op i may have half run), and
        // journaled as it goes: a kill now leaves the next command to go on from there.
        const error = await runUndo(s, j, inverseOf(ops.slice(0, i + 1)));
        if (error === undefined) removeJournal(s.path);
        throw new StepFailed(i + 1, ops.length, o, e, true, error === undefined ? [] : [error]);
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
  /** Print the steps, change nothing. */
  dryRun?: boolean;
}

/** `stop --dry-run`: what a stop would do from here, read only. */
async function dryRunStop(ctx: TakeoverContext, spec: TakeoverSpec, options: StopOptions): Promise<TakeoverResult> {
  const path = journalPath(spec.bridge, ctx.env ?? process.env);
  const warnings: string[] = [];
  const journal = thisBootsJournal(path, warnings);
  const host = await ctx.client.readHost();
  if (!journal) {
    if (classifyLayout(spec, host).kind === 'taken-over') {
      throw refused(`${spec.bridge} bridges ${spec.pdev}, but xennet has no record of taking it over (${path}); nothing was changed`, 'stop it with the tool that started it');
    }
    return { action: 'not-started', spec, steps: [], warnings };
  }
  if (journal.phase !== 'up') checkNicWhereRecorded(path, journal, undoOf(journal), host);
  if (journal.phase === 'starting') {
    const inverse = undoOf(journal).slice(journal.undone);
    return { action: 'would-stop', spec: journal.spec, steps: inverse.map(describeOp), repaired: `would undo a start of ${journal.spec.bridge} that stopped after ${journal.done} of ${journal.ops.length} steps`, warnings };
  }
  if (journal.phase === 'up') checkRecordedLayout(path, journal, host);
  checkNoGuests(journal, host, options.force ?? false);
  const inverse = inverseOf(journal.ops).slice(journal.phase === 'stopping' ? journal.undone : 0);
  const result: TakeoverResult = { action: 'would-stop', spec: journal.spec, steps: inverse.map(describeOp), warnings };
  if (journal.phase === 'stopping') result.repaired = `would finish a stop that was interrupted after ${journal.undone} of ${journal.ops.length} steps`;
  return result;
}

export async function bridgeStop(args: TakeoverArgs, ctx: TakeoverContext, options: StopOptions = {}): Promise<TakeoverResult> {
  const first = await ctx.client.readHost();
  const spec = resolveSpec(args, first, ctx, 'inspect');
  if (options.dryRun) return dryRunStop(ctx, spec, options);
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
    if (journal.phase === 'up') checkRecordedLayout(s.path, journal, host);
    checkNoGuests(journal, host, options.force ?? false);
    const wasStopping = journal.phase === 'stopping';
    await runStop(s, journal, steps, host);
    const after = await s.client.readHost();
    warnings.push(...compareHostSide(journal.before, after, journal.spec.netdev).map((d) => `after stop: ${d}`));
    const result: TakeoverResult = { action: 'stopped', spec: journal.spec, steps, warnings };
    if (wasStopping) result.repaired = 'finished a stop that had been interrupted';
    return result;
  });
}
