/** The operator surface on the simulated host: `xennet status` and `xennet demo`. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestRulesPresent, inboundDrops } from './lib/installed.js';
import { SimHost } from '../../src/sim/host.js';
import { run } from '../../src/sys/exec.js';
import { sweepLeftovers } from './lib/netns.js';
import { cliPath } from './lib/xennet.js';

interface StatusJson {
  ok: boolean;
  problems: string[];
  notes: string[];
  vifs: { name: string; domain: string | null; firewall: string; hotplugStatus: string | null; drops: { packets: number } }[];
  bridges: { name: string; uplinks: string[]; nfCallIptables: boolean }[];
  xenstore: string | null;
  backend: { iptables: string; kind: string } | null;
}

describe('operator surface (netns)', function () {
  this.timeout(180_000);
  before(async () => {
    await sweepLeftovers();
  });

  describe('xennet status', () => {
    let host: SimHost;
    before(async () => {
      host = await SimHost.create({ autostart: false });
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
      assert.equal(s.backend?.kind, 'nftables', 'the default where nf_tables works, with nothing installed before');
      assert.deepEqual(s.bridges.map((b) => [b.name, b.nfCallIptables, b.uplinks.includes('peth0')]), [['xenbr0', true, true]]);
      assert.deepEqual(s.vifs.map((v) => [v.name, v.domain, v.firewall, v.hotplugStatus]), [['vif1.0', 'g1', 'in-sync', 'connected'], ['vif2.0', 'g2', 'in-sync', 'connected']]);
      assert.match(text, /guest networking OK/);
      // 80 columns (no terminal): the MAC is on the line under the guest's.
      assert.match(text, /^vif1\.0 +g1 +defaults +192\.168\.0\.101\/32 .*in-sync/m);
      assert.match(text, /^vif1\.0 .*\n {2}mac 00:16:3e:00:00:01 /m);
      assert.match((await host.xennet(['status'], { COLUMNS: '200' })).stdout, /^vif1\.0 +g1 +defaults +00:16:3e:00:00:01 +192\.168\.0\.101\/32 /m, 'wide enough: all in one row');
    });

    it('counts drops, and reports a drifted firewall and a vif without hotplug-status (exit 1)', async () => {
      const g2 = host.guests.get(2)!;
      await g2.ns.ip('addr', 'add', '192.168.0.250/32', 'dev', 'eth0');
      await g2.ns.ping('192.168.0.1', { waitSeconds: 1, source: '192.168.0.250' });
      assert.equal((await host.dom0.exec('nft', ['flush', 'chain', 'bridge', 'xennet', 'XN-S-vif1.0'])).code, 0);
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

    it('names a guest whose hook failed and left nothing on a bridge (exit 1), until it is attached', async () => {
      const g = await host.addGuest({ domid: 3, name: 'g3', mac: '00:16:3e:00:00:03', addresses: ['192.168.0.103/24'], xenstoreIp: '192.168.0.103', bridge: 'xenbr5' });
      try {
        assert.equal((await host.runVifScript('vif-xennet', g, 'online')).code, 1, 'no such bridge');
        const { code, s, text } = await status();
        assert.equal(code, 1);
        assert.ok(!s.vifs.some((v) => v.name === 'vif3.0'), 'not one of the vifs: it is on no bridge');
        const p = s.problems.find((x) => x.startsWith('backend 3/0 (g3): its hook failed'));
        assert.ok(p, JSON.stringify(s.problems));
        assert.match(p, /hotplug-error: "Could not find bridge device xenbr5/);
        assert.match(p, /its interface is on no bridge: the guest has no network there/);
        assert.match(text, /backend 3\/0 \(g3\): its hook failed/);
        // A hook that stopped after its rename (killed): the link has the vifname and the mark, on no bridge.
        host.xenstored.write(`${g.backendPath}/hotplug-status`, '');
        await host.dom0.ip('link', 'set', g.vif, 'name', 'web3');
        await host.dom0.ip('link', 'set', 'web3', 'alias', 'xennet:vif3.0');
        const stopped = await status();
        assert.equal(stopped.code, 1);
        assert.ok(stopped.s.problems.some((x) => x.startsWith('backend 3/0 (g3): its hook has not finished (hotplug-status ""): its interface web3 is on no bridge; the guest has no network there')), JSON.stringify(stopped.s.problems));
        await host.dom0.ip('link', 'set', 'web3', 'name', g.vif);
        host.xenstored.write(`${g.backendPath}/bridge`, 'xenbr0');
        assert.equal((await host.runVifScript('vif-xennet', g, 'online')).code, 0);
        const after = await status();
        assert.equal(after.code, 0, JSON.stringify(after.s.problems));
      } finally {
        assert.equal((await host.runVifScript('vif-xennet', g, 'offline')).code, 0);
        host.removeDevice(g);
        host.xenstored.rm('/local/domain/3');
        await host.dom0.ip('link', 'del', g.vif);
      }
    });

    it('a guest taken off its bridge after its hook finished (by hand, or `bridge stop --force`) is a problem naming how to attach it again (exit 1), until it is attached', async () => {
      const g2 = host.guests.get(2)!;
      host.xenstored.write(`${g2.backendPath}/state`, '2'); // its frontend not connected yet (InitWait): not leaving
      await host.dom0.ip('link', 'set', 'vif2.0', 'nomaster');
      try {
        const { code, s, text } = await status();
        assert.equal(code, 1);
        assert.ok(s.problems.includes('vif2.0 (g2): its hook finished (hotplug-status "connected"), but its interface is on no bridge, not on xenbr0: the guest has no network; `ip link set vif2.0 master xenbr0` attaches it again (its rules are in place)'), s.problems.join('\n'));
        assert.match(text, /vif2\.0 \(g2\): its hook finished/);
        assert.equal(await g2.ns.ping('192.168.0.1', { waitSeconds: 1 }), false, 'and the guest has indeed no network');
        // Leaving (libxl moves the backend to closing, then the offline detaches it): no advice to attach it.
        host.xenstored.write(`${g2.backendPath}/state`, '5');
        assert.ok(!(await status()).s.problems.some((p) => p.includes('is on no bridge')), 'a detach under way');
        host.xenstored.write(`${g2.backendPath}/state`, '4');
        host.xenstored.write(`${g2.backendPath}/online`, '0');
        assert.ok(!(await status()).s.problems.some((p) => p.includes('is on no bridge')), 'being removed');
        host.xenstored.write(`${g2.backendPath}/online`, '1');
      } finally {
        await host.dom0.ip('link', 'set', 'vif2.0', 'master', 'xenbr0');
      }
      const after = await status();
      assert.equal(after.code, 0, after.s.problems.join('\n'));
      // Tried again until it answers: the failed ping above may have left the guest's neighbour
      // entry for the gateway resolving with its last probe sent while detached, which drops what
      // is queued.
      assert.equal(await g2.ns.ping('192.168.0.1', { withinSeconds: 6 }), true);
    });

    it('a bridge set down, the NIC or dom0\'s port of the takeover set down or off the bridge, and a guest on another bridge than its backend names are problems naming how to put each back (exit 1), until they are', async () => {
      const g2 = host.guests.get(2)!;
      const only = async (what: string): Promise<string[]> => {
        const { code, s } = await status();
        assert.equal(code, 1, `${what}: ${s.problems.join('\n')}`);
        return s.problems;
      };
      const healthy = async (what: string): Promise<void> => {
        const { code, s } = await status();
        assert.equal(code, 0, `${what}: ${s.problems.join('\n')}`);
        // Tried again until it answers: a failed ping before may leave the neighbour entry's last probe spent.
        assert.equal(await g2.ns.ping('192.168.0.1', { withinSeconds: 6 }), true, `${what}: the guest reaches the LAN`);
      };
      await host.dom0.ip('link', 'set', 'xenbr0', 'down');
      try {
        assert.deepEqual(await only('bridge down'), ['bridge xenbr0 is down: its guest interfaces (vif1.0, vif2.0) have no network, nor has a guest started from now on; `ip link set xenbr0 up` brings it up']);
        assert.equal(await g2.ns.ping('192.168.0.1', { waitSeconds: 1 }), false, 'and the guest has indeed no network');
      } finally {
        await host.dom0.ip('link', 'set', 'xenbr0', 'up');
      }
      await healthy('bridge up again');
      // Each problem's advice, followed as it is written, mends it.
      const follow = async (problem: string): Promise<void> => {
        const advice = /`ip link set ([^`]+)`/.exec(problem)?.[1];
        assert.ok(advice, problem);
        await host.dom0.ip('link', 'set', ...advice.split(' '));
      };
      for (const [port, what, effect] of [
        ['peth0', 'the NIC xenbr0 took over', 'the guests on it and this host reach nothing beyond it'],
        ['vif0.0', "dom0's port of xenbr0", 'this host reaches neither the guests nor the network through it'],
      ] as const) {
        for (const [how, args, problem] of [
          ['down', ['down'], `${port} is down, ${what}: ${effect}; \`ip link set ${port} up\` brings it up`],
          ['off the bridge', ['nomaster'], `${port}, ${what}, is on no bridge: ${effect}; \`ip link set ${port} master xenbr0\` puts it back`],
          ['down and off the bridge', ['nomaster', 'down'], `${port}, ${what}, is on no bridge: ${effect}; \`ip link set ${port} master xenbr0 up\` puts it back`],
        ] as const) {
          await host.dom0.ip('link', 'set', port, ...args);
          let found: string[] = [];
          try {
            found = await only(`${port} ${how}`);
            assert.deepEqual(found, [problem]);
            if (port === 'peth0') assert.equal(await g2.ns.ping('192.168.0.1', { waitSeconds: 1 }), false, 'and the guest is indeed cut off the LAN');
          } finally {
            if (found.length === 1) await follow(found[0]!);
            else await host.dom0.ip('link', 'set', port, 'master', 'xenbr0', 'up');
          }
          await healthy(`${port} ${how}, mended as advised`);
        }
      }
      await host.dom0.ip('link', 'add', 'xnt-brx', 'type', 'bridge');
      try {
        await host.dom0.ip('link', 'set', 'xnt-brx', 'up');
        await host.dom0.ip('link', 'set', 'vif2.0', 'master', 'xnt-brx');
        const problems = await only('moved');
        const moved = problems.find((p) => p.startsWith('vif2.0 (g2): '));
        assert.equal(moved, 'vif2.0 (g2): its interface is on bridge xnt-brx, but its backend names xenbr0 (bridge= in its vif configuration): the guest is on another network than its configuration gives it; `ip link set vif2.0 master xenbr0` moves it there (if xnt-brx is the right one, fix bridge=: the guest joins xenbr0 at its next start)');
        assert.equal(await g2.ns.ping('192.168.0.1', { waitSeconds: 1 }), false, 'and the guest is indeed cut off the LAN');
        await follow(moved);
      } finally {
        await host.dom0.ip('link', 'del', 'xnt-brx');
      }
      await healthy('moved back as advised');
      // A bridge node that is no interface name: the guest is where it is, and its next start fails.
      host.xenstored.write(`${g2.backendPath}/bridge`, 'xenbr0 ');
      try {
        assert.deepEqual(await only('bridge node invalid'), ['vif2.0 (g2): its backend\'s bridge node is no interface name ("xenbr0 "): its hook fails at the guest\'s next start; fix bridge= in its vif configuration']);
      } finally {
        host.xenstored.write(`${g2.backendPath}/bridge`, 'xenbr0');
      }
      // A bridge whose name xennet does not take (it would be written into rules): the guest stays
      // one, its rules kept, never stale; the name is printed escaped.
      await host.dom0.ip('link', 'add', 'xnt-b@d\u0007', 'type', 'bridge');
      try {
        await host.dom0.ip('link', 'set', 'xnt-b@d\u0007', 'up');
        await host.dom0.ip('link', 'set', 'vif2.0', 'master', 'xnt-b@d\u0007');
        const { code, s, text } = await status();
        assert.equal(code, 1);
        assert.deepEqual(s.vifs.filter((v) => v.name === 'vif2.0').map((v) => [v.firewall, (v as unknown as { bridge: string }).bridge]), [['in-sync', 'xnt-b@d\\u0007']]);
        assert.ok(!s.problems.some((p) => p.startsWith('stale chains')), s.problems.join('\n'));
        assert.ok(s.problems.some((p) => p.startsWith('vif2.0 (g2): its interface is on bridge xnt-b@d\\u0007, but its backend names xenbr0')), s.problems.join('\n'));
        assert.ok(s.notes.includes('vif2.0 is a port of bridge "xnt-b@d\\u0007", whose name xennet does not take (1-15 of A-Z a-z 0-9 _ . -): its rules, made for xenbr0, are kept as they are; move it to a bridge with such a name'), s.notes.join('\n'));
        assert.ok(!text.includes('\u0007'), 'no raw control character on the terminal');
        assert.equal((await host.xennet(['apply'])).code, 0);
        assert.ok(await guestRulesPresent(host.dom0, 'vif2.0'), 'apply kept its rules');
        await host.dom0.ip('link', 'set', 'vif2.0', 'master', 'xenbr0');
      } finally {
        await host.dom0.ip('link', 'del', 'xnt-b@d\u0007');
      }
      await healthy('back on xenbr0');
      // Any other port of a bridge with guests that is down is a note: a port kept down on purpose
      // (libvirt's dummy) is no fault.
      await host.dom0.ip('link', 'add', 'xnt-dum', 'type', 'veth', 'peer', 'name', 'xnt-dump');
      try {
        await host.dom0.ip('link', 'set', 'xnt-dum', 'master', 'xenbr0');
        const { code, s } = await status();
        assert.equal(code, 0, s.problems.join('\n'));
        assert.ok(s.notes.includes('xnt-dum, a port of xenbr0 with guests on it, is down: whatever the guests reach through it is cut off (`ip link set xnt-dum up` brings it up)'), s.notes.join('\n'));
      } finally {
        await host.dom0.ip('link', 'del', 'xnt-dum');
      }
    });

    it('with the firewall off (nothing records a guest), one taken off its bridge while its backend is connected is a problem too; not once libxl moves the backend on (closing)', async () => {
      const g = await host.addGuest({ domid: 6, name: 'g6', mac: '00:16:3e:00:00:06', addresses: ['192.168.0.106/24'], xenstoreIp: '192.168.0.106' });
      try {
        assert.equal((await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env: { XENNET_FIREWALL: 'off' } })).code, 0);
        host.xenstored.write(`${g.backendPath}/state`, '4'); // connected, as netback and libxl leave it
        const offBridge = (p: string): boolean => p.includes('is on no bridge');
        assert.ok(!(await status()).s.problems.some(offBridge), 'attached (its rules missing is another problem)');
        await host.dom0.ip('link', 'set', 'vif6.0', 'nomaster');
        const { code, s } = await status();
        assert.equal(code, 1);
        assert.ok(s.problems.includes('backend 6/0 (g6): its hook finished (hotplug-status "connected"), but its interface vif6.0 is on no bridge: the guest has no network there; `ip link set vif6.0 master xenbr0` attaches it again'), s.problems.join('\n'));
        const view = await host.xennet(['status', 'g6']);
        assert.match(view.stderr, /g6 has no interface on a bridge: backend 6\/0 \(g6\) is connected, but its interface vif6\.0 was taken off its bridge/);
        host.xenstored.write(`${g.backendPath}/state`, '5'); // closing: its offline is next
        assert.ok(!(await status()).s.problems.some(offBridge), 'a detach under way');
      } finally {
        await host.runVifScript('vif-xennet', g, 'offline', 'libxl', { env: { XENNET_FIREWALL: 'off' } });
        host.removeDevice(g);
        await host.dom0.ip('link', 'del', 'vif6.0').catch(() => undefined);
      }
    });

    it('a guest whose vifname is `__proto__` (a valid interface name) comes online firewalled, and goes', async () => {
      const g = await host.addGuest({ domid: 5, name: 'g5', mac: '00:16:3e:00:00:05', addresses: ['192.168.0.105/24'], xenstoreIp: '192.168.0.105', vifname: '__proto__' });
      try {
        const on = await host.runVifScript('vif-xennet', g, 'online');
        assert.equal(on.code, 0, on.stderr);
        const { code, s } = await status();
        assert.equal(code, 0, s.problems.join('\n'));
        assert.deepEqual(s.vifs.filter((v) => v.domain === 'g5').map((v) => [v.name, v.firewall, v.hotplugStatus]), [['__proto__', 'in-sync', 'connected']]);
        assert.equal(await g.ns.ping('192.168.0.1', { waitSeconds: 2 }), true);
        assert.equal((await host.xennet(['plan'])).code, 0, 'nothing to change');
      } finally {
        assert.equal((await host.runVifScript('vif-xennet', g, 'offline')).code, 0);
        host.removeDevice(g);
        await host.dom0.ip('link', 'del', '__proto__').catch(() => undefined);
      }
      assert.equal((await status()).code, 0);
    });

    it('a firewall index that cannot be read is named in a note; the next apply sets it aside and rebuilds it', async () => {
      const index = join(host.env({})['XENNET_STATE_DIR']!, 'firewall', 'index.json');
      const kept = readFileSync(index);
      writeFileSync(index, '{"version": 2, "vifs": [');
      try {
        const { s } = await status();
        assert.ok(s.notes.some((n) => n.startsWith(`the firewall index ${index} cannot be read (`)), JSON.stringify(s.notes));
        assert.equal((await host.xennet(['apply'])).code, 0);
        const after = await status();
        assert.equal(after.code, 0, JSON.stringify(after.s.problems));
        assert.ok(!after.s.notes.some((n) => n.includes('cannot be read')), JSON.stringify(after.s.notes));
      } finally {
        if (!existsSync(index)) writeFileSync(index, kept);
      }
    });

    it('works without xenstore (names unknown); a rule file XENNET_RULES names and that is missing is a problem (exit 1)', async () => {
      const missing = join(tmpdir(), 'no-such-rules.yaml');
      const { code, s } = await status({ XENSTORED_PATH: join(tmpdir(), 'no-such-xenstored.sock'), XENNET_RULES: missing });
      assert.equal(s.xenstore, null);
      assert.deepEqual(s.vifs.map((v) => v.domain), [null, null]);
      assert.equal(code, 1);
      assert.ok(s.problems.some((p) => p.startsWith(`rule file ${missing} does not exist (check the path given by --rules or XENNET_RULES`)), JSON.stringify(s.problems));
      // xenstore alone: still a problem (a monitoring check must not take it for a healthy host).
      const alone = await status({ XENSTORED_PATH: join(tmpdir(), 'no-such-xenstored.sock') });
      assert.equal(alone.code, 1);
      assert.deepEqual(alone.s.problems.filter((p) => p.startsWith('xenstore is not reachable')).length, 1, JSON.stringify(alone.s.problems));
      assert.match(alone.s.problems.join('\n'), /the guests' domains, hotplug states and addresses are unknown/);
    });

    it('a lock path of the state directory that holds no lock file (a FIFO, a directory) is a problem naming what it stops and how to remove it (exit 1), until it is removed', async () => {
      const learnedLock = join(host.env()['XENNET_STATE_DIR']!, 'learned.lock');
      rmSync(learnedLock, { force: true });
      assert.equal((await run('mkfifo', [learnedLock])).code, 0);
      try {
        const { code, s } = await status();
        assert.equal(code, 1);
        assert.ok(s.problems.includes(`${learnedLock} is a FIFO, not a lock file: no learned address is bound or ended (the daemon logs each failure); remove it (\`rm -r ${learnedLock}\`): xennet makes the lock file again`), s.problems.join('\n'));
      } finally {
        rmSync(learnedLock, { force: true });
      }
      const after = await status();
      assert.equal(after.code, 0, after.s.problems.join('\n'));
    });

    it('needs root: as another user it says so, and reads nothing', async () => {
      const r = await run('ip', ['netns', 'exec', host.dom0.name, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, cliPath, 'status']);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /^xennet: error: status reads the firewall, xenstore and the daemon's socket, which only root may: run it as root \(sudo xennet status\)/);
      assert.doesNotMatch(r.stderr, /nft|Operation not permitted/);
    });
  });

  describe('xennet status GUEST', () => {
    let host: SimHost;
    let dir: string;
    let rules: string;
    const RULES = ['version: 1', 'defaults:', '  outbound: accept', 'guests:', '  web01:', '    inbound: drop', '    allow_in:', '      - proto: tcp', '        ports: [22]', ''].join('\n');
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'xnt-guest-'));
      rules = join(dir, 'xennet.yaml');
      writeFileSync(rules, RULES);
      host = await SimHost.create({ autostart: false });
      await host.takeover();
      for (const [d, name] of [[3, 'web01'], [4, 'db01']] as const) {
        const g = await host.addGuest({ domid: d, name, mac: `00:16:3e:00:00:0${d}`, addresses: [`192.168.0.10${d}/24`], xenstoreIp: `192.168.0.10${d}` });
        assert.equal((await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env: { XENNET_RULES: rules } })).code, 0);
      }
    });
    after(async () => {
      await host?.destroy();
      rmSync(dir, { recursive: true, force: true });
    });
    interface GuestJson {
      ok: boolean;
      domain: string;
      domid: number;
      problems: string[];
      vifs: { name: string; firewall: string }[];
      policy: { guest?: string; line?: number; settings: { setting: string; value: string; from: string }[] };
      hooks: { command: string; via: string; ok: boolean; vif: string; message: string }[];
      plan: { changes: { vif: string; added: string[] }[] };
    }
    const guest = async (q: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; j: GuestJson; text: string; stderr: string }> => {
      const r = await host.xennet(['status', q, '--json'], { XENNET_RULES: rules, ...env });
      const t = await host.xennet(['status', q], { XENNET_RULES: rules, COLUMNS: '160', ...env });
      return { code: r.code, j: (r.code === 0 || r.code === 1) && r.stdout ? (JSON.parse(r.stdout) as GuestJson) : ({} as GuestJson), text: t.stdout, stderr: r.stderr + t.stderr };
    };

    it('names the policy in force and where each setting comes from, the interface, its hook calls, and an empty plan (exit 0)', async () => {
      const { code, j, text } = await guest('web01');
      assert.equal(code, 0, JSON.stringify(j.problems));
      assert.equal(j.domain, 'web01');
      assert.deepEqual(j.vifs.map((v) => [v.name, v.firewall]), [['vif3.0', 'in-sync']]);
      assert.equal(j.policy.guest, 'web01');
      assert.equal(j.policy.line, 5);
      const from = (k: string): string | undefined => j.policy.settings.find((x) => x.setting === k)?.from;
      assert.equal(from('inbound'), 'web01 line 6');
      assert.equal(from('outbound'), 'defaults line 3');
      assert.equal(from('allow_in[0]'), 'web01 line 8');
      assert.equal(from('antispoof.ipv4'), 'built-in');
      assert.equal(from('addresses'), 'xenstore ip');
      assert.deepEqual(j.hooks.map((h) => [h.command, h.via, h.ok, h.vif]), [['online', 'in-process', true, 'vif3.0']]);
      assert.deepEqual(j.plan.changes, []);
      assert.match(text, /^web01 \(domain 3\): OK$/m);
      assert.match(text, /^policy: the rule file's guest web01 \(.*xennet\.yaml line 5\)$/m);
      assert.match(text, /^inbound +drop +web01 line 6$/m);
      assert.match(text, /^allow_in\[0\] +tcp port 22 from anywhere +web01 line 8$/m);
      assert.match(text, /^vif3\.0: bridge xenbr0, up, mtu 1500, MAC 00:16:3e:00:00:03, hotplug-status connected$/m);
      assert.match(text, /^ {2}firewall: in place and in sync$/m);
      assert.match(text, /^plan: nothing to change for this guest$/m);
      // The same guest by its vif's name and by its domain id; another guest gets the defaults.
      assert.equal((await guest('vif3.0')).j.domain, 'web01');
      assert.equal((await guest('3')).j.domain, 'web01');
      const db = await guest('db01');
      assert.equal(db.code, 0);
      assert.match(db.text, /^policy: the defaults \(.* names no guest db01\)$/m);
    });

    it('the rule file deleted: the last good policy, which the hooks keep, is the one explained', async () => {
      rmSync(rules);
      try {
        const { j, text } = await guest('web01');
        assert.equal((j.policy as { state?: string }).state, 'kept');
        assert.equal(j.policy.settings.find((x) => x.setting === 'inbound')?.value, 'drop');
        assert.match(text, /^policy: the rule file's guest web01 .*; the file cannot be used now, this is the last good policy, still in force$/m);
        // And it is what a hook installs now.
        const g = host.guests.get(3)!;
        assert.equal((await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env: { XENNET_RULES: rules } })).code, 0);
        // The file's absence is the host's problem, and so every guest's (its next policy change cannot be made).
        const r = await guest('web01');
        assert.equal(r.code, 1);
        assert.ok(r.j.problems.some((p) => p.includes(rules)), JSON.stringify(r.j.problems));
      } finally {
        writeFileSync(rules, RULES);
      }
    });

    it('a guest nobody has: exit 1 and the guests there are', async () => {
      const r = await host.xennet(['status', 'web02'], { XENNET_RULES: rules });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no guest interface on this host is named "web02".*\n.*hint: the guests here: db01, web01/);
    });

    it('what is wrong with one guest fails that guest only: drift with the rules apply would add, then a failed hook call, each until it is mended', async () => {
      assert.equal((await host.dom0.exec('nft', ['flush', 'chain', 'bridge', 'xennet', 'XN-S-vif3.0'])).code, 0);
      const drifted = await guest('web01');
      assert.equal(drifted.code, 1);
      assert.equal(drifted.j.vifs[0]?.firewall, 'drifted');
      assert.ok(drifted.j.problems.some((p) => /vif3\.0 \(web01\): firewall drifted/.test(p)), JSON.stringify(drifted.j.problems));
      assert.ok(drifted.j.plan.changes.some((c) => c.vif === 'vif3.0' && c.added.length > 0), 'plan adds its rules back');
      assert.match(drifted.text, /^ {2}firewall: DRIFTED/m);
      assert.match(drifted.text, /^plan: \d+ rules? to add/m);
      assert.equal((await guest('db01')).code, 0, 'the other guest is fine');
      assert.equal((await host.xennet(['apply'], { XENNET_RULES: rules })).code, 0);
      assert.equal((await guest('web01')).code, 0);
      // The host's path to every guest's rules broken (found by an adversarial review: it was OK).
      assert.equal((await host.dom0.exec('nft', ['flush', 'chain', 'bridge', 'xennet', 'XN-FWD'])).code, 0);
      const bypassed = await guest('web01');
      assert.equal(bypassed.code, 1);
      assert.ok(bypassed.j.problems.some((p) => /XN-FWD/.test(p)), JSON.stringify(bypassed.j.problems));
      assert.doesNotMatch(bypassed.text, /^ {2}firewall: in place and in sync$/m);
      assert.equal((await host.xennet(['apply'], { XENNET_RULES: rules })).code, 0);
      assert.equal((await guest('web01')).code, 0);
      // A hook call that failed (its bridge does not exist) is a problem until a later one succeeds.
      const g = host.guests.get(3)!;
      host.xenstored.write(`${g.backendPath}/bridge`, 'nosuchbr0');
      assert.equal((await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env: { XENNET_RULES: rules } })).code, 1);
      const failed = await guest('web01');
      assert.equal(failed.code, 1);
      assert.deepEqual(failed.j.hooks.map((h) => h.ok).slice(-2), [true, false]);
      assert.ok(failed.j.problems.some((p) => /^vif3\.0: its last hook call \(online at .*, in-process\) failed: .*nosuchbr0/.test(p)), JSON.stringify(failed.j.problems));
      assert.match(failed.text, /^ {2}online \d+ s ago failed: .*nosuchbr0/m);
      host.xenstored.write(`${g.backendPath}/bridge`, 'xenbr0');
      assert.equal((await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env: { XENNET_RULES: rules } })).code, 0);
      const mended = await guest('web01');
      assert.equal(mended.code, 0, JSON.stringify(mended.j.problems));
      assert.deepEqual(mended.j.hooks.map((h) => h.ok).slice(-3), [true, false, true]);
    });

    it('through the daemon: its calls are recorded as the daemon\'s, and the view is the same', async () => {
      host.setAutostart(true);
      const g = host.guests.get(4)!;
      assert.equal((await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env: { XENNET_RULES: rules } })).code, 0);
      const db = await guest('db01');
      assert.equal(db.code, 0, JSON.stringify(db.j.problems));
      assert.deepEqual(db.j.hooks.map((h) => h.via), ['in-process', 'daemon']);
      assert.match(db.text, /daemon running \(pid \d+\)/);
      assert.match(db.text, /^plan: nothing to change for this guest$/m);
    });
  });

  describe('rule file safety: a mistyped path changes nothing, a widening is named', () => {
    let host: SimHost;
    let dir: string;
    let rules: string;
    let env: NodeJS.ProcessEnv;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'xnt-safety-'));
      rules = join(dir, 'xennet.yaml');
      writeFileSync(rules, 'version: 1\nguests:\n  web01:\n    inbound: drop\n    isolation: true\n    allow_in: [ { proto: tcp, ports: [443] } ]\n');
      env = { XENNET_RULES: rules };
      host = await SimHost.create({ autostart: false });
      await host.takeover();
      const g = await host.addGuest({ domid: 5, name: 'web01', mac: '00:16:3e:00:00:05', addresses: ['192.168.0.105/24'], xenstoreIp: '192.168.0.105' });
      const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
      assert.equal(r.code, 0, r.stderr);
    });
    after(async () => {
      await host?.destroy();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Every table xennet may write, as the kernel prints it (counters and save banners left out). */
    const installed = async (): Promise<string> => {
      const out: string[] = [];
      for (const [tool, args] of [
        ['iptables-save', []],
        ['ip6tables-save', []],
        ['ebtables-save', []],
        ['nft', ['list', 'ruleset']],
      ] as const) {
        const r = await host.dom0.exec(tool, [...args]);
        assert.equal(r.code, 0, `${tool}: ${r.stderr}`);
        out.push(`== ${tool}`, ...r.stdout.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '[]').replace(/counter packets \d+ bytes \d+/g, 'counter')));
      }
      return out.join('\n');
    };

    it('apply with a missing --rules or XENNET_RULES exits 1, names the file, and leaves the installed rules byte for byte', async () => {
      assert.equal((await host.xennet(['plan'], env)).code, 0, 'the hook installed what the file says');
      const before = await installed();
      assert.ok(await inboundDrops(host.dom0, 'vif5.0'), 'inbound: drop is installed');
      const typo = join(dir, 'xenet.yaml');
      for (const [args, e] of [
        [['apply', '--rules', typo], env],
        [['apply'], { XENNET_RULES: typo }],
      ] as const) {
        const r = await host.xennet(args, e);
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, new RegExp(`^xennet: error: rule file ${typo.replace(/[.]/g, '\\.')} does not exist\n  hint: check the path given by --rules or XENNET_RULES`));
        assert.equal(await installed(), before, `${args.join(' ')}: nothing changed`);
      }
    });

    it('plan names the widening when the file drops inbound: drop and isolation (exit 2), and apply makes it', async () => {
      writeFileSync(rules, 'version: 1\nguests:\n  web01: {}\n');
      const p = await host.xennet(['plan'], env);
      assert.equal(p.code, 2, p.stdout + p.stderr);
      assert.match(p.stdout, /^widening: web01 \(vif5\.0\): inbound drop -> accept; isolation removed$/m);
      const j = await host.xennet(['plan', '--json'], env);
      assert.deepEqual((JSON.parse(j.stdout) as { widenings: unknown }).widenings, [{ vif: 'vif5.0', domain: 'web01', changes: ['inbound drop -> accept', 'isolation removed'] }]);
      // A file that only widens the allow list of a guest that keeps inbound: drop.
      writeFileSync(rules, 'version: 1\nguests:\n  web01:\n    inbound: drop\n    isolation: true\n    allow_in: [ { proto: tcp, ports: [443, 22] } ]\n');
      const a = await host.xennet(['plan'], env);
      assert.match(a.stdout, /^widening: web01 \(vif5\.0\): allow_in now also accepts tcp port 22 from anywhere$/m);
      const applied = await host.xennet(['apply'], env);
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stdout, /^widening: web01 \(vif5\.0\): allow_in now also accepts tcp port 22/m, 'apply says what it opened');
      const again = await host.xennet(['plan', '--json'], env);
      assert.equal(again.code, 0);
      assert.deepEqual((JSON.parse(again.stdout) as { widenings: unknown }).widenings, [], 'measured against what is installed now');
    });
  });

  describe('the default backend: nftables on a new host; a host installed on xtables keeps it until told', () => {
    let host: SimHost;
    let dir: string;
    let rules: string;
    const env = (): NodeJS.ProcessEnv => ({ XENNET_RULES: rules });
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'xnt-default-'));
      rules = join(dir, 'xennet.yaml');
      host = await SimHost.create({ autostart: false });
      await host.takeover();
    });
    after(async () => {
      await host?.destroy();
      rmSync(dir, { recursive: true, force: true });
    });
    const kindOf = async (): Promise<{ kind: string; notes: string[] }> => {
      const r = await host.xennet(['status', '--json'], env());
      const s = JSON.parse(r.stdout) as { backend: { kind: string }; notes: string[] };
      return { kind: s.backend.kind, notes: s.notes };
    };

    it('installed on xtables by name, it stays there once the file names none: plan is empty, a hook commits there, status says how to move; a name moves it', async () => {
      writeFileSync(rules, 'version: 1\nbackend: xtables\nguests:\n  web01:\n    inbound: drop\n');
      const g = await host.addGuest({ domid: 7, name: 'web01', mac: '00:16:3e:00:00:07', addresses: ['192.168.0.107/24'], xenstoreIp: '192.168.0.107' });
      assert.equal((await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env: env() })).code, 0);
      assert.equal((await kindOf()).kind, 'xtables');
      // The file no longer names a backend (the package's example, say): nothing moves.
      writeFileSync(rules, 'version: 1\nguests:\n  web01:\n    inbound: drop\n');
      const plan = await host.xennet(['plan'], env());
      assert.equal(plan.code, 0, `nothing to change: ${plan.stdout}`);
      const { kind, notes } = await kindOf();
      assert.equal(kind, 'xtables');
      assert.ok(notes.some((n) => n.startsWith('the firewall stays on xtables, where it is installed; xennet\'s default is nftables')), notes.join('\n'));
      const g2 = await host.addGuest({ domid: 8, name: 'db01', mac: '00:16:3e:00:00:08', addresses: ['192.168.0.108/24'], xenstoreIp: '192.168.0.108' });
      assert.equal((await host.runVifScript('vif-xennet', g2, 'online', 'libxl', { env: env() })).code, 0);
      assert.ok(await guestRulesPresent(host.dom0, g2.vif));
      assert.equal((await host.dom0.exec('nft', ['list', 'table', 'bridge', 'xennet'])).code, 1, 'a hook never switches backends');
      // A damaged record (an entry that does not parse, set aside by the next hook): what the
      // kernel holds still says xtables, and the next guest goes there too.
      const index = join(host.dir, 'state', 'firewall', 'index.json');
      const record = JSON.parse(readFileSync(index, 'utf8')) as { vifs: Record<string, unknown> };
      record.vifs['bad name with spaces'] = {};
      writeFileSync(index, JSON.stringify(record));
      const g3 = await host.addGuest({ domid: 9, name: 'app01', mac: '00:16:3e:00:00:09', addresses: ['192.168.0.109/24'], xenstoreIp: '192.168.0.109' });
      const third = await host.runVifScript('vif-xennet', g3, 'online', 'libxl', { env: env() });
      assert.equal(third.code, 0, third.stderr);
      assert.equal((await host.dom0.exec('nft', ['list', 'table', 'bridge', 'xennet'])).code, 1, 'still no nftables table after a damaged record');
      assert.ok(await guestRulesPresent(host.dom0, g3.vif));
      assert.equal((await kindOf()).kind, 'xtables');
      assert.equal((await host.xennet(['plan'], env())).code, 0, 'every guest in place, on xtables');
      // The operator names nftables: plan shows the switch, apply makes it.
      writeFileSync(rules, 'version: 1\nbackend: nftables\nguests:\n  web01:\n    inbound: drop\n');
      assert.equal((await host.xennet(['plan'], env())).code, 2);
      const applied = await host.xennet(['apply'], env());
      assert.equal(applied.code, 0, applied.stderr);
      assert.ok(await inboundDrops(host.dom0, g.vif), 'on nftables now');
      assert.doesNotMatch((await host.dom0.exec('iptables-save', [])).stdout, /XN-/, 'nothing left in xtables');
      assert.ok(!(await kindOf()).notes.some((n) => n.includes('stays on xtables')));
    });

    it('an apply that moves the firewall, killed once the new backend holds the rules: the record names that backend, the next hook and apply go on there; a lost record keeps what the kernel holds', async () => {
      const g = host.guests.get(7)!;
      writeFileSync(rules, 'version: 1\nbackend: xtables\nguests:\n  web01:\n    inbound: drop\n');
      const killed = await host.xennet(['apply'], { ...env(), XENNET_TEST_KILL_AT: 'firewall:apply-recorded' });
      assert.notEqual(killed.code, 0, 'killed');
      const index = join(host.dir, 'state', 'firewall', 'index.json');
      const record = JSON.parse(readFileSync(index, 'utf8')) as { engine: { kind: string }; dirty: boolean };
      assert.equal(record.engine.kind, 'xtables', 'the record names the backend the rules are on');
      assert.equal(record.dirty, true);
      assert.ok(await inboundDrops(host.dom0, g.vif), 'the guest is filtered');
      const st = JSON.parse((await host.xennet(['status', '--json'], env())).stdout) as { backend: { kind: string }; problems: string[] };
      assert.equal(st.backend.kind, 'xtables');
      assert.ok(st.problems.some((p) => p.startsWith("xennet's rules are still in nftables")), st.problems.join('\n'));
      assert.ok(!st.problems.some((p) => p.includes('is installed on nftables')), st.problems.join('\n'));
      const g4 = await host.addGuest({ domid: 10, name: 'app02', mac: '00:16:3e:00:00:0a', addresses: ['192.168.0.110/24'], xenstoreIp: '192.168.0.110' });
      const hooked = await host.runVifScript('vif-xennet', g4, 'online', 'libxl', { env: env() });
      assert.equal(hooked.code, 0, hooked.stderr);
      assert.match((await host.dom0.exec('iptables-save', [])).stdout, /:XN-O-vif10\.0/, 'the next hook commits on xtables');
      const applied = await host.xennet(['apply'], env());
      assert.equal(applied.code, 0, applied.stderr);
      assert.equal((await host.dom0.exec('nft', ['list', 'table', 'bridge', 'xennet'])).code, 1, 'the leftovers go');
      assert.equal((await host.xennet(['plan'], env())).code, 0);
      // The record lost, the file naming no backend: apply keeps the backend the kernel holds.
      writeFileSync(rules, 'version: 1\nguests:\n  web01:\n    inbound: drop\n');
      rmSync(join(host.dir, 'state', 'firewall'), { recursive: true, force: true });
      const kept = await host.xennet(['apply'], env());
      assert.equal(kept.code, 0, kept.stderr);
      assert.equal((await host.dom0.exec('nft', ['list', 'table', 'bridge', 'xennet'])).code, 1, 'not moved to nftables');
      assert.equal((await kindOf()).kind, 'xtables');
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
