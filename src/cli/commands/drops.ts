/** `xennet drops [GUEST] [--follow]`: what the guests' rules dropped, with reason, addresses and protocol. */
import type { Argv, CommandModule } from 'yargs';
import { DROP_REASON_TEXT } from '../../firewall/drop-reasons.js';
import { domainWord, summaryText, type DropEvent } from '../../firewall/drop-log.js';
import { printable } from '../../net/index.js';
import type { HostStatus } from '../../status/host-status.js';
import { ExitCode, XennetError } from '../../sys/errors.js';

interface DropsArgs {
  guest?: string;
  follow: boolean;
  json: boolean;
}

/** One drop in a line (pure). */
export function dropLine(e: DropEvent): string {
  return `${e.at} ${domainWord(e.domain)} (${e.vif}) ${e.reason} (${DROP_REASON_TEXT[e.reason]}): ${summaryText(e.packet)}`;
}

const FOLLOW_POLL_MS = 1000;
/** How many polls apart --follow looks whether the pipe it writes to still has a reader (a look reads /proc). */
const READER_CHECK_POLLS = 10;

/**
 * Which drops are a guest's (pure). `found`: the interfaces `status GUEST` shows for the query
 * (none when it names no guest here now). An interface's name: that interface's drops. A domain
 * (by name or id): those of its interfaces now (its stub domain's emulated NIC, a copy being
 * migrated in under another name) and those recorded under its name (earlier runs). Nothing here:
 * whatever was recorded under that name, domain id or interface name.
 */
export function dropsOf(query: string, found: readonly { name: string; domid: number | null; domain: string | null }[]): (e: DropEvent) => boolean {
  const asked = /^(0|[1-9]\d{0,9})$/.test(query) ? Number(query) : undefined;
  if (found.length === 0) return (e) => e.vif === query || e.domain === query || (asked !== undefined && e.domid === asked);
  if (found.every((v) => v.name === query)) return (e) => e.vif === query;
  const names = new Set(found.map((v) => v.name));
  const domids = new Set(found.flatMap((v) => (v.domid === null ? [] : [v.domid])));
  const domains = new Set(found.flatMap((v) => (v.domain === null ? [] : [v.domain])));
  return (e) => names.has(e.vif) || (e.domid !== null && domids.has(e.domid)) || (e.domain !== null && domains.has(e.domain));
}

/** A daemon that went (restarted, stopped) shows as no answer, a refused or reset connection, or half an answer. */
const daemonGone = (e: unknown): boolean => e instanceof XennetError && (e.code === 'timeout' || e.code === 'exec');

/** One drop as a JSON line, with what a terminal could take for control (C1, line separators, bidi overrides) escaped too. */
export function jsonLine(e: DropEvent): string {
  return JSON.stringify(e).replace(/[\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export const dropsCommand: CommandModule<object, DropsArgs> = {
  command: 'drops [guest]',
  describe: "what the guests' rules dropped lately (each rule logs at most 6 a minute; log_drops), with the guest's domain, the reason, addresses and protocol, from the daemon; --follow: as they come",
  builder: (y) =>
    y
      .positional('guest', { type: 'string', describe: 'one guest: its domain name, domain id or an interface name' })
      .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'print drops as they come, until interrupted' })
      .option('json', { type: 'boolean', default: false, describe: 'one JSON object per drop, per line' })
      .example('$0 drops web01', 'what web01 sent that its rules dropped, lately')
      .example('$0 drops --follow', 'every guest, live') as unknown as Argv<DropsArgs>,
  handler: async (argv) => {
    // `xennet drops -f | head`: the reader went, and so do we.
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
    const print = (e: DropEvent): void => {
      process.stdout.write(`${argv.json ? jsonLine(e) : dropLine(e)}\n`);
    };
    try {
      if (process.getuid?.() !== 0) throw new XennetError('refused', "drops asks the daemon on its root-only socket: run it as root (sudo xennet drops)");
      const { askDaemon, unwrap, STATUS_DAEMON_WAIT_MS } = await import('../../daemon/client.js');
      type Answer = { listening: boolean; drops: DropEvent[]; seq: number; instance: string };
      const ask = async (after: number): Promise<Answer | undefined> => {
        const a = await askDaemon(process.env, { cmd: 'drops', after }, STATUS_DAEMON_WAIT_MS);
        return a ? (unwrap(a) as Answer) : undefined;
      };
      const first = await ask(0);
      if (!first) throw new XennetError('refused', 'no daemon runs: the daemon is what logs drops', { hint: 'start it (systemctl start xennet); the kernel log has no copy of them' });
      let mine: (e: DropEvent) => boolean = () => true;
      if (argv.guest !== undefined) {
        const guest = argv.guest;
        mine = dropsOf(guest, []);
        // The guest as `status GUEST` finds it, from the daemon's status (what it remembers).
        const { guestVifs } = await import('../../status/guest-view.js');
        const { rulesSource, rulesRequest } = await import('../../config/paths.js');
        const status = await askDaemon(process.env, rulesRequest('status', rulesSource(undefined)), STATUS_DAEMON_WAIT_MS)
          .then((a) => (a ? (unwrap(a) as { status: HostStatus }).status : undefined))
          .catch(() => undefined); // then by the name alone
        let vifs: { name: string; domid: number | null; domain: string | null }[] = [];
        try {
          if (status) vifs = guestVifs(status, guest);
        } catch (e) {
          // Not here now: what was recorded under that name is still shown, and followed.
          if (!first.drops.some(mine)) {
            if (!argv.follow) throw e;
            process.stderr.write(`xennet: no guest ${JSON.stringify(printable(guest))} on this host now: following drops recorded under that name\n`);
          }
        }
        if (vifs.length > 0) mine = dropsOf(guest, vifs);
      }
      if (!first.listening) process.stderr.write('xennet: the daemon does not listen for drops (see its log): none are recorded\n');
      const shown = first.drops.filter(mine);
      for (const e of shown) print(e);
      if (!argv.follow) {
        if (shown.length === 0 && !argv.json) process.stdout.write(`no drops recorded${argv.guest !== undefined ? ` for ${printable(argv.guest)}` : ''}\n`);
        process.exitCode = ExitCode.ok;
        return;
      }
      const { pipeOrphaned } = await import('../../sys/pipe-peer.js');
      let seq = first.seq;
      let instance = first.instance;
      let silentSince: number | undefined;
      for (let poll = 1; ; poll++) {
        await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
        // Nobody reads what would be printed (the reader of a pipe went): done.
        if (poll % READER_CHECK_POLLS === 0 && pipeOrphaned(1)) return;
        // A daemon restarted (systemd, the supervisor) is waited for, up to as long as status waits.
        const next = await ask(seq).catch((e: unknown) => {
          if (daemonGone(e)) return undefined;
          throw e;
        });
        if (!next) {
          silentSince ??= Date.now();
          if (Date.now() - silentSince > STATUS_DAEMON_WAIT_MS) throw new XennetError('refused', 'the daemon stopped');
          continue;
        }
        silentSince = undefined;
        // Another daemon numbers from 1: everything it has is new.
        const fresh = next.instance === instance ? next : await ask(0).catch((e: unknown) => {
          if (daemonGone(e)) return undefined;
          throw e;
        });
        if (!fresh) continue;
        // Numbered one by one: those missing came and went between two looks (more than it keeps).
        const missed = fresh.instance === instance ? fresh.seq - seq - fresh.drops.length : 0;
        if (missed > 0) process.stderr.write(`xennet: ${missed} drop${missed === 1 ? '' : 's'}${argv.guest !== undefined ? ' (of any guest)' : ''} came and went before they could be shown\n`);
        for (const e of fresh.drops) if (mine(e)) print(e);
        seq = fresh.seq;
        instance = fresh.instance;
      }
    } catch (e) {
      const err = e instanceof XennetError ? e : new XennetError('internal', e instanceof Error ? (e.stack ?? e.message) : String(e));
      process.stderr.write(`xennet: error: ${err.describe()}\n`);
      process.exitCode = err.exitCode;
    }
  },
};
