/**
 * `xennet status` on a terminal: golden screens at 80, 120 and 200 columns (IPv4 and IPv6
 * guests, a long domain name, many addresses), and no line wider than the terminal at any width.
 * XNT_UPDATE_GOLDEN=1 rewrites the golden files (then read them before committing).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { colorWanted, terminalWidth } from '../../src/cli/terminal.js';
import type { HostStatus } from '../../src/status/host-status.js';
import { vifStatus } from './lib/vif-status.js';
import { renderHostStatus } from '../../src/status/render.js';
import { ESCAPE, hardWrap, renderTable } from '../../src/status/table.js';

const golden = (name: string): string => fileURLToPath(new URL(`../../../test/unit/golden/${name}`, import.meta.url));

const vif = vifStatus;

const host: HostStatus = {
  ok: false,
  problems: ['vif9.0 (db-replica-frankfurt-02): firewall drifted (another program changed its chains; the daemon repairs it, or run `xennet apply`)'],
  notes: [],
  backend: null,
  bridgeNetfilter: { 'net.bridge.bridge-nf-call-iptables': '1', 'net.bridge.bridge-nf-call-ip6tables': '1' },
  rules: { file: '/etc/xen/xennet.yaml', state: 'valid' },
  xenstore: 'xenstored (socket /run/xenstored/socket)',
  bridges: [{ name: 'xenbr0', up: true, mtu: 1500, ports: ['peth0', 'vif0.0', 'vif5.0', 'vif7.0', 'vif9.0', 'vif12.1'], uplinks: ['peth0'], nfCallIptables: true, nfCallIp6tables: true }],
  vifs: [
    vif('vif5.0', { drops: { packets: 23, bytes: 1380, reasons: { spoof4: { packets: 20, bytes: 1200 }, in: { packets: 3, bytes: 180 } } } }),
    vif('vif7.0', { domain: 'mail', domid: 7, mac: '00:16:3e:00:00:07', policy: 'mail', addresses: ['192.168.0.107', '2001:db8:1234:5678:9abc:def0:1234:5678'] }),
    vif('vif9.0', {
      domain: 'db-replica-frankfurt-02',
      domid: 9,
      mac: '00:16:3e:00:00:09',
      policy: 'databases',
      policySource: 'incoming',
      addresses: ['10.1.2.3', '10.1.2.4', '10.1.2.5', 'fd00::9', '2001:db8::9'],
      firewall: 'drifted',
      drops: { packets: 1234567, bytes: 0, reasons: { out: { packets: 1234567, bytes: 0 } } },
    }),
    vif('vif12.1', { domain: 'dhcp-guest', domid: 12, mac: '00:16:3e:00:00:0c', policy: null, addresses: [], addressSource: 'learned', learned: [{ address: '192.168.0.150', how: 'dhcp', expiresInSeconds: 3000 }, { address: '2001:db8::150', how: 'dad', expiresInSeconds: null }] }),
  ],
  staleChains: [],
  failedBackends: [],
  pendingBackends: [],
  installed: true,
};

describe('status on a terminal', function () {
  for (const width of [80, 120, 200]) {
    it(`fits ${width} columns (golden)`, function () {
      const text = renderHostStatus(host, false, width);
      const file = golden(`status-${width}.txt`);
      if (process.env['XNT_UPDATE_GOLDEN'] === '1' || !existsSync(file)) writeFileSync(file, `${text}\n`);
      assert.equal(text, readFileSync(file, 'utf8').replace(/\n$/, ''));
      // The tables: no line wider than the terminal (the prose above and below may wrap in it).
      const tables = text.split('\n').filter((l) => !/^ {2}(firewall backend|br_netfilter|daemon:)|^xennet:|^problems:|^ {2}vif\d/.test(l));
      for (const l of tables) assert.ok(l.length <= width, `${l.length} > ${width}: ${l}`);
    });
  }

  it('no table line is wider than the terminal at any width from 20 to 250, and every address is shown whole', function () {
    for (let width = 20; width <= 250; width++) {
      const text = renderHostStatus(host, false, width);
      const start = text.indexOf('BRIDGE');
      const end = text.indexOf('\nproblems:');
      for (const l of text.slice(start, end).split('\n')) assert.ok(l.length <= width, `width ${width}: ${l.length}: ${l}`);
      if (width >= 60) for (const a of host.vifs.flatMap((v) => [...v.addresses, ...v.learned.map((b) => b.address)])) assert.ok(text.includes(a), `width ${width}: ${a} shown whole`);
    }
  });

  it('a row keeps its place: an IPv6 address makes its own line longer, never shifts the next row', function () {
    const lines = renderHostStatus(host, false, 200).split('\n');
    const header = lines.findIndex((l) => l.startsWith('VIF'));
    const col = lines[header]!.indexOf('FIREWALL');
    const rows = lines.slice(header + 1, lines.indexOf('', header)).filter((x) => /^vif\d/.test(x));
    assert.equal(rows.length, host.vifs.length);
    for (const l of rows) assert.match(l.slice(col), /^(in-sync|drifted|missing|not-managed)\b/, l);
  });

  it('colour: the firewall state painted, escape codes not counted as width; none without a terminal, with NO_COLOR or TERM=dumb', function () {
    const painted = renderHostStatus(host, true, 80);
    assert.ok(painted.includes('\x1b[32min-sync'), 'in-sync in green');
    for (const l of painted.split('\n').filter((x) => /^vif\d/.test(x))) assert.ok(l.replace(ESCAPE, '').length <= 80, l);
    assert.equal(colorWanted({}, true), true);
    assert.equal(colorWanted({}, false), false);
    assert.equal(colorWanted({ NO_COLOR: '1' }, true), false);
    assert.equal(colorWanted({ NO_COLOR: '' }, true), true, 'an empty NO_COLOR is unset (no-color.org)');
    assert.equal(colorWanted({ TERM: 'dumb' }, true), false);
  });

  it('the width: COLUMNS, else the terminal\'s, else 80; nonsense in COLUMNS is ignored', function () {
    assert.equal(terminalWidth({ COLUMNS: '132' }, 100), 132);
    assert.equal(terminalWidth({}, 100), 100);
    assert.equal(terminalWidth({}, undefined), 80);
    assert.equal(terminalWidth({ COLUMNS: 'wide' }, undefined), 80);
    assert.equal(terminalWidth({ COLUMNS: '-5' }, 90), 90);
  });

  it('a table gives way in order: stacked items, columns under the row, elided names (with ~), then characters', function () {
    const cols = [{ header: 'NAME', give: 'elide' as const }, { header: 'ITEMS', give: 'stack' as const }, { header: 'EXTRA', secondary: 1 }];
    const rows = [[{ items: ['a-very-long-name'] }, { items: ['one', 'two', 'three'] }, { items: ['x'] }]];
    assert.deepEqual(renderTable(cols, rows, 80), ['NAME              ITEMS          EXTRA', 'a-very-long-name  one two three  x']);
    assert.deepEqual(renderTable(cols, rows, 30), ['NAME              ITEMS  EXTRA', 'a-very-long-name  one    x', '                  two', '                  three']);
    assert.deepEqual(renderTable(cols, rows, 20), ['NAME           ITEMS', 'a-very-long-~  one', '               two', '               three', '  extra x']);
    assert.deepEqual(renderTable(cols, rows, 10), ['NAME    IT', '  EMS', 'a-ver~  on', '  e', '        tw', '  o', '        th', '  ree', '  extra x']);
    assert.deepEqual(hardWrap('abcdefghij', 4), ['abcd', '  ef', '  gh', '  ij']);
  });
});
