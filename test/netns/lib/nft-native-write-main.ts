/**
  * Run in a namespace: writes an nft script of xennet's natively (`write`: one nfnetlink
 * transaction; `check`: checked by the kernel, never applied; `apply`: as xennet does, in parts
 * where it does not fit in one), or reads back (`sets`: the sets of
 * `bridge xennet` as the kernel holds them; `read`: xennet's tables read natively, knowing the
 * rule texts given on stdin). Output is JSON on stdout; a refused transaction exits 1 saying why.
 */
import { readFileSync } from 'node:fs';
import { NftBatchWriter } from '../../../src/bridge/nl/nft-batch.js';
import { NftReader } from '../../../src/bridge/nl/nftables.js';
import { applyScript, readOwnTablesNative } from '../../../src/firewall/nftables/backend.js';
import { knownRules } from '../../../src/firewall/nftables/native-live.js';
import { scriptMessages } from '../../../src/firewall/nftables/native/script.js';

const command = process.argv[2];
const input = readFileSync(0, 'utf8');

if (command === 'write' || command === 'check') {
  const writer = new NftBatchWriter();
  try {
    const messages = scriptMessages(input);
    await (command === 'write' ? writer.commit(messages) : writer.check(messages));
    process.stdout.write(`${JSON.stringify({ messages: messages.length })}\n`);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  } finally {
    writer.close();
  }
} else if (command === 'apply') {
  // As xennet applies a script: in as few transactions as fit (XENNET_TEST_NFT_BATCH_BYTES caps them).
  try {
    await applyScript(input);
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
} else if (command === 'sets') {
  const reader = new NftReader();
  const sets = ((await reader.sets('bridge', 'xennet')) ?? []).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  reader.close();
  process.stdout.write(`${JSON.stringify(sets)}\n`);
} else if (command === 'read') {
  const chains = JSON.parse(input) as [string, string[]][];
  const live = await readOwnTablesNative(knownRules(chains.map(([, rules]) => rules)));
  process.stdout.write(`${JSON.stringify(live ? [...live.chains] : null)}\n`);
} else {
  process.stderr.write('usage: nft-native-write-main write|check|apply|sets|read < input\n');
  process.exitCode = 2;
}
