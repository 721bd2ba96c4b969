/**
 * Where learned bindings live: in the kernel, with their timeouts (nftables: the sets of
 * nft/learned.ts; xtables: the ipsets of learned-xtables.ts), and in the state directory
 * (`learned.json`), so that a daemon restart or a reboot puts back what has not ended. Every
 * change takes `learned.lock`, writes the kernel, then the file. Which kernel: the backend the
 * installed firewall was compiled to (the firewall index says).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { acquireLock } from '../../sys/lock.js';
import { currentBootId } from '../../sys/boot.js';
import type { Logger } from '../../sys/log.js';
import { readJson, stateDir, writeJsonAtomic } from '../../sys/statefile.js';
import { reasonOf } from '../../sys/errors.js';
import { bindingSchema, expire, ofAnotherDomain, type Binding } from './bindings.js';
import { parseCidr } from '../../net/index.js';
import type { BackendKind, LearnedAddresses, VifFacts } from '../model.js';
import { driverFor } from '../drivers.js';
import type { KernelBinding, LearnedStore } from '../driver.js';
import { loadIndex } from '../store.js';
import { silentLogger } from '../../sys/log.js';

/** These facts with what keeps learning from running on this backend, if anything. */
export function withLearningAvailability<T extends VifFacts>(facts: readonly T[], kind: BackendKind): T[] {
  const why = driverFor(kind).learningUnavailable();
  return why === undefined ? [...facts] : facts.map((f) => ({ ...f, learningUnavailable: why }));
}

export const learnedPath = (env: NodeJS.ProcessEnv): string => join(stateDir(env), 'learned.json');
const lockPath = (env: NodeJS.ProcessEnv): string => join(stateDir(env), 'learned.lock');

const fileSchema = z.strictObject({ version: z.literal(1), boot: z.string().max(64).optional(), bindings: z.array(z.unknown()) });

/**
 * The recorded bindings (`only`: of this vif; the others are not validated, which a hook at a
 * thousand guests need not pay for); a record that does not parse is left out (and said).
 */
export function readBindings(env: NodeJS.ProcessEnv, log?: Logger, only?: string): Binding[] {
  let raw: unknown;
  try {
    raw = readJson(learnedPath(env));
  } catch (e) {
    log?.warning(`learned bindings: ${reasonOf(e)}; starting with none`);
    return [];
  }
  if (raw === undefined) return [];
  const file = fileSchema.safeParse(raw);
  if (!file.success) {
    log?.warning(`learned bindings: ${learnedPath(env)} is not a bindings file; starting with none`);
    return [];
  }
  // Written before the host's last boot: every domain it names is gone, and its vif names are
  // the next domains' (the kernel's elements went with the reboot).
  if (file.data.boot !== undefined && file.data.boot !== currentBootId()) {
    log?.info(`learned bindings: ${learnedPath(env)} was written before this boot; starting with none`);
    return [];
  }
  const out: Binding[] = [];
  for (const b of file.data.bindings) {
    if (only !== undefined && (typeof b !== 'object' || b === null || (b as { vif?: unknown }).vif !== only)) continue;
    const p = bindingSchema.safeParse(b);
    if (p.success && validAddress(p.data.family, p.data.address)) out.push(p.data);
    else log?.warning(`learned bindings: a record that is not a binding is left out (${JSON.stringify(b).slice(0, 120)})`);
  }
  return out;
}

/** A host address in canonical text (what the daemon writes), of that family: anything else is not a binding. */
function validAddress(family: 'ipv4' | 'ipv6', a: string): boolean {
  try {
    const c = parseCidr(a);
    return c.family === family && c.addr === a && !a.includes('/');
  } catch {
    return false;
  }
}

/**
 * Changes the bindings under the lock: `fn` gets the recorded ones and returns what to write and
 * remove in the kernel and the new record. The kernel is written first: a crash in between leaves
 * the record behind, which the next start puts back (never the reverse).
 */
export async function updateBindings(env: NodeJS.ProcessEnv, log: Logger, fn: (bindings: Binding[]) => { bindings: Binding[]; write: Binding[]; remove: Binding[] }, waitMs = 10_000): Promise<Binding[]> {
  const held = await acquireLock(lockPath(env), waitMs);
  try {
    const before = readBindings(env, log);
    const change = fn(before);
    await kernelStore(env).write(change.write, change.remove);
    // A record that would not change is not written (nor made, when there is nothing to record).
    const unchanged = JSON.stringify(change.bindings) === JSON.stringify(before);
    if (unchanged && (existsSync(learnedPath(env)) ? recordedBoot(env) === currentBootId() : change.bindings.length === 0)) return change.bindings;
    writeJsonAtomic(learnedPath(env), { version: 1, boot: currentBootId(), bindings: change.bindings });
    return change.bindings;
  } finally {
    held.release();
  }
}

/** The boot the record was written in (undefined: no record, or none said). */
function recordedBoot(env: NodeJS.ProcessEnv): string | undefined {
  try {
    const raw = readJson(learnedPath(env)) as { boot?: unknown } | undefined;
    return typeof raw?.boot === 'string' ? raw.boot : undefined;
  } catch {
    return undefined;
  }
}

/** The kernel side of the learned bindings, as the installed firewall's driver keeps them. */
const kernelStore = (env: NodeJS.ProcessEnv): LearnedStore => driverFor(loadIndex(env, silentLogger).index.engine ?? 'xtables').learned;

/**
 * The bindings of each learning guest that have not ended, as recorded: what the xtables
 * backend writes as its ARP and NA rules (a lease that has ended, or was released, holds nothing,
 * nor does what an earlier domain learned on a vif of the same name: `domidOf` says whose it is).
 */
export function learnedAddressesByVif(env: NodeJS.ProcessEnv, only?: string, now = Date.now(), domidOf: (vif: string) => number | undefined = () => undefined): Map<string, LearnedAddresses> {
  const out = new Map<string, LearnedAddresses>();
  for (const b of expire(readBindings(env, undefined, only), now).live) {
    if (ofAnotherDomain(b, domidOf(b.vif))) continue; // an earlier domain's vif of the same name learned it
    let e = out.get(b.vif);
    if (!e) out.set(b.vif, (e = { ipv4: [], ipv6: [] }));
    e[b.family].push(b.address);
  }
  for (const e of out.values()) {
    e.ipv4 = [...new Set(e.ipv4)].sort();
    e.ipv6 = [...new Set(e.ipv6)].sort();
  }
  return out;
}

/** The learned elements in the kernel: (vif, address, ms left or null) of both families. */
export function listKernelBindings(env: NodeJS.ProcessEnv): Promise<KernelBinding[]> {
  return kernelStore(env).list();
}

/**
 * The record and the kernel's elements, read together under the lock: a change in flight writes
 * the kernel before the record, so read apart the two could disagree for a moment. `kernel` is
 * undefined when it could not be read; `together` false when the lock was not had within 2 s.
 */
export async function readRecordAndKernel(env: NodeJS.ProcessEnv): Promise<{ recorded: Binding[]; kernel: KernelBinding[] | undefined; together: boolean }> {
  if (!existsSync(learnedPath(env))) return { recorded: [], kernel: await listKernelBindings(env).catch(() => undefined), together: true };
  const held = await acquireLock(lockPath(env), 2000).catch(() => undefined);
  try {
    return { recorded: readBindings(env), kernel: await listKernelBindings(env).catch(() => undefined), together: held !== undefined };
  } finally {
    held?.release();
  }
}

/**
 * Ends every binding of these vifs (offline): the record's and whatever the kernel holds for them
 * (a crash may have left an element the record lacks). One change for all of them: a commit under
 * the hotplug lock waits for the learned record's lock once, at most `waitMs`.
 */
export async function forgetVifs(env: NodeJS.ProcessEnv, log: Logger, vifs: readonly string[], waitMs = 10_000): Promise<void> {
  if (vifs.length === 0) return;
  const gone = new Set(vifs);
  const kernel = (await listKernelBindings(env)).filter((k) => gone.has(k.vif));
  await updateBindings(
    env,
    log,
    (bindings) => {
      const mine = bindings.filter((b) => gone.has(b.vif));
      const extra = kernel.filter((k) => !mine.some((b) => b.vif === k.vif && b.family === k.family && b.address === k.address)).map((k): Binding => ({ vif: k.vif, family: k.family, address: k.address, how: 'dad', since: 0, expires: null, guarded: true }));
      for (const vif of vifs) {
        const n = mine.filter((b) => b.vif === vif).length;
        if (n > 0) log.info(`${vif}: ${n} learned binding${n === 1 ? '' : 's'} ended with the vif`);
      }
      return { bindings: bindings.filter((b) => !gone.has(b.vif)), write: [], remove: [...mine, ...extra] };
    },
    waitMs,
  );
  await dropLearnedSets(env, vifs);
}

/**
 * Ends what an earlier domain learned on these vifs (`owners`: vif -> the domain whose it is now;
 * the earlier one's offline never ran): in the record and in the kernel, where its elements would
 * let the new domain send from them. The record is read once, and written only when it has some.
 */
export async function forgetEarlierDomains(env: NodeJS.ProcessEnv, log: Logger, owners: ReadonlyMap<string, number>, waitMs = 10_000): Promise<void> {
  const earlier = (b: Binding): boolean => owners.has(b.vif) && ofAnotherDomain(b, owners.get(b.vif));
  if (owners.size === 0 || !readBindings(env).some(earlier)) return;
  await updateBindings(env, log, (bindings) => {
    const gone = bindings.filter(earlier);
    for (const b of gone) log.info(`${b.vif}: ${b.address} unbound (domain ${b.domid} learned it; the vif is domain ${owners.get(b.vif)}'s now)`);
    return { bindings: bindings.filter((b) => !gone.includes(b)), write: [], remove: gone };
  }, waitMs);
}

/** What the driver keeps for these vifs' bindings outside its rules goes (the xtables backend's ipsets). */
export async function dropLearnedSets(env: NodeJS.ProcessEnv, vifs: Iterable<string>): Promise<void> {
  await kernelStore(env).dropFor?.(vifs);
}


/**
 * Puts the recorded bindings that have not ended back in the kernel (the daemon's start; a
 * firewall made anew: `apply`, a full reconcile after `nft flush ruleset`), and drops the ended
 * ones. `learning`: the vifs that learn now and their domains (when known); the bindings of any
 * other vif end too, and those an earlier domain learned on a vif of the same name.
 */
export async function restoreBindings(env: NodeJS.ProcessEnv, log: Logger, learning?: ReadonlyMap<string, number | undefined>, waitMs = 10_000): Promise<Binding[]> {
  if (learning !== undefined && learning.size === 0 && readBindings(env).length === 0) return [];
  // What the kernel holds that the record does not (a crash between the two writes) goes too:
  // an element nobody recorded would let its port send from an address another may lease.
  const kernel = await listKernelBindings(env).catch(() => []);
  return updateBindings(env, log, (bindings) => {
    const { live, ended } = expire(bindings, Date.now());
    const keep = learning === undefined ? live : live.filter((b) => learning.has(b.vif) && !ofAnotherDomain(b, learning.get(b.vif)));
    const unrecorded = kernel.filter((k) => !keep.some((b) => b.vif === k.vif && b.family === k.family && b.address === k.address)).map((k): Binding => ({ vif: k.vif, family: k.family, address: k.address, how: 'dad', since: 0, expires: null, guarded: true }));
    return { bindings: keep, write: keep, remove: [...ended, ...live.filter((b) => !keep.includes(b)), ...unrecorded] };
  }, waitMs);
}
