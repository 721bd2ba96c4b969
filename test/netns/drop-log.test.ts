/**
 * Seeing what was dropped (log_drops): on the simulated Xen host with real forged frames, the
 * daemon records each logged drop with the guest's domain, the reason, addresses and protocol,
 * `xennet drops` shows them (and `--follow` as they come), and a flooding guest gets at most a
 * few lines a minute per rule while its counters count every frame; `log_drops: false` logs
 * nothing (the control).
 */
import assert from 'node:assert/strict';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SimHost, xennetCli, type SimGuest } from '../../src/sim/host.js';
import { run, start } from '../../src/sys/exec.js';
import { framesPy } from './lib/frames.js';
import { LineWaiter } from './lib/lines.js';
import { sweepLeftovers } from './lib/netns.js';

const holderJs = fileURLToPath(new URL('./lib/nflog-holder-main.js', import.meta.url));

const MAC = '00:16:3e:00:00:05';

interface Drop {
  vif: string;
  domain: string | null;
  reason: string;
  packet: { protocol: string; source?: string; destination?: string; detail?: string };
}

for (const backend of ['nft', 'nftables'] as const)
describe(`drops as they happen, with domain and reason (netns, ${backend === 'nftables' ? 'nftables backend' : 'iptables-nft'})`, function () {
  this.timeout(180_000);
  const kind = backend === 'nftables' ? 'nftables' : 'xtables';
  let host: SimHost;
  let web: SimGuest;
  let quiet: SimGuest;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const xennet = (args: string[]) => host.xennet(args, env);
  const send = async (g: SimGuest, mac: string, src: string, marker: string): Promise<void> => {
    const r = await g.ns.exec('python3', [framesPy, 'send', 'eth0', 'udp4', mac, 'ff:ff:ff:ff:ff:ff', src, '192.168.0.1', '4000', '4001', marker]);
    assert.equal(r.code, 0, r.stderr);
  };
  const drops = async (guest?: string): Promise<Drop[]> => {
    const r = await xennet(['drops', ...(guest ? [guest] : []), '--json']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Drop);
  };
  const until = async (what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> => {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-droplog-'));
    writeFileSync(join(dir, 'xennet.yaml'), `version: 1\nbackend: ${kind}\nguests:\n  web01: { mac: "${MAC}", ipv4: [192.168.0.105], ipv6: ["2001:db8::105"], inbound: drop }\n  quiet: { mac: "00:16:3e:00:00:06", ipv4: [192.168.0.106], log_drops: false }\n`);
    env = backend === 'nftables' ? { XENNET_RULES: join(dir, 'xennet.yaml') } : { XENNET_RULES: join(dir, 'xennet.yaml'), XENNET_IPTABLES: backend };
    host = await SimHost.create({ autostart: false });
    await host.takeover();
    await host.startDaemon(env);
    web = await host.addGuest({ domid: 5, name: 'web01', mac: MAC, addresses: ['192.168.0.105/24', '2001:db8::105/64'] });
    quiet = await host.addGuest({ domid: 6, name: 'quiet', mac: '00:16:3e:00:00:06', addresses: ['192.168.0.106/24'] });
    for (const g of [web, quiet]) {
      const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
      assert.equal(r.code, 0, r.stderr);
    }
  });

  after(async () => {
    await host?.stopDaemon().catch(() => undefined);
    await host?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a forged source is recorded with the guest\'s domain, the reason, the addresses and the protocol, and the daemon\'s log says so', async () => {
    await send(web, MAC, '192.168.0.200', 'forged');
    await until('the drop to be recorded', async () => (await drops('web01')).some((d) => d.reason === 'spoof4'));
    const d = (await drops('web01')).find((x) => x.reason === 'spoof4')!;
    assert.deepEqual({ vif: d.vif, domain: d.domain, protocol: d.packet.protocol, source: d.packet.source, destination: d.packet.destination, detail: d.packet.detail }, { vif: web.vif, domain: 'web01', protocol: 'udp', source: '192.168.0.200', destination: '192.168.0.1', detail: '4000>4001' });
    assert.ok(host.daemonLog.some((l) => l.includes(`drop: web01 (${web.vif}) spoof4 (spoofed IPv4 source): udp 192.168.0.200 -> 192.168.0.1 4000>4001`)), host.daemonLog.join('\n'));
    const text = (await xennet(['drops', 'web01'])).stdout;
    assert.match(text, /web01 \(vif5\.0\) spoof4 \(spoofed IPv4 source\): udp 192\.168\.0\.200 -> 192\.168\.0\.1 4000>4001/);
    const nobody = await xennet(['drops', 'nobody']);
    assert.equal(nobody.code, 1, 'a guest that is not here, and has no drops recorded, is an error');
    assert.match(nobody.stderr, /no guest interface on this host is named "nobody"/);
    assert.deepEqual(await drops(web.vif), await drops('web01'), 'by its vif name, the same');
  });

  // (The daemon's and the CLI's own, the same on both backends: run on one.)
  if (backend === 'nftables') it('a daemon that started while another process held the drop group listens once it is let go', async () => {
    await host.stopDaemon();
    const holder = start('ip', ['netns', 'exec', host.dom0.name, 'node', holderJs]);
    try {
      await new LineWaiter(holder).waitFor('ready', 30_000);
      await host.startDaemon(env);
      await until('the daemon to say why it does not listen', () => Promise.resolve(host.daemonLog.some((l) => /drops are not logged: .*another process holds it/.test(l))));
      const r = await xennet(['drops']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /the daemon does not listen for drops/);
      holder.stdin?.end();
      await until('the daemon to take the group', () => Promise.resolve(host.daemonLog.some((l) => l.includes('drops are logged again'))), 30_000);
      assert.doesNotMatch((await xennet(['drops'])).stderr, /does not listen/);
      await send(web, MAC, '192.168.0.199', 'after');
      await until('the drop to be recorded', async () => (await drops('web01')).some((d) => d.packet.source === '192.168.0.199'));
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('--follow prints drops as they come', async () => {
    const child = start('ip', ['netns', 'exec', host.dom0.name, 'node', xennetCli, 'drops', 'web01', '--follow'], { env: host.env(env) });
    let out = '';
    child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr?.resume();
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const before = out.split('\n').filter((l) => l.includes('192.168.0.201')).length;
      assert.equal(before, 0);
      // (An IPv6 source: its rule has a budget of its own; the IPv4 one's went to the test above,
      // and on xtables a flooded frame passes a guest's chains more than once.)
      const r = await web.ns.exec('python3', [framesPy, 'send', 'eth0', 'udp6', MAC, '33:33:00:00:00:01', '2001:db8::999', 'ff02::1', '4000', '4001', 'followed']);
      assert.equal(r.code, 0, r.stderr);
      await until('the followed drop', async () => out.includes('spoof6') && out.includes('udp 2001:db8::999 -> ff02::1'));
    } finally {
      child.kill('SIGINT');
    }
  });

  if (backend === 'nftables') it('--follow into a pipe whose reader has gone (an ssh session that died), with nothing to print, ends', async () => {
    const fifo = join(dir, 'follow.fifo');
    assert.equal((await run('mkfifo', [fifo])).code, 0);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    let open = true;
    // (Its stdout the pipe itself, as a shell's `|` makes it: a Node.js child's would be a socket.)
    const child = start('bash', ['-c', 'exec "$@" >"$0"', fifo, 'ip', 'netns', 'exec', host.dom0.name, 'node', xennetCli, 'drops', 'quiet', '--follow'], { env: host.env(env) });
    child.stdout?.resume();
    child.stderr?.resume();
    try {
      const ended = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(child.exitCode, null, 'it follows while read');
      closeSync(reader);
      open = false;
      const code = await Promise.race([ended, new Promise<string>((r) => setTimeout(() => r('still running'), 25_000))]);
      assert.equal(code, 0, 'the follower ends, quietly, when nobody reads it');
    } finally {
      child.kill('SIGKILL');
      if (open) closeSync(reader);
    }
  });

  it('an inbound drop is logged for unicast only: another guest\'s broadcast, which reaches every guest, is counted and not logged', async () => {
    const inbound = async (): Promise<number> => ((JSON.parse((await xennet(['status', '--json', '--fresh'])).stdout) as { vifs: { name: string; drops: { reasons: Record<string, { packets: number }> } }[] }).vifs.find((v) => v.name === web.vif)?.drops.reasons['in']?.packets ?? 0);
    const sendTo = async (dstMac: string, dst: string, marker: string): Promise<void> => {
      const r = await quiet.ns.exec('python3', [framesPy, 'send', 'eth0', 'udp4', '00:16:3e:00:00:06', dstMac, '192.168.0.106', dst, '4000', '4444', marker]);
      assert.equal(r.code, 0, r.stderr);
    };
    const before = await inbound();
    await sendTo('ff:ff:ff:ff:ff:ff', '192.168.0.255', 'broadcast');
    await until('the broadcast to count as web01\'s inbound drop', async () => (await inbound()) > before);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual((await drops('web01')).filter((d) => d.reason === 'in'), [], 'not logged');
    await sendTo(MAC, '192.168.0.105', 'unicast');
    await until('the unicast one to be logged', async () => (await drops('web01')).some((d) => d.reason === 'in' && d.packet.source === '192.168.0.106' && d.packet.destination === '192.168.0.105'));
  });

  it('all guests\' rules share one budget: twelve guests\' bursts at the same moment hand the daemon at most 20 per family (then 10 a second)', async () => {
    const gs: SimGuest[] = [];
    for (let k = 0; k < 12; k++) {
      const mac = `00:16:3e:00:01:${(0x10 + k).toString(16)}`;
      const g = await host.addGuest({ domid: 20 + k, name: `burst${k}`, mac, addresses: [`192.168.0.${20 + k}/24`], xenstoreIp: `192.168.0.${20 + k}` });
      const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
      assert.equal(r.code, 0, r.stderr);
      gs.push(g);
    }
    // Each guest's own rule lets 5 through at once: 60 in all, at the same moment.
    const at = Date.now() / 1000 + 3;
    const sent = await Promise.all(gs.map((g) => g.ns.exec('python3', [framesPy, 'send', 'eth0', `udp4@at=${at},repeat=8`, g.mac, 'ff:ff:ff:ff:ff:ff', '10.77.0.1', '192.168.0.1', '4000', '4001', 'burst'])));
    for (const r of sent) assert.equal(r.code, 0, r.stderr);
    await new Promise((r) => setTimeout(r, 1000));
    const logged = (await drops()).filter((d) => d.packet.source === '10.77.0.1');
    const guests = new Set(logged.map((d) => d.vif)).size;
    assert.ok(logged.length >= 10, `logging works: ${logged.length} logged`);
    assert.ok(logged.length <= 24, `${logged.length} logged of the ${gs.length * 5} the guests' own rules let through, from ${guests} guests`);
  });

  it('a flooding guest gets a few lines a minute per rule (the kernel\'s rate), while its counters count every frame; log_drops: false logs none (the control)', async () => {
    const counted = async (vif: string): Promise<number> => ((JSON.parse((await xennet(['status', '--json', '--fresh'])).stdout) as { vifs: { name: string; drops: { reasons: Record<string, { packets: number }> } }[] }).vifs.find((v) => v.name === vif)?.drops.reasons['spoof4']?.packets ?? 0);
    const before = await counted(web.vif);
    const logged = (await drops('web01')).filter((d) => d.reason === 'spoof4').length;
    for (let i = 0; i < 20; i++) await send(web, MAC, `192.168.0.${210 + i}`, `flood${i}`);
    await new Promise((r) => setTimeout(r, 1000));
    const after = await counted(web.vif);
    assert.ok(after - before >= 20, `every frame counts (${before} -> ${after})`);
    const loggedAfter = (await drops('web01')).filter((d) => d.reason === 'spoof4').length;
    assert.ok(loggedAfter - logged <= 6, `at most the rule's burst is logged (${loggedAfter - logged} of ${after - before})`);
    // The control: a guest with log_drops: false drops as well, and logs nothing.
    await send(quiet, '00:16:3e:00:00:06', '192.168.0.222', 'quiet');
    await until('the quiet guest\'s drop to count', async () => (await counted(quiet.vif)) > 0);
    assert.deepEqual(await drops('quiet'), []);
  });
});
