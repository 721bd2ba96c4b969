/**
 * `node dist/src/sim/xenstored-main.js SOCKET [--load TREE.json]`: runs the in-memory xenstored until SIGTERM/SIGINT.
 * Prints `ready SOCKET` on stdout once it accepts connections.
 */
import { readFileSync } from 'node:fs';
import { InMemoryXenstored } from './xenstored.js';

const socketPath = process.argv[2];
if (!socketPath) {
  process.stderr.write('usage: xenstored-main SOCKET\n');
  process.exit(64);
}
const store = new InMemoryXenstored(socketPath);
const loadIndex = process.argv.indexOf('--load');
if (loadIndex > 0 && process.argv[loadIndex + 1]) store.load(JSON.parse(readFileSync(process.argv[loadIndex + 1]!, 'utf8')));
await store.listen();
process.stdout.write(`ready ${socketPath}\n`);
const stop = (): void => {
  void store.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
