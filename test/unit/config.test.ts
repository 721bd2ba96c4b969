import assert from 'node:assert/strict';
import { cidr, dom, ifn, mac } from './lib/values.js';
import { ConfigError, parsePolicy } from '../../src/config/load.js';
import { jsonSchema } from '../../src/config/schema.js';
import { resolveVif } from '../../src/firewall/resolve.js';
import { compile } from '../../src/firewall/compile.js';
import { driverFor } from '../../src/firewall/drivers.js';

function problems(text: string): string[] {
  try {
    parsePolicy(text, 'x.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.path}: ${p.message}`);
  }
  return [];
}

describe('rule file', () => {
  it('accepts the documented example', () => {
    const p = parsePolicy(
      `version: 1
defaults:
  antispoof: true
  inbound: accept
guests:
  web01:
    mac: "00:16:3E:12:34:56"
    ipv4: [192.168.0.5]
    ipv6: ["2001:db8::5"]
    inbound: drop
    allow_in:
      - { proto: tcp, ports: [80, 443] }
      - { proto: tcp, ports: [22], from: [192.168.0.0/24] }
`,
      'x.yaml',
    );
    assert.equal(p.guests?.['web01']?.mac, '00:16:3e:12:34:56', 'MACs are lower-cased');
  });

  it('names file, line, column, key and what is valid (verbatim)', () => {
    assert.deepEqual(
      problems(`version: 1
defaults:
  inbound: maybe
guests:
  web01:
    mac: "zz:16:3e:12:34:56"
    colour: blue
    allow_in:
      - { proto: tcp, ports: [80, 70000] }
      - { proto: udp, ports: ["9-3"] }
      - { proto: icmp, ports: [1] }
`),
      [
        'x.yaml:3:12: defaults.inbound: must be one of "accept", "drop"',
        'x.yaml:6:10: guests.web01.mac: "zz:16:3e:12:34:56" is not a MAC address like 00:16:3e:12:34:56',
        'x.yaml:7:5: guests.web01.colour: unknown key "colour"',
        'x.yaml:9:35: guests.web01.allow_in[0].ports[1]: ports are 1-65535',
        'x.yaml:10:31: guests.web01.allow_in[1].ports[0]: a port range is low-high within 1-65535',
        'x.yaml:11:31: guests.web01.allow_in[2].ports: ports need proto tcp or udp, not icmp',
      ],
    );
  });

  it('rejects YAML errors, a missing version, duplicates and overlaps across guests', () => {
    assert.match(problems('version: 1\nguests: [\n')[0] ?? '', /^x\.yaml:\d+:\d+: : YAML: /);
    assert.deepEqual(problems('guests: {}\n'), ['x.yaml:1:1: version: the only rule file version is 1']);
    assert.deepEqual(
      problems(`version: 1
guests:
  a: { mac: "00:16:3e:00:00:01", ipv4: [10.0.0.0/29] }
  b: { mac: "00:16:3e:00:00:01", ipv4: [10.0.0.5, 10.1.0.0/24] }
`),
      [
        'x.yaml:4:13: guests.b.mac: MAC 00:16:3e:00:00:01 is also used by guest a; every guest interface needs its own',
        'x.yaml:4:41: guests.b.ipv4[0]: 10.0.0.5/32 overlaps 10.0.0.0/29 of guest a; an address belongs to one guest',
      ],
    );
    assert.deepEqual(problems('version: 1\nguests:\n  b: { ipv4: [10.1.0.5/24] }\n'), [
      'x.yaml:3:15: guests.b.ipv4[0]: "10.1.0.5/24" has host bits set; write the network 10.1.0.0/24 or the single address 10.1.0.5',
    ]);
  });

  it('refuses a YAML alias bomb, a __proto__ guest and an all-zero MAC as file:line:col messages', () => {
    const bomb = ['version: 1', 'a: &a ["x","x","x","x","x","x","x","x","x"]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]', 'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]', 'f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]', ''].join('\n');
    const p = problems(bomb);
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^x\.yaml:1:1: : YAML: .*alias/i);
    assert.deepEqual(problems('version: 1\nguests:\n  __proto__: { mac: "00:16:3e:00:00:01" }\n'), ['x.yaml:3:3: guests.__proto__: "__proto__" cannot be a guest name in xennet\'s rule file; rename the domain']);
    assert.deepEqual(problems('version: 1\nguests:\n  web: { mac: "00:00:00:00:00:00" }\n'), ['x.yaml:3:15: guests.web.mac: "00:00:00:00:00:00" is the all-zero address; a guest interface needs its own unicast MAC']);
    const p2 = parsePolicy('version: 1\nguests:\n  web: { inbound: drop }\n', 'x.yaml');
    const r = resolveVif(p2, { name: ifn('vif1.0'), bridge: ifn('xenbr0'), domain: dom('constructor'), ipv4: [], ipv6: [] });
    assert.equal(r.guest, undefined, 'a domain named constructor is not a rule-file guest');
    assert.equal(r.inbound, 'accept');
  });

  it('checks 5000 guests (overlaps in O(n log n))', function () {
    this.timeout(30_000);
    const lines = ['version: 1', 'guests:'];
    for (let i = 0; i < 5000; i++) lines.push(`  g${i}: { mac: "02:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}", ipv4: [10.${(i >> 8) & 255}.${i & 255}.0/28], ipv6: ["2001:db8:${i.toString(16)}::/64"] }`);
    const t0 = performance.now();
    const policy = parsePolicy(lines.join('\n') + '\n', 'x.yaml');
    assert.equal(Object.keys(policy.guests ?? {}).length, 5000);
    // The figure itself is in the bench; this only guards against a quadratic check coming back.
    assert.ok(performance.now() - t0 < 10_000);
    lines.push('  late: { ipv4: [10.0.1.3] }');
    assert.deepEqual(problems(lines.join('\n') + '\n'), ['x.yaml:5003:18: guests.late.ipv4[0]: 10.0.1.3/32 overlaps 10.0.1.0/28 of guest g1; an address belongs to one guest']);
  });

  it('generates a JSON Schema from the same source', () => {
    const s = jsonSchema() as { properties: Record<string, unknown>; additionalProperties: boolean };
    assert.deepEqual(Object.keys(s.properties).sort(), ['backend', 'defaults', 'guests', 'version']);
    assert.equal(s.additionalProperties, false);
  });

  it('resolves guest over defaults over xenstore, and warns about what it cannot protect', () => {
    const policy = parsePolicy(
      `version: 1
defaults: { inbound: drop, antispoof: { ipv6: false } }
guests:
  web01:
    ipv4: [10.0.0.5]
    allow_in: [ { proto: any }, { proto: tcp, ports: [80] } ]
    interfaces: [ { devid: 1, mac: "00:16:3e:00:01:01", ipv4: [10.0.1.5] } ]
  ghost: {}
`,
      'x.yaml',
    );
    const r = resolveVif(policy, { name: ifn('vif5.0'), bridge: ifn('xenbr0'), domain: dom('web01'), devid: 0, mac: mac('00:16:3e:00:00:05'), ipv4: [cidr('10.9.9.9')], ipv6: [] });
    assert.deepEqual(r.ipv4, [cidr('10.0.0.5')], 'the file wins over xenstore ip');
    assert.equal(r.mac, '00:16:3e:00:00:05', 'xenstore mac when the file has none');
    assert.equal(r.inbound, 'drop');
    assert.equal(r.antispoof.ipv6, false);
    assert.ok(r.warnings.some((w) => /allow_in\[0\] allows all traffic/.test(w)));
    assert.ok(r.warnings.some((w) => /allow_in\[1\] is shadowed by allow_in\[0\]/.test(w)));
    const second = resolveVif(policy, { name: ifn('vif5.1'), bridge: ifn('xenbr0'), domain: dom('web01'), devid: 1, ipv4: [], ipv6: [] });
    assert.equal(second.mac, '00:16:3e:00:01:01');
    assert.deepEqual(second.ipv4, [cidr('10.0.1.5')]);
    const stranger = resolveVif(policy, { name: ifn('vif9.0'), bridge: ifn('xenbr0'), ipv4: [], ipv6: [] });
    assert.ok(stranger.warnings.some((w) => /cannot be learned without its MAC/.test(w)), 'no MAC: nothing to learn by');
    assert.equal(stranger.learning, false);
    // With its MAC, a guest without a declared address learns them by default; the rule file may
    // leave it open instead, and is told so.
    const learner = resolveVif(policy, { name: ifn('vif9.0'), bridge: ifn('xenbr0'), mac: mac('00:16:3e:00:00:09'), ipv4: [], ipv6: [] });
    assert.equal(learner.learning, true);
    assert.equal(learner.addressesOpen, false);
    const open = resolveVif(parsePolicy('version: 1\ndefaults:\n  learn_addresses: false\n', 'x.yaml'), { name: ifn('vif9.0'), bridge: ifn('xenbr0'), mac: mac('00:16:3e:00:00:09'), ipv4: [], ipv6: [] });
    assert.equal(open.learning, false);
    assert.equal(open.addressesOpen, true);
    assert.ok(open.warnings.some((w) => /learn_addresses: false and no address declared/.test(w)));
    // Learning that cannot run here (xtables without the ipset program) leaves it unchecked, says
    // why, and compiles no rule that reads a set nobody can make.
    const why = 'the ipset program is not installed (Debian package ipset), which address learning on the xtables backend needs';
    const blocked = resolveVif(policy, { name: ifn('vif9.0'), bridge: ifn('xenbr0'), mac: mac('00:16:3e:00:00:09'), ipv4: [], ipv6: [], learningUnavailable: why });
    assert.equal(blocked.learning, false);
    assert.equal(blocked.learningUnavailable, why);
    assert.ok(blocked.warnings.some((w) => w.includes(`its addresses cannot be learned: ${why}`)), blocked.warnings.join('\n'));
    assert.ok(!compile([blocked]).ipv4.chains.get('XN-S-vif9.0')?.some((r) => r.includes('--match-set')));
    assert.equal(driverFor('nftables').learningUnavailable(), undefined, 'nftables keeps bindings in its own sets');
    assert.equal(driverFor('xtables').learningUnavailable(), undefined, 'this machine has ipset (CI installs it)');
  });
});
