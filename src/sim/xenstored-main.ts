/**
 * `node dist/src/sim/xenstored-main.js SOCKET`: runs the in-memory xenstored until SIGTERM/SIGINT.
 * Prints `ready SOCKET` on stdout once it accepts connections.
 */
import { InMemoryXenstored } from './xenstored.js';

const socketPath = process.argv[2];
if (!socketPath) {
  process.stderr.write('usage: xenstored-main SOCKET\n');
  process.exit(64);
}
const store = new InMemoryXenstored(socketPath);
await store.listen();
process.stdout.write(`ready ${socketPath}\n`);
const stop = (): void => {
  void store.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
