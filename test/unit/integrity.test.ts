/** What lets a guest's packet skip its rules: rules above xennet's jumps, missing jumps, broken dispatch. */
import assert from 'node:assert/strict';
import { diffTable } from '../../src/firewall/diff.js';
import { bypassBefore, markBitsWritten, markWriters, pathProblems } from '../../src/firewall/integrity.js';
import { emptyTable, type RootJump, type TableName, type TableRules } from '../../src/firewall/model.js';
import { vifOfChain } from '../../src/firewall/names.js';
import { sameRules } from '../../src/firewall/normalize.js';
import { type LiveTable } from '../../src/firewall/live.js';
import { parseSave } from '../../src/firewall/xtables/save-parse.js';
import { codecOf, parseLive } from '../../src/firewall/drivers.js';

const kindOf = (t: TableName, c: string): { guard: boolean; elements: boolean } => codecOf(t).chainKind(c);

const root: RootJump = { chain: 'FORWARD', rule: '-o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD' };

function forward(rules: string[], extra = '', policy = 'ACCEPT'): LiveTable {
  return parseSave(`*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ${policy} [0:0]\n:XN-FORWARD - [0:0]\n${extra}${rules.map((r) => `-A FORWARD ${r}\n`).join('')}-A XN-FORWARD -j ACCEPT\nCOMMIT\n`, 'ipv4');
}

const desired = (): TableRules => {
  const t = emptyTable();
  t.chains.set('XN-FORWARD', ['-j ACCEPT']);
  t.roots.push(root);
  return t;
};

describe('firewall path integrity', () => {
  it('a rule above the jump that accepts the bridge\'s traffic is a bypass; one that cannot match is not', () => {
    const at = (rules: string[], extra = '', policy = 'ACCEPT') => {
      const live = forward([...rules, root.rule], extra, policy);
      return bypassBefore(live, 'ipv4', root, rules.length, ['vif1.0'])?.position;
    };
    assert.equal(at(['-j ACCEPT']), 1);
    assert.equal(at(['-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT']), 1, 'established traffic would skip the guests\' rules');
    assert.equal(at(['-o docker0 -j ACCEPT', '-i docker0 ! -o docker0 -j ACCEPT']), undefined, 'another bridge');
    assert.equal(at(['! -o xenbr0 -j ACCEPT']), undefined, 'negated: not this bridge');
    assert.equal(at(['-o xen+ -j ACCEPT']), 1, 'a wildcard that covers it');
    assert.equal(at(['-j DROP', '-j LOG']), undefined, 'a drop is stricter, a log goes on');
    assert.equal(at(['-j DOCKER-USER'], ':DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\n'), undefined, 'a chain that only returns');
    assert.equal(at(['-j DOCKER-FORWARD'], ':DOCKER-FORWARD - [0:0]\n-A DOCKER-FORWARD -o docker0 -j ACCEPT\n'), undefined, 'a chain whose accept is for another interface');
    assert.equal(at(['-j OTHER'], ':OTHER - [0:0]\n-A OTHER -p tcp -j ACCEPT\n'), 1, 'a chain that may accept');
    assert.equal(at(['-p tcp -g OTHER'], ':OTHER - [0:0]\n-A OTHER -j LOG\n'), 1, 'a goto ends the chain: the ACCEPT policy decides');
    assert.equal(at(['-p tcp -g OTHER'], ':OTHER - [0:0]\n-A OTHER -j LOG\n', 'DROP'), undefined, 'with a DROP policy it does not');
    assert.equal(at(['-j RETURN']), 1, 'RETURN in a built-in chain: the ACCEPT policy decides');
    assert.equal(at(['-j NFQUEUE --queue-num 0 --queue-bypass']), 1, 'a queue without a listener accepts');
    assert.equal(at(['-j SOMETHING-NEW']), 1, 'an unknown target is assumed to let packets through');
    assert.equal(at(['-j MARK --set-xmark 0x1/0xffffffff', '-j CT --notrack', '-j TCPMSS --clamp-mss-to-pmtu']), undefined, 'targets that do not end the walk');
  });

  it('finds the rules that may rewrite the mark bits isolation reads', () => {
    const bits = 0x300000;
    assert.equal(markBitsWritten('-j MARK --set-xmark 0x1/0xffffffff', false) & bits, bits, '--set-mark 0x1 clears them');
    assert.equal(markBitsWritten('-j MARK --set-xmark 0x1/0xff', false) & bits, 0, 'a mask without them');
    assert.equal(markBitsWritten('-j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff', false) & bits, bits);
    assert.equal(markBitsWritten('-j CONNMARK --set-xmark 0x1/0xffffffff', false), 0, 'the conntrack mark only');
    assert.equal(markBitsWritten('-j mark --mark-set 0x1 --mark-target CONTINUE', true) & bits, bits);
    assert.equal(markBitsWritten('-j mark --mark-or 0x1 --mark-target CONTINUE', true) & bits, 0);
    assert.equal(markBitsWritten('-j ACCEPT', false), 0);
    const mangle = parseSave('*mangle\n:PREROUTING ACCEPT [0:0]\n:MINE - [0:0]\n-A PREROUTING -p tcp -j MINE\n-A MINE -j MARK --set-xmark 0x1/0xffffffff\nCOMMIT\n', 'mangle');
    assert.deepEqual(markWriters(mangle, 'PREROUTING', bits, false), ['MINE rule 1 (-j MARK --set-xmark 0x1/0xffffffff)'], 'through the chains it jumps to');
  });

  it('ebtables: a mark target accepts unless told to continue', () => {
    const ebRoot: RootJump = { chain: 'PREROUTING', rule: '-j XN-FROM' };
    const live = (r: string): LiveTable => parseSave(`*nat\n:PREROUTING ACCEPT\n:XN-FROM RETURN\n-A PREROUTING ${r}\n-A PREROUTING -j XN-FROM\nCOMMIT\n`, 'ebnat');
    assert.equal(bypassBefore(live('-j mark --set-mark 0x1'), 'ebnat', ebRoot, 1, ['vif1.0'])?.position, 1);
    assert.equal(bypassBefore(live('-j mark --set-mark 0x1 --mark-target CONTINUE'), 'ebnat', ebRoot, 1, ['vif1.0']), undefined);
    assert.equal(bypassBefore(live('-i eth1 -j ACCEPT'), 'ebnat', ebRoot, 1, ['vif1.0']), undefined, 'not a guest port');
    assert.equal(bypassBefore(live('-i vif+ -j ACCEPT'), 'ebnat', ebRoot, 1, ['vif1.0'])?.position, 1);
  });

  it('plan moves a shadowed jump back to the top, and status names it in one line', () => {
    const live = forward(['-j ACCEPT', root.rule]);
    const plan = diffTable(live, desired(), 'ipv4');
    assert.deepEqual(plan.removeRoots, [root]);
    assert.deepEqual(plan.addRoots, [root]);
    const all = { ipv4: live, ipv6: parseSave('', 'ipv6'), ipv4raw: parseSave('', 'ipv4raw'), ipv6raw: parseSave('', 'ipv6raw'), eb: parseSave('', 'eb'), ebnat: parseSave('', 'ebnat'), nftables: parseLive('', 'nftables') } as Record<TableName, LiveTable>;
    const want = { ipv4: desired(), ipv6: emptyTable(), ipv4raw: emptyTable(), ipv6raw: emptyTable(), eb: emptyTable(), ebnat: emptyTable(), nftables: emptyTable() };
    assert.deepEqual(pathProblems(all, want, sameRules, vifOfChain, kindOf), ["iptables FORWARD rule 1 (-j ACCEPT) comes before xennet's jump for bridge xenbr0 and can accept the guests' traffic: it skips their rules"]);
    const flushed = forward([]);
    const p2 = pathProblems({ ...all, ipv4: flushed }, want, sameRules, vifOfChain, kindOf);
    assert.deepEqual(p2, ["iptables FORWARD has no jump to XN-FORWARD for bridge xenbr0: the guests' traffic there skips every rule of theirs (the chain's policy is ACCEPT)"]);
    const broken = parseSave('*filter\n:FORWARD ACCEPT [0:0]\n:XN-FORWARD - [0:0]\n-A FORWARD -o xenbr0 -m physdev --physdev-is-bridged -j XN-FORWARD\nCOMMIT\n', 'ipv4');
    assert.deepEqual(pathProblems({ ...all, ipv4: broken }, want, sameRules, vifOfChain, kindOf), ['iptables chain XN-FORWARD differs from what xennet installs: the dispatch to the guests\' rules is broken']);
  });
});
