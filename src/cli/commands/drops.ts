/** `xennet drops [GUEST] [--follow]`: what the guests' rules dropped, with reason, addresses and protocol. */
import type { Argv, CommandModule } from 'yargs';
import type { DropEvent } from '../../daemon/drop-watch.js';
import { DROP_REASON_TEXT } from '../../firewall/drop-reasons.js';
import { summaryText } from '../../firewall/drop-log.js';
import { printable } from '../../net/index.js';
import { ExitCode, XennetError } from '../../sys/errors.js';

interface DropsArgs {
  guest?: string;
  follow: boolean;
  json: boolean;
}

/** One drop in a line (pure). */
export function dropLine(e: DropEvent): string {
  return `${e.at} ${printable(e.domain ?? '?')} (${e.vif}) ${e.reason} (${DROP_REASON_TEXT[e.reason]}): ${summaryText(e.packet)}`;
}

const FOLLOW_POLL_MS = 1000;

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
      const { askDaemon, unwrap } = await import('../../daemon/client.js');
      const { STATUS_DAEMON_WAIT_MS } = await import('../../status/daemon-expected.js');
      type Answer = { listening: boolean; drops: DropEvent[]; seq: number; instance: string };
      const ask = async (after: number): Promise<Answer | undefined> => {
        const a = await askDaemon(process.env, { cmd: 'drops', after, ...(argv.guest !== undefined ? { guest: argv.guest } : {}) }, STATUS_DAEMON_WAIT_MS);
        return a ? (unwrap(a) as Answer) : undefined;
      };
      const first = await ask(0);
      if (!first) throw new XennetError('refused', 'no daemon runs: the daemon is what logs drops', { hint: 'start it (systemctl start xennet); the kernel log has no copy of them' });
      if (!first.listening) process.stderr.write('xennet: the daemon does not listen for drops (see its log): none are recorded\n');
      for (const e of first.drops) print(e);
      if (!argv.follow) {
        if (first.drops.length === 0 && !argv.json) process.stdout.write(`no drops recorded${argv.guest !== undefined ? ` for ${printable(argv.guest)}` : ''}\n`);
        process.exitCode = ExitCode.ok;
        return;
      }
      let seq = first.seq;
      let instance = first.instance;
      let silentSince: number | undefined;
      for (;;) {
        await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
        // A daemon restarted (systemd, the supervisor) is waited for, up to as long as status waits.
        const next = await ask(seq).catch((e: unknown) => {
          if (e instanceof XennetError && e.code === 'timeout') return undefined;
          throw e;
        });
        if (!next) {
          silentSince ??= Date.now();
          if (Date.now() - silentSince > STATUS_DAEMON_WAIT_MS) throw new XennetError('refused', 'the daemon stopped');
          continue;
        }
        silentSince = undefined;
        // Another daemon numbers from 1: everything it has is new.
        const fresh = next.instance === instance ? next : await ask(0);
        if (!fresh) continue;
        for (const e of fresh.drops) print(e);
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
