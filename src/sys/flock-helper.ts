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

export class FlockHelper {
  private child: Child | undefined;
  private replies: ((line: string) => void)[] = [];

  static available(): boolean {
    return existsSync('/usr/bin/perl') || existsSync('/bin/perl');
  }

  private ensure(): Child {
    if (this.child && this.child.exitCode === null && !this.child.killed) return this.child;
    const child = start('perl', ['-e', SCRIPT]);
    child.on('error', () => undefined);
    child.stderr?.resume();
    child.stdin?.on('error', () => undefined);
    if (child.stdout) createInterface({ input: child.stdout }).on('line', (l) => this.replies.shift()?.(l));
    child.on('exit', () => {
      for (const r of this.replies.splice(0)) r('failed the lock helper exited');
      if (this.child === child) this.child = undefined;
    });
    this.child = child;
    return child;
  }

  private ask(line: string, timeoutMs: number, signal?: AbortSignal): Promise<string> {
    const child = this.ensure();
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
        child.kill('SIGKILL');
        if (this.child === child) this.child = undefined;
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
      this.replies.push((l) => finish(() => resolve(l)));
      child.stdin?.write(`${line}\n`);
    });
  }

  /** Takes the lock at `path`; rejects with the helper's reason (`timeout` when it waited too long). */
  async lock(path: string, waitMs: number, signal?: AbortSignal): Promise<void> {
    if (/[\n\r]/.test(path)) throw new XennetError('internal', 'bad lock path');
    const r = await this.ask(`lock ${Math.max(1, Math.ceil(waitMs))} ${path}`, waitMs + 3000, signal);
    if (r === 'locked') return;
    throw new XennetError(r === 'failed timeout' ? 'timeout' : 'exec', r === 'failed timeout' ? 'timeout' : `the hotplug lock helper: ${r.replace(/^failed /, '')}`);
  }

  async unlock(): Promise<void> {
    if (!this.child) return;
    await this.ask('unlock', 5000);
  }

  close(): void {
    this.child?.stdin?.end();
    this.child?.kill('SIGTERM');
    this.child = undefined;
  }
}
