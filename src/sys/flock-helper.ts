/**
 * A resident helper that takes and releases Xen's hotplug lock for a long-running process
 * (the daemon), so that a lock costs a pipe round trip instead of starting flock(1) each time.
 * Node has no flock(2); perl does, and perl-base is essential on Debian (every dom0 has it).
 *
 * The helper takes the lock exactly as claim_lock does (open O_CREAT, flock, then compare device
 * and inode of the descriptor and the path; retry when Xen released by unlinking) and holds it
 * until told to let go. It exits when its stdin closes, so a daemon that dies releases the lock
 * with it. Without perl, callers take the lock with flock(1) instead.
 */
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { timeoutError } from './deadline.js';
import { XennetError } from './errors.js';
import { start } from './exec.js';

const SCRIPT = String.raw`
use strict; use warnings; use Fcntl qw(:flock O_RDWR O_CREAT); $| = 1;
my $fh;
while (my $line = <STDIN>) {
  chomp $line;
  if ($line =~ /^lock (\d+) (.+)$/) {
    my ($ms, $path) = ($1, $2);
    my $ok = eval {
      local $SIG{ALRM} = sub { die "timeout\n" };
      alarm(int(($ms + 999) / 1000));
      while (1) {
        sysopen($fh, $path, O_RDWR | O_CREAT, 0600) or die "open: $!\n";
        flock($fh, LOCK_EX) or die "flock: $!\n";
        my @a = stat($fh); my @b = stat($path);
        last if @b && $a[0] == $b[0] && $a[1] == $b[1];
        close($fh);
      }
      alarm(0);
      1;
    };
    alarm(0);
    if ($ok) { print "locked\n"; } else { my $e = $@; $e =~ s/\s+$//; undef $fh; print "failed $e\n"; }
  } elsif ($line eq 'unlock') {
    close($fh) if $fh; undef $fh; print "unlocked\n";
  }
}
`;

type Child = ReturnType<typeof start>;

/**
 * One helper process and the answers it owes, in the order asked: answers are matched to
 * questions by order, so each process has its own queue, and a process killed (a wait cut short)
 * takes its queue with it: the next question goes to a new process and waits for that one's
 * answer, never for an answer the killed one still had on its way.
 */
interface Session {
  child: Child;
  replies: ((line: string) => void)[];
  /** The lock this process holds (from its `locked` until `unlock` is asked). */
  held?: string;
  /** Ended on purpose (close, or a wait cut short): not a lost lock. */
  ending?: boolean;
  /** Unlocks asked: a lock answered after an unlock was asked is not held any more. */
  unlocks: number;
}

export class FlockHelper {
  private session: Session | undefined;

  /**
   * `onLost`: the helper process died while it held a lock (killed, OOM): the kernel released
   * Xen's lock under a holder that still works. Called with the lock's path.
   */
  constructor(private readonly onLost?: (path: string, pid: number | undefined) => void) {}

  /** The current helper process, if one runs. */
  get pid(): number | undefined {
    return this.session?.child.pid;
  }

  static available(): boolean {
    return existsSync('/usr/bin/perl') || existsSync('/bin/perl');
  }

  private ensure(): Session {
    const s = this.session;
    if (s && s.child.exitCode === null && !s.child.killed) return s;
    const child = start('perl', ['-e', SCRIPT]);
    const session: Session = { child, replies: [], unlocks: 0 };
    child.on('error', () => undefined);
    child.stderr?.resume();
    child.stdin?.on('error', () => undefined);
    if (child.stdout) createInterface({ input: child.stdout }).on('line', (l) => session.replies.shift()?.(l));
    child.on('exit', () => {
      for (const r of session.replies.splice(0)) r('failed the lock helper exited');
      if (this.session === session) this.session = undefined;
      if (session.held !== undefined && !session.ending) this.onLost?.(session.held, child.pid);
    });
    this.session = session;
    return session;
  }

  private ask(line: string, timeoutMs: number, signal?: AbortSignal): Promise<string> {
    const session = this.ensure();
    const { child } = session;
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (f: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        f();
      };
      // A helper that is stuck or told to stop waiting is killed: the kernel drops its lock.
      const kill = (): void => {
        session.ending = true;
        child.kill('SIGKILL');
        if (this.session === session) this.session = undefined;
      };
      const onAbort = (): void => finish(() => {
        kill();
        reject(new XennetError('internal', 'stopped waiting for the hotplug lock'));
      });
      const timer = setTimeout(() => finish(() => {
        kill();
        reject(timeoutError('the hotplug lock helper', timeoutMs));
      }), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      session.replies.push((l) => finish(() => resolve(l)));
      child.stdin?.write(`${line}\n`);
    });
  }

  /** Takes the lock at `path`; rejects with the helper's reason (`timeout` when it waited too long). */
  async lock(path: string, waitMs: number, signal?: AbortSignal): Promise<void> {
    if (/[\n\r]/.test(path)) throw new XennetError('internal', 'bad lock path');
    const session = this.ensure();
    const unlocks = session.unlocks;
    const r = await this.ask(`lock ${Math.max(1, Math.ceil(waitMs))} ${path}`, waitMs + 3000, signal);
    if (r === 'locked') {
      if (session.unlocks === unlocks) session.held = path;
      return;
    }
    throw new XennetError(r === 'failed timeout' ? 'timeout' : 'exec', r === 'failed timeout' ? 'timeout' : `the hotplug lock helper: ${r.replace(/^failed /, '')}`);
  }

  async unlock(): Promise<void> {
    if (!this.session) return;
    // Let go from the moment it is asked: a helper that dies before it answers lost nothing.
    this.session.held = undefined;
    this.session.unlocks++;
    await this.ask('unlock', 5000);
  }

  close(): void {
    const s = this.session;
    this.session = undefined;
    if (s) s.ending = true;
    s?.child.stdin?.end();
    s?.child.kill('SIGTERM');
  }
}
