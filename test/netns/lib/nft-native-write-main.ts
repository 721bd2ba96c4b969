/**
  * Run in a namespace: writes an nft script of xennet's natively (`write`: one nfnetlink
 * transaction; `check`: checked by the kernel, never applied; `apply`: as xennet does, in parts
 * where it does not fit in one), or reads back (`sets`: the sets of
 * `bridge xennet` as the kernel holds them; `exprs`: each rule's expressions as the kernel dumps
 * them against what xennet's encoder makes of its text, among the rule texts given on stdin;
 * `read`: xennet's tables read natively, knowing the rule texts given on stdin). Output is JSON on stdout; a refused transaction exits 1 saying why.
 */
import { readFileSync } from 'node:fs';
import { NftBatchWriter } from '../../../src/bridge/nl/nft-batch.js';
import { NftReader } from '../../../src/bridge/nl/nftables.js';
import { applyScript, readOwnTablesNative } from '../../../src/firewall/nftables/backend.js';
import { knownRules } from '../../../src/firewall/nftables/native-live.js';
import { ruleExpressionBytes, scriptMessages } from '../../../src/firewall/nftables/native/script.js';
import { writtenRule } from '../../../src/firewall/nftables/guard.js';
import { parseNftRule } from '../../../src/firewall/nftables/native/rule-parse.js';
import { sameExpressions } from './expr-compare.js';

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
} else if (command === 'exprs') {
  // Each rule of xennet's tables whose tag names one of the texts given: are its expressions, as
  // the kernel dumps them, those xennet's encoder makes of that text? The texts that are not.
  const known = knownRules((JSON.parse(input) as [string, string[]][]).map(([, rules]) => rules));
  const reader = new NftReader();
  const differ: string[] = [];
  let compared = 0;
  for (const family of ['bridge', 'inet'] as const) {
    for (const r of (await reader.rules(family, 'xennet')) ?? []) {
      const text = r.comment === undefined ? undefined : known.get(r.comment);
      const anonymous: string[] = [];
      if (text === undefined) differ.push(`(a rule with tag ${r.comment ?? 'none'})`);
      else if (!r.exprs || !sameExpressions(ruleExpressionBytes(writtenRule(text)), r.exprs, anonymous)) differ.push(text);
      else {
        // Its own sets hold what the text's do: each element's key and whether it ends an interval.
        const sets = parseNftRule(writtenRule(text)).sets;
        const same = sets.length === anonymous.length && (await Promise.all(sets.map(async (s, i) => {
          const held = ((await reader.elements(family, 'xennet', anonymous[i]!)) ?? []).map((e) => `${e.key.toString('hex')}/${e.flags & 1}`).sort();
          return JSON.stringify(held) === JSON.stringify(s.elements.map((e) => `${Buffer.from(e.key).toString('hex')}/${e.end ? 1 : 0}`).sort());
        }))).every(Boolean);
        if (same) compared++;
        else differ.push(`${text} (its sets)`);
      }
    }
  }
  reader.close();
  process.stdout.write(`${JSON.stringify({ compared, differ })}\n`);
} else if (command === 'read') {
  const chains = JSON.parse(input) as [string, string[]][];
  const live = await readOwnTablesNative(knownRules(chains.map(([, rules]) => rules)));
  process.stdout.write(`${JSON.stringify(live ? [...live.chains] : null)}\n`);
} else {
  process.stderr.write('usage: nft-native-write-main write|check|apply|sets|exprs|read < input\n');
  process.exitCode = 2;
}
