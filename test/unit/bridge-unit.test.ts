import assert from 'node:assert/strict';
import { bridgeUnitName, bridgeUnitText } from '../../src/bridge/unit.js';

/** The unit as section -> key -> values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      current = new Map();
      sections.set(sec[1]!, current);
      continue;
    }
    assert.ok(current, `a setting outside a section: ${line}`);
    const eq = line.indexOf('=');
    assert.ok(eq > 0, `not a setting: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

const words = (v: string[] | undefined): string[] => (v ?? []).flatMap((x) => x.split(/\s+/));

describe('xennet-bridge.service', () => {
  const text = bridgeUnitText(['/usr/bin/node', '/usr/lib/node_modules/xennet/dist/src/cli/main.js']);
  const unit = parseUnit(text);
  const get = (section: string, key: string): string[] | undefined => unit.get(section)?.get(key);

  it('is named xennet-bridge.service and has exactly the three sections', () => {
    assert.equal(bridgeUnitName, 'xennet-bridge.service');
    assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install']);
  });

  it('is a oneshot that stays active: bridge start at boot, bridge stop at shutdown', () => {
    assert.deepEqual(get('Service', 'Type'), ['oneshot']);
    assert.deepEqual(get('Service', 'RemainAfterExit'), ['yes']);
    assert.deepEqual(get('Service', 'ExecStart'), ['/usr/bin/node /usr/lib/node_modules/xennet/dist/src/cli/main.js bridge start']);
    assert.deepEqual(get('Service', 'ExecStop'), ['/usr/bin/node /usr/lib/node_modules/xennet/dist/src/cli/main.js bridge stop']);
  });

  it('runs after ifupdown configured the NIC and before the network is online and Xen starts guests', () => {
    const after = words(get('Unit', 'After'));
    for (const u of ['networking.service', 'ifupdown-wait-online.service', 'network.target']) assert.ok(after.includes(u), `After= ${u}`);
    const before = words(get('Unit', 'Before'));
    for (const u of ['network-online.target', 'xen.service', 'xendomains.service', 'xenstored.service']) assert.ok(before.includes(u), `Before= ${u}`);
    assert.deepEqual(words(get('Unit', 'Wants')), ['network-online.target']);
    assert.deepEqual(after.filter((u) => before.includes(u)), [], 'no unit both before and after');
  });

  it('documents itself and is enabled for multi-user.target', () => {
    assert.deepEqual(get('Unit', 'Documentation'), ['man:xennet(8)']);
    assert.deepEqual(get('Install', 'WantedBy'), ['multi-user.target']);
    assert.ok(text.endsWith('\n'));
  });

  it('quotes a command word with a space and escapes % and $ for systemd', () => {
    const t = parseUnit(bridgeUnitText(['/opt/my node/bin/xennet', '--x=50%$HOME']));
    assert.deepEqual(t.get('Service')?.get('ExecStart'), ['"/opt/my node/bin/xennet" --x=50%%$$HOME bridge start']);
    assert.throws(() => bridgeUnitText([]));
    assert.throws(() => bridgeUnitText(['/bin/x\nExecStart=/bin/evil']));
  });
});
