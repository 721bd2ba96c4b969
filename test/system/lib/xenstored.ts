/**
 * The simulated xenstored as a separate process on the default socket (src/sim/xenstored-main.ts),
 * so a test can kill it or stop it with SIGSTOP. The host's in-memory store hands its tree over
 * and closes; from then on the store is read with Debian's xenstore-read (see world.ts `xs`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SimHost } from '../../../src/sim/host.js';
import { spawnTracked, type Tracked } from './proc.js';
import { root } from './world.js';

export interface XenstoredProcess {
  pid: number;
  stop(): void;
  cont(): void;
  /** SIGKILL; resolves once the process is gone (its socket file stays, as after a crash). */
  kill(): Promise<void>;
}

export async function xenstoredAsProcess(host: SimHost): Promise<XenstoredProcess> {
  const tree = join(host.dir, 'xenstore.json');
  writeFileSync(tree, JSON.stringify(host.xenstored.dump()));
  const socket = host.xenstoreSocket;
  await host.xenstored.close();
  const t: Tracked = spawnTracked('node', [join(root, 'dist/src/sim/xenstored-main.js'), socket, '--load', tree], { killAfterMs: 10 * 60_000 });
  const deadline = Date.now() + 10_000;
  while (!t.stdoutText().includes(`ready ${socket}`)) {
    if (Date.now() > deadline || !t.alive()) {
      await t.kill();
      throw new Error(`xenstored-main did not become ready on ${socket}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { pid: t.pid, stop: () => t.signal('SIGSTOP'), cont: () => t.signal('SIGCONT'), kill: () => t.kill() };
}
