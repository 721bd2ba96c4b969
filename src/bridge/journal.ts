/**
 * The takeover journal: the pre-takeover snapshot and the planned steps, written before the first
 * change and updated after every step, so that `stop` restores exactly the recorded state and a
 * start or stop that was killed half way is finished or undone by the next command.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { currentBootId } from '../sys/boot.js';
import { reasonOf, XennetError } from '../sys/errors.js';
import { pathIdentity } from '../sys/file-identity.js';
import { lockHolder, lockPathState } from '../sys/lock.js';
import { readJsonTolerant, removeFile, stateDir, writeJsonAtomic } from '../sys/statefile.js';
import type { HostState } from './model.js';
import type { LinkOp } from './ops.js';
import type { TakeoverSpec } from './takeover-plan.js';

const family = z.enum(['inet', 'inet6']);
const address = z.object({
  family,
  link: z.string(),
  local: z.string(),
  prefixLen: z.number().int(),
  peer: z.string().optional(),
  broadcast: z.string().optional(),
  label: z.string().optional(),
  scope: z.number().int(),
  flags: z.array(z.string()),
  metric: z.number().int().optional(),
  validLft: z.number().int().optional(),
  preferredLft: z.number().int().optional(),
});
const route = z.object({
  family,
  table: z.number().int(),
  dst: z.string(),
  src: z.string().optional(),
  tos: z.number().int(),
  protocol: z.number().int(),
  scope: z.number().int(),
  type: z.number().int(),
  flags: z.number().int(),
  dev: z.string().nullable(),
  gateway: z.string().optional(),
  metric: z.number().int().optional(),
  prefsrc: z.string().optional(),
  metrics: z.record(z.string(), z.number()).optional(),
  pref: z.number().int().optional(),
  nexthopDevs: z.array(z.string()).optional(),
});
const neigh = z.object({
  family,
  link: z.string(),
  dst: z.string(),
  lladdr: z.string().optional(),
  proxy: z.boolean(),
  router: z.boolean(),
});
const link = z.object({
  index: z.number().int(),
  name: z.string(),
  kind: z.string().nullable(),
  master: z.string().nullable(),
  mac: z.string(),
  mtu: z.number().int(),
  up: z.boolean(),
  arp: z.boolean(),
  multicast: z.boolean(),
  peerIndex: z.number().int().nullable(),
  lower: z.number().int().optional(),
  bridge: z.object({ stpState: z.number(), forwardDelay: z.number(), nfCallIptables: z.boolean(), nfCallIp6tables: z.boolean(), noLinkLocalLearn: z.boolean().default(false) }).optional(),
  alias: z.string().optional(),
});
const flagsPair = z.object({ arp: z.boolean(), multicast: z.boolean() });
const linkOp = z.discriminatedUnion('op', [
  z.object({ op: z.literal('create-veth'), name: z.string(), peer: z.string() }),
  z.object({ op: z.literal('delete-veth'), name: z.string(), peer: z.string() }),
  z.object({ op: z.literal('create-bridge'), name: z.string() }),
  z.object({ op: z.literal('delete-bridge'), name: z.string() }),
  z.object({ op: z.literal('rename'), from: z.string(), to: z.string(), index: z.number().int().optional(), pairedWith: z.string().optional() }),
  z.object({ op: z.literal('set-up'), link: z.string(), up: z.boolean(), was: z.boolean() }),
  z.object({ op: z.literal('set-flags'), link: z.string(), arp: z.boolean(), multicast: z.boolean(), was: flagsPair }),
  z.object({ op: z.literal('set-mac'), link: z.string(), mac: z.string(), was: z.string() }),
  z.object({ op: z.literal('set-alias'), link: z.string(), alias: z.string(), was: z.string() }),
  z.object({ op: z.literal('set-mtu'), link: z.string(), mtu: z.number().int(), was: z.number().int() }),
  z.object({ op: z.literal('set-master'), link: z.string(), master: z.string().nullable(), was: z.string().nullable() }),
  z.object({ op: z.literal('set-sysctl'), link: z.string(), family: z.enum(['ipv4', 'ipv6']), key: z.string().regex(/^[a-z0-9_]+$/), value: z.string().regex(/^-?\d{1,20}$/), was: z.string().regex(/^-?\d{1,20}$/) }),
  z.object({ op: z.literal('add-address'), address }),
  z.object({ op: z.literal('delete-address'), address }),
  z.object({ op: z.literal('add-route'), route }),
  z.object({ op: z.literal('delete-route'), route }),
  z.object({ op: z.literal('add-neigh'), neigh }),
  z.object({ op: z.literal('delete-neigh'), neigh }),
]);

const journalSchema = z.object({
  version: z.literal(1),
  spec: z.object({ netdev: z.string(), bridge: z.string(), vifnum: z.number().int(), pdev: z.string(), vdev: z.string(), vif0: z.string() }),
  bootId: z.string(),
  startedAt: z.string(),
  before: z.object({ links: z.array(link), addresses: z.array(address), routes: z.array(route), neighbours: z.array(neigh).optional() }),
  ops: z.array(linkOp),
  /** starting: `done` ops ran; up: all ran; stopping: `undone` inverse ops ran. */
  phase: z.enum(['starting', 'up', 'stopping']),
  done: z.number().int().min(0),
  /** starting or stopping: how many of the inverse ops an undo has run (a killed undo goes on from there). */
  undone: z.number().int().min(0),
});

export type TakeoverJournal = z.infer<typeof journalSchema>;

// Compile-time checks that the schema and the model agree.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _ops: Same<z.infer<typeof linkOp>, LinkOp> = true;
const _host: Same<TakeoverJournal['before'], HostState> = true;
const _spec: Same<TakeoverJournal['spec'], TakeoverSpec> = true;
void _ops;
void _host;
void _spec;

export function journalPath(bridge: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDir(env), `takeover-${bridge}.json`);
}

export function lockPath(bridge: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDir(env), `takeover-${bridge}.lock`);
}

export { currentBootId };

/**
 * The takeover journals in the state directory: each of this boot, or the reason it cannot be read
 * (those of an earlier boot left out: they describe links that are gone).
 */
export function journalsOfThisBoot(env: NodeJS.ProcessEnv = process.env): ({ path: string; journal: TakeoverJournal } | { path: string; unreadable: string })[] {
  let names: string[];
  try {
    names = readdirSync(stateDir(env)).filter((n) => /^takeover-.+\.json$/.test(n));
  } catch {
    return [];
  }
  const out: ({ path: string; journal: TakeoverJournal } | { path: string; unreadable: string })[] = [];
  for (const n of names.sort()) {
    const path = join(stateDir(env), n);
    try {
      const { journal } = readJournalOfThisBoot(path);
      if (journal) out.push({ path, journal });
    } catch (e) {
      out.push({ path, unreadable: reasonOf(e) });
    }
  }
  return out;
}

/**
 * What tells the takeover journals apart from themselves earlier, without reading them, and who
 * holds each takeover's lock now (a takeover cut short is told from one running by its lock's
 * holder being alive), and what is at each lock path (status names one that holds no lock file):
 * a daemon's remembered status is keyed on it.
 */
export function journalsStamp(env: NodeJS.ProcessEnv = process.env): string {
  try {
    return readdirSync(stateDir(env))
      .filter((n) => /^(takeover-.+\.(json|lock)|learned\.lock)$/.test(n))
      .sort()
      .map((n) => {
        const path = join(stateDir(env), n);
        // A lock file changes as locks are taken (the holder's name written, then emptied): what
        // is there, and who holds a takeover's, is what status says of it.
        if (n.endsWith('.lock')) return `${n}=${lockPathState(path)}${n.startsWith('takeover-') ? `@${lockHolder(path) ?? 'nobody'}` : ''}`;
        return `${n}=${pathIdentity(path) ?? 'none'}`;
      })
      .join(',');
  } catch (e) {
    return `none:${(e as NodeJS.ErrnoException).code ?? '?'}`;
  }
}

/**
 * The specs of the takeovers journaled in this boot (unreadable journals and those of an earlier
 * boot left out): what a command without arguments acts on when the routes no longer tell.
 */
export function recordedSpecs(env: NodeJS.ProcessEnv = process.env): TakeoverSpec[] {
  // An unreadable journal is left out here: the command that owns it reports it.
  return journalsOfThisBoot(env).flatMap((j) => ('journal' in j ? [j.journal.spec] : []));
}

export function readJournal(path: string): TakeoverJournal | undefined {
  // Read as every state file is (a FIFO put in its place hung start, stop and status; found by helper-47).
  const read = readJsonTolerant(path);
  if (read.kind === 'missing') return undefined;
  if (read.kind === 'corrupt') {
    throw new XennetError('state', `state file ${path} is not a xennet takeover journal (${read.reason})`, {
      hint: 'inspect it; if the host is in its original layout, move the file away and run the command again',
    });
  }
  const parsed = journalSchema.safeParse(read.value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new XennetError('state', `state file ${path} is not a xennet takeover journal (${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'})`, {
      hint: 'if the host is in its original layout, move the file away and run the command again',
    });
  }
  return parsed.data;
}

/**
 * A journal as the commands take it: one written before the host's last boot describes links
 * that are gone, and is not the host's state (`earlierBoot`: the file is there, `journal` is not).
 */
export function readJournalOfThisBoot(path: string): { journal: TakeoverJournal | undefined; earlierBoot: boolean } {
  const journal = readJournal(path);
  return journal === undefined || journal.bootId === currentBootId() ? { journal, earlierBoot: false } : { journal: undefined, earlierBoot: true };
}

export function writeJournal(path: string, journal: TakeoverJournal): void {
  writeJsonAtomic(path, journal);
}

export function removeJournal(path: string): void {
  removeFile(path);
}
