/**
 * Run in a namespace: another process holding xennet's drop group (as ulogd or tcpdump -i
 * nflog:30831 would). Prints "ready" once it holds the group, lets it go when its stdin closes.
 */
import { listenNflog } from '../../../src/bridge/nl/nflog.js';
import { DROP_GROUP } from '../../../src/firewall/drop-log.js';

const listener = await listenNflog(DROP_GROUP, () => undefined, () => undefined);
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => {
  listener.close();
  process.exit(0);
});
