/** One of several processes racing for a lock (test/unit/lock.test.ts): holds it 30 ms, logs when. */
import { appendFileSync } from 'node:fs';
import { acquireLock } from '../../../src/sys/lock.js';

const [path, log, startAt] = process.argv.slice(2) as [string, string, string];
const now = (): number => performance.timeOrigin + performance.now();
while (now() < Number(startAt)) await new Promise((r) => setTimeout(r, 1));
const held = await acquireLock(path, 10_000);
appendFileSync(log, `enter ${now()}\n`);
await new Promise((r) => setTimeout(r, 30));
appendFileSync(log, `leave ${now()}\n`);
held.release();
