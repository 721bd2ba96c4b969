/**
 * Plans converge (netns property test): any rule file xennet accepts, applied to a live host,
 * leaves rules that `*-save` (xtables) or `nft list` (nftables) prints back exactly as compiled,
 * and nothing in the other backend's tables, so the next plan is empty. Random
 * rule files from a fixed seed (FC_SEED overrides it), so a run is repeatable.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { parsePolicy } from '../../src/config/load.js';
import { SimHost } from '../../src/sim/host.js';
import { sweepLeftovers } from './lib/netns.js';

const bool = fc.boolean();
const verdict = fc.constantFrom('accept', 'drop');
const hex2 = fc.integer({ min: 0, max: 255 }).map((n) => n.toString(16).padStart(2, '0'));
const port = fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 1000 })).map(([a, d]) => `${a}-${Math.min(65535, a + d)}`));

/** An IPv4 prefix with its host bits clear, anywhere (allow rules). */
const anyV4 = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 32 })).map(([a, b, c, d, len]) => {
  const n = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  const masked = len === 32 ? n : (n & ((0xffffffff << (32 - len)) >>> 0)) >>> 0;
  return `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${len}`;
});
const anyV6 = fc.tuple(fc.integer({ min: 0x2000, max: 0x3fff }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(16, 32, 48, 64)).map(([a, b, c, len]) => {
  const words = [a, b, c, 0, 0, 0, 0, 0];
  const keep = len / 16;
  return `${words.map((w, i) => (i < keep ? w : 0).toString(16)).join(':')}/${len}`;
});

function rule(dir: 'in' | 'out') {
  const key = dir === 'in' ? 'from' : 'to';
  return fc.oneof(
    fc.record({ proto: fc.constantFrom('tcp', 'udp'), ports: fc.option(fc.array(port, { minLength: 1, maxLength: 20 }), { nil: undefined }), [key]: fc.option(fc.array(fc.oneof(anyV4, anyV6), { minLength: 1, maxLength: 3 }), { nil: undefined }) }, { requiredKeys: ['proto'] }),
    fc.record({ proto: fc.constant('icmp'), icmp_types: fc.option(fc.array(fc.integer({ min: 0, max: 254 }), { minLength: 1, maxLength: 3 }), { nil: undefined }), [key]: fc.option(fc.array(anyV4, { minLength: 1, maxLength: 2 }), { nil: undefined }) }, { requiredKeys: ['proto'] }),
    fc.record({ proto: fc.constant('icmpv6'), icmp_types: fc.option(fc.array(fc.integer({ min: 0, max: 254 }), { minLength: 1, maxLength: 3 }), { nil: undefined }), [key]: fc.option(fc.array(anyV6, { minLength: 1, maxLength: 2 }), { nil: undefined }) }, { requiredKeys: ['proto'] }),
    fc.record({ proto: fc.constant('any'), [key]: fc.option(fc.array(fc.oneof(anyV4, anyV6), { minLength: 1, maxLength: 2 }), { nil: undefined }) }, { requiredKeys: ['proto'] }),
  );
}

const common = {
  antispoof: fc.oneof(bool, fc.record({ mac: bool, arp: bool, ipv4: bool, ipv6: bool }, { requiredKeys: [] })),
  inbound: verdict,
  outbound: verdict,
  isolation: bool,
  allow_ethertypes: fc.subarray([0x88cc, 0x88b5, 0x8100, 0x0806 + 0x100]),
  router_advertisements: bool,
  dhcp_server: bool,
  log_drops: bool,
};

/** Guest k: addresses in its own space (10.k.j.x, 2001:db8:k:j::), so guests never overlap. */
function guest(k: number) {
  const v4 = fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 3 }).chain((js) =>
    fc.tuple(...js.map((j) => fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 24, max: 32 })).map(([h, len]) => (len === 32 ? `10.${k}.${j}.${h}` : `10.${k}.${j}.${h & ~((1 << (32 - len)) - 1) & 255}/${len}`)))),
  );
  const v6 = fc.uniqueArray(fc.integer({ min: 0, max: 0xffff }), { maxLength: 2 }).chain((js) => fc.tuple(...js.map((j) => fc.oneof(fc.integer({ min: 1, max: 0xffff }).map((h) => `2001:db8:${k}:${j.toString(16)}::${h.toString(16)}`), fc.constant(`2001:db8:${k}:${j.toString(16)}::/64`)))));
  return fc.record(
    {
      mac: fc.tuple(hex2, hex2, hex2).map(([a, b, c]) => `02:16:3e:${k.toString(16).padStart(2, '0')}:${a}:${b === 'ff' && c === 'ff' ? '00' : b}`),
      ipv4: v4,
      ipv6: v6,
      allow_in: fc.array(rule('in'), { maxLength: 4 }),
      allow_out: fc.array(rule('out'), { maxLength: 4 }),
      ...common,
    },
    { requiredKeys: [] },
  );
}

const policyArb = fc.record(
  {
    version: fc.constant(1),
    // Either backend, so that runs also move the whole firewall from one to the other.
    backend: fc.constantFrom('xtables', 'nftables'),
    defaults: fc.record(common, { requiredKeys: [] }),
    guests: fc.record({ g1: guest(1), g2: guest(2), g3: guest(3) }, { requiredKeys: [] }),
  },
  { requiredKeys: ['version', 'backend'] },
);

describe('plans converge (netns, property test: random valid rule files, applied, then plan is empty)', function () {
  this.timeout(600_000);
  let host: SimHost;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    await sweepLeftovers();
    dir = mkdtempSync(join(tmpdir(), 'xnt-conv-'));
    env = { XENNET_RULES: join(dir, 'xennet.yaml') };
    // A rule file it names must exist: the built-in defaults until the property writes its own.
    writeFileSync(env['XENNET_RULES']!, 'version: 1\n');
    host = await SimHost.create({ autostart: false });
    await host.takeover();
    for (const d of [1, 2, 3]) {
      const g = await host.addGuest({ domid: d, name: `g${d}`, mac: `00:16:3e:00:00:0${d}`, addresses: [`192.168.0.10${d}/24`], xenstoreIp: `192.168.0.10${d} 2001:db8::10${d}`, ...(d === 3 ? { vifname: 'renamed3' } : {}) });
      const r = await host.runVifScript('vif-xennet', g, 'online', 'libxl', { env });
      assert.equal(r.code, 0, r.stderr);
    }
  });

  after(async () => {
    await host?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('apply, then plan exits 0, for any accepted rule file', async () => {
    const seed = process.env['FC_SEED'] ? Number(process.env['FC_SEED']) : 20261130;
    await fc.assert(
      fc.asyncProperty(policyArb, async (policy) => {
        const text = stringify(policy);
        parsePolicy(text, 'generated.yaml'); // the generator makes only files xennet accepts
        writeFileSync(env['XENNET_RULES']!, text);
        const a = await host.xennet(['apply'], env);
        assert.equal(a.code, 0, `apply: ${a.stderr}\n${text}`);
        const p = await host.xennet(['plan'], env);
        assert.equal(p.code, 0, `plan after apply is not empty:\n${p.stdout}\n${text}`);
      }),
      { numRuns: 16, seed, endOnFailure: true },
    );
  });
});
