/**
 * Run in a namespace: xennet's nftables tables read both ways, as JSON on stdout. The native
 * read is given every rule text the `nft` listing shows as known, so that the two compare.
 */
import { listOwnTables, readOwnTablesNative } from '../../../src/firewall/nftables/backend.js';
import { knownRules } from '../../../src/firewall/nftables/native-live.js';
import { parseNftList } from '../../../src/firewall/nftables/script.js';
import type { LiveTable } from '../../../src/firewall/live.js';

const plain = (l: LiveTable | undefined): unknown => l && { chains: [...l.chains], counters: [...l.counters], policies: [...l.policies] };
const text = parseNftList(await listOwnTables());
const known = knownRules([...text.chains.values()]);
const native = await readOwnTablesNative(known);
const t0 = performance.now();
await readOwnTablesNative(known);
const nativeMs = performance.now() - t0;
process.stdout.write(`${JSON.stringify({ text: plain(text), native: plain(native), nativeMs })}\n`);
