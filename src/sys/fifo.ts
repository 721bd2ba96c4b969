/** Named pipes. Node has no mkfifo(3), so util-linux/coreutils' mkfifo(1) makes them. */
import { spawnSync } from 'node:child_process';
import { XennetError } from './errors.js';

/** Creates a FIFO at `path` with mode 0600 (the parent must exist; an old one is replaced by the caller). */
export function mkfifoSync(path: string): void {
  const r = spawnSync('mkfifo', ['-m', '600', path], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  if (r.error) throw new XennetError('exec', `could not run mkfifo: ${r.error.message}`);
  if (r.status !== 0) throw new XennetError('exec', `mkfifo ${path} failed: ${r.stderr.toString().trim()}`);
}
