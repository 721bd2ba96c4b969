import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findManagerClaims, globMatch, keyfileMatch, networkdMatch, readManagerFiles, type ConfigFile, type ManagerFiles } from '../../src/bridge/managers.js';

const nic = { name: 'enp3s0', mac: '52:54:00:12:34:56' };
const file = (dir: string, name: string, text: string | null): ConfigFile => ({ dir, name, text });
const files = (networkd: ConfigFile[][], networkManager: ConfigFile[] = []): ManagerFiles => ({ networkd, networkManager });

describe('network manager detection', () => {
  describe('systemd-networkd [Match]', () => {
    const cases: [string, string, boolean][] = [
      ['Name= exact', '[Match]\nName=enp3s0\n[Network]\nDHCP=yes\n', true],
      ['Name= glob', '[Match]\nName=en*\n', true],
      ['Name= list, one matches', '[Match]\nName=eth0 enp?s0\n', true],
      ['Name= character class', '[Match]\nName=enp[0-9]s0\n', true],
      ['Name= other NIC', '[Match]\nName=eth0\n', false],
      ['Name= inverted list', '[Match]\nName=!en*\n', false],
      ['Name= inverted, NIC not in it', '[Match]\nName=!eth*\n', true],
      ['Name= reset by an empty assignment', '[Match]\nName=enp3s0\nName=\nName=eth1\n', false],
      ['Name= over two lines adds up', '[Match]\nName=eth1\nName=enp3s0\n', true],
      ['MACAddress= matches, any spelling', '[Match]\nMACAddress=52-54-00-12-34-56\n', true],
      ['MACAddress= upper case', '[Match]\nMACAddress=52:54:00:12:34:56 52:54:00:AA:BB:CC\n', true],
      ['PermanentMACAddress=', '[Match]\nPermanentMACAddress=5254.0012.3456\n', true],
      ['MACAddress= other', '[Match]\nMACAddress=52:54:00:aa:bb:cc\n', false],
      ['Name and MAC must both match', '[Match]\nName=enp3s0\nMACAddress=52:54:00:aa:bb:cc\n', false],
      ['empty [Match]: every link', '[Match]\n[Network]\nDHCP=yes\n', true],
      ['no [Match] at all: every link', '[Network]\nDHCP=yes\n', true],
      ['only other conditions (Type=wlan): not a claim', '[Match]\nType=wlan\nWLANInterfaceType=ad-hoc\n', false],
      ['Name= in another section does not count', '[Network]\nName=enp3s0\n[Match]\nName=eth9\n', false],
      ['comments are skipped', '# Name=enp3s0\n[Match]\n; Name=enp3s0\nName=eth9\n', false],
    ];
    for (const [what, text, expected] of cases) {
      it(what, () => assert.equal(networkdMatch(text, nic) !== undefined, expected));
    }
    it('says which setting matched', () => {
      assert.equal(networkdMatch('[Match]\nName=en*\n', nic), 'Name=en*');
    });
  });

  it('globMatch follows fnmatch for *, ? and [...]', () => {
    assert.ok(globMatch('e*0', 'enp3s0'));
    assert.ok(!globMatch('e?0', 'enp3s0'));
    assert.ok(globMatch('enp[!4]s0', 'enp3s0'));
    assert.ok(!globMatch('enp[!3]s0', 'enp3s0'));
    assert.ok(!globMatch('en.3s0', 'enp3s0'), 'a dot is literal');
    assert.ok(globMatch('*', 'enp3s0') && globMatch('**p*s*', 'enp3s0') && !globMatch('*x*', 'enp3s0'));
  });

  it('globMatch takes linear time on a hostile pattern (no backtracking)', () => {
    const t0 = performance.now();
    for (const n of [14, 20, 64, 4096]) assert.equal(globMatch('*?'.repeat(n) + 'Z', 'abcdefghijklmno'), false);
    assert.equal(globMatch('*'.repeat(100000) + 'o', 'abcdefghijklmno'), true);
    // Not a timing assertion of the CI machine's speed: the regex this replaced took minutes here.
    assert.ok(performance.now() - t0 < 10_000);
  });

  describe('NetworkManager keyfiles', () => {
    it('interface-name= claims the NIC', () => {
      assert.equal(keyfileMatch('[connection]\nid=Wired\ntype=ethernet\ninterface-name=enp3s0\n[ipv4]\nmethod=auto\n', nic), 'interface-name=enp3s0');
    });
    it('mac-address= under [ethernet] or [802-3-ethernet] claims the NIC', () => {
      assert.ok(keyfileMatch('[connection]\nid=x\n[ethernet]\nmac-address=52:54:00:12:34:56\n', nic));
      assert.ok(keyfileMatch('[connection]\nid=x\n[802-3-ethernet]\nmac-address=52:54:00:12:34:56\n', nic));
    });
    it('another NIC, or interface-name in the wrong section, is no claim', () => {
      assert.equal(keyfileMatch('[connection]\ninterface-name=eth1\n[ethernet]\nmac-address=52:54:00:aa:bb:cc\n', nic), undefined);
      assert.equal(keyfileMatch('[ipv4]\ninterface-name=enp3s0\n', nic), undefined);
    });
    it('an ethernet profile bound to nothing claims any ethernet NIC; [match] interface-name globs', () => {
      assert.match(keyfileMatch('[connection]\nid=Wired connection 1\ntype=ethernet\n[ipv4]\nmethod=auto\n', nic) ?? '', /any ethernet NIC/);
      assert.equal(keyfileMatch('[connection]\nid=wifi\ntype=wifi\n', nic), undefined, 'a Wi-Fi profile does not');
      assert.match(keyfileMatch('[connection]\ntype=ethernet\n[match]\ninterface-name=en*;\n', nic) ?? '', /\[match\] interface-name=en\*/);
      assert.equal(keyfileMatch('[connection]\ntype=ethernet\n[match]\ninterface-name=en*;!enp3s0;\n', nic), undefined, 'excluded');
      assert.equal(keyfileMatch('[connection]\ntype=ethernet\n[match]\ninterface-name=wl*\n', nic), undefined);
    });
  });

  describe('findManagerClaims', () => {
    it('a file in /etc hides the same name in /lib (networkd precedence); a masked one claims nothing', () => {
      const lib = [file('/lib/systemd/network', '10-lan.network', '[Match]\nName=enp3s0\n')];
      assert.equal(findManagerClaims(files([[], [], lib]), nic).length, 1);
      assert.deepEqual(findManagerClaims(files([[file('/etc/systemd/network', '10-lan.network', '[Match]\nName=eth9\n')], [], lib]), nic), []);
      assert.deepEqual(findManagerClaims(files([[file('/etc/systemd/network', '10-lan.network', null)], [], lib]), nic), [], 'masked');
    });
    it('names the manager, the file and the setting', () => {
      const claims = findManagerClaims(
        files([[file('/etc/systemd/network', '10-enp3s0.network', '[Match]\nName=enp3s0\n')]], [file('/etc/NetworkManager/system-connections', 'lan.nmconnection', '[connection]\ninterface-name=enp3s0\n')]),
        nic,
      );
      assert.deepEqual(claims, [
        { manager: 'systemd-networkd', file: '/etc/systemd/network/10-enp3s0.network', match: 'Name=enp3s0' },
        { manager: 'NetworkManager', file: '/etc/NetworkManager/system-connections/lan.nmconnection', match: 'interface-name=enp3s0' },
      ]);
    });
  });

  describe('readManagerFiles', () => {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'xnt-managers-'))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('reads *.network and *.nmconnection only, treats /dev/null links and empty files as masks, skips missing directories', () => {
      const etc = join(dir, 'etc');
      const lib = join(dir, 'lib');
      const nm = join(dir, 'nm');
      for (const d of [etc, lib, nm]) mkdirSync(d);
      writeFileSync(join(lib, '20-lan.network'), '[Match]\nName=enp3s0\n');
      writeFileSync(join(lib, '30-lan.network'), '[Match]\nName=enp3s0\n');
      writeFileSync(join(lib, '99-default.link'), '[Match]\nOriginalName=*\n');
      writeFileSync(join(lib, 'lan.network.example'), '[Match]\nName=*\n');
      symlinkSync('/dev/null', join(etc, '20-lan.network'));
      writeFileSync(join(etc, '30-lan.network'), '');
      writeFileSync(join(nm, 'lan.nmconnection'), '[connection]\ninterface-name=enp3s0\n');
      writeFileSync(join(nm, 'lan.nmconnection.bak'), '[connection]\ninterface-name=enp3s0\n');
      const read = readManagerFiles({ networkd: [etc, join(dir, 'missing'), lib], networkManager: [nm] });
      assert.deepEqual(read.networkd.map((d) => d.map((f) => `${f.name}:${f.text === null ? 'masked' : 'text'}`)), [['20-lan.network:masked', '30-lan.network:masked'], [], ['20-lan.network:text', '30-lan.network:text']]);
      assert.deepEqual(read.networkManager.map((f) => f.name), ['lan.nmconnection']);
      assert.deepEqual(findManagerClaims(read, nic).map((c) => c.manager), ['NetworkManager']);
    });
  });
});
