/** The operator surface on the simulated host: `xennet status` and `xennet demo`. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimHost } from '../../src/sim/host.js';
import { run } from '../../src/sys/exec.js';
import { sweepLeftovers } from './lib/netns.js';
import { cliPath } from './lib/xennet.js';

interface StatusJson {
  ok: boolean;
  problems: string[];
  vifs: { name: string; domain: string | null; firewall: string; hotplugStatus: string | null; drops: { packets: number } }[];
  bridges: { name: string; uplinks: string[]; nfCallIptables: boolean }[];
  xenstore: string | null;
  backend: { iptables: string } | null;
}

describe('operator surface (netns)', function () {
  this.timeout(180_000);
  before(async () => {
    await sweepLeftovers();
  });

  describe('xennet status', () => {
    let host: SimHost;
    before(async () => {
      host = await SimHost.create();
      await host.takeover();
      for (const d of [1, 2]) {
        const g = await host.addGuest({ domid: d, name: `g${d}`, mac: `00:16:3e:00:00:0${d}`, addresses: [`192.168.0.10${d}/24`], xenstoreIp: `192.168.0.10${d}` });
        assert.equal((await host.runVifScript('vif-xennet', g, 'online')).code, 0);
      }
    });
    after(async () => host?.destroy());
    const status = async (env: NodeJS.ProcessEnv = {}): Promise<{ code: number; s: StatusJson; text: string }> => {
      const r = await host.xennet(['status', '--json'], env);
      const t = await host.xennet(['status'], env);
      return { code: r.code, s: JSON.parse(r.stdout) as StatusJson, text: t.stdout };
    };

    it('reports a healthy host: bridge, uplink, netfilter calls, vifs in sync, exit 0', async () => {
      const { code, s, text } = await status();
      assert.equal(code, 0, JSON.stringify(s.problems));
      assert.equal(s.ok, true);
      assert.equal(s.backend?.iptables, 'iptables-nft');
      assert.deepEqual(s.bridges.map((b) => [b.name, b.nfCallIptables, b.uplinks.includes('peth0')]), [['xenbr0', true, true]]);
      assert.deepEqual(s.vifs.map((v) => [v.name, v.domain, v.firewall, v.hotplugStatus]), [['vif1.0', 'g1', 'in-sync', 'connected'], ['vif2.0', 'g2', 'in-sync', 'connected']]);
      assert.match(text, /guest networking OK/);
      assert.match(text, /vif1\.0 +g1 +defaults +00:16:3e:00:00:01 +192\.168\.0\.101\/32/);
    });

    it('counts drops, and reports a drifted firewall and a vif without hotplug-status (exit 1)', async () => {
      const g2 = host.guests.get(2)!;
      await g2.ns.ip('addr', 'add', '192.168.0.250/32', 'dev', 'eth0');
      await g2.ns.ping('192.168.0.1', { waitSeconds: 1, source: '192.168.0.250' });
      await host.dom0.exec('iptables', ['-F', 'XN-S-vif1.0']);
      host.xenstored.write(`${g2.backendPath}/hotplug-status`, '');
      const { code, s } = await status();
      assert.equal(code, 1);
      assert.equal(s.vifs.find((v) => v.name === 'vif1.0')?.firewall, 'drifted');
      assert.ok((s.vifs.find((v) => v.name === 'vif2.0')?.drops.packets ?? 0) > 0, 'the spoofed ping was counted');
      assert.ok(s.problems.some((p) => /vif1\.0 \(g1\): firewall drifted/.test(p)));
      assert.ok(s.problems.some((p) => /vif2\.0: hotplug-status is "", not "connected"/.test(p)));
      host.xenstored.write(`${g2.backendPath}/hotplug-status`, 'connected');
      assert.equal((await host.xennet(['apply'])).code, 0);
      assert.equal((await status()).code, 0);
    });

    it('works without xenstore (names unknown) and without a rule file', async () => {
      const { s } = await status({ XENSTORED_PATH: join(tmpdir(), 'no-such-xenstored.sock'), XENNET_RULES: join(tmpdir(), 'no-such-rules.yaml') });
      assert.equal(s.xenstore, null);
      assert.deepEqual(s.vifs.map((v) => v.domain), [null, null]);
    });
  });

  describe('xennet demo', () => {
    const cli = (args: string[]) => run('node', [cliPath, ...args], { timeoutMs: 170_000 });
    const demoNs = (): string[] => (existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith('xnd-')) : []);

    it('runs end to end, every check passes, and leaves nothing behind', async () => {
      const r = await cli(['demo']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /All checks passed/);
      assert.match(r.stdout, /mallory pings the gateway with web01's address \(IP spoofing\): blocked/);
      assert.deepEqual(demoNs(), []);
    });

    it('--keep leaves the host up; demo down removes it', async () => {
      const r = await cli(['demo', '--keep']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /ip netns exec xnd-\d+-\w+-dom0 bash/);
      assert.equal(demoNs().length, 5);
      const down = await cli(['demo', 'down']);
      assert.equal(down.code, 0);
      assert.match(down.stdout, /removed the demo host/);
      assert.deepEqual(demoNs(), []);
    });
  });
});
