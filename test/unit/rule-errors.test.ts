/** Rule-file errors an editor would be proud of: sorted, in xennet's words, with "did you mean". */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadPolicy, parsePolicy, unclosedQuote, type ConfigProblem } from '../../src/config/load.js';
import { distance, nearest } from '../../src/config/suggest.js';
import { run } from '../../src/sys/exec.js';

const problems = (text: string): ConfigProblem[] => {
  try {
    parsePolicy(text, 'x.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  assert.fail('the file was accepted');
};

describe('rule-file errors', function () {
  it('misspelt keys and values get "did you mean"; problems come in the order of the file', function () {
    const p = problems('version: 1\ndefaults:\n  inbound: dorp\n  antispof: true\nguests:\n  web:\n    alow_in:\n      - proto: tcp\n    allow_out:\n      - proto: tpc\n');
    assert.deepEqual(
      p.map((x) => [x.line, x.path, x.message, x.suggestion]),
      [
        [3, 'defaults.inbound', 'must be one of "accept", "drop"', 'drop'],
        [4, 'defaults.antispof', 'unknown key "antispof"', 'antispoof'],
        [7, 'guests.web.alow_in', 'unknown key "alow_in"', 'allow_in'],
        [10, 'guests.web.allow_out[0].proto', 'must be one of "tcp", "udp", "icmp", "icmpv6", "any"', 'tcp'],
      ],
    );
    // Nothing near enough: no guess.
    assert.equal(problems('version: 1\ndefaults:\n  colour: blue\n')[0]!.suggestion, undefined);
  });

  it('no text of the validation library: numbers name their range, a number past every range is too large, wrong types say what is wanted', function () {
    const p = problems('version: 1\nguests:\n  web:\n    allow_in:\n      - proto: tcp\n        ports: []\n      - proto: icmp\n        icmp_types: [99999999999999999999]\n    ipv4: 5\n    interfaces:\n      - devid: 70000\n      - devid: 99999999999999999999\n');
    const text = p.map((x) => `${x.line}:${x.col} ${x.path}: ${x.message}`).join('\n');
    assert.match(text, /allow_in\[0\]\.ports: must not be empty/);
    assert.match(text, /interfaces\[0\]\.devid: must be at most 65535/);
    assert.match(text, /interfaces\[1\]\.devid: must be at most 65535/, 'past every range: said by its own bound, once');
    assert.equal(p.filter((x) => x.path.endsWith('interfaces[1].devid')).length, 1);
    assert.match(text, /icmp_types\[0\]: ICMP types are 0-254/, 'the schema\'s own words, once');
    assert.equal(p.filter((x) => x.path.endsWith('icmp_types[0]')).length, 1);
    assert.match(text, /guests\.web\.ipv4: must be a list, not 5/);
    assert.doesNotMatch(text, /Too big|Too small|Invalid input|expected|received|9007199254740991|Invalid key in record/, text);
  });

  it('an unterminated string is reported where it starts, not where the file ends', function () {
    const p = problems('version: 1\nguests:\n  web:\n    inbound: "drop\n    outbound: accept\n# the end\n');
    assert.deepEqual(p.map((x) => [x.line, x.col, x.message]), [[4, 14, 'YAML: this double-quoted string is never closed']]);
    assert.equal(unclosedQuote("a: 'it''s' # don't\nb: \"x\\\"y\"\n"), undefined, 'escapes and comments are not quotes');
    assert.equal(unclosedQuote("a: 'b\n"), 3);
  });

  it('a binary or non-UTF-8 file is refused in one line that says where', function () {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-ruleerr-'));
    try {
      const bin = join(dir, 'bin.yaml');
      writeFileSync(bin, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00]));
      assert.throws(() => loadPolicy(bin), (e: unknown) => e instanceof ConfigError && e.problems.length === 1 && /is not a text file: byte 0x00 at line 1, column 8 is a NUL/.test(e.message));
      const latin1 = join(dir, 'latin1.yaml');
      writeFileSync(latin1, Buffer.concat([Buffer.from('version: 1\n# caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
      assert.throws(() => loadPolicy(latin1), /is not a text file: byte 0xe9 at line 2, column 6 is not UTF-8/);
      const utf8 = join(dir, 'utf8.yaml');
      writeFileSync(utf8, 'version: 1\n# café, 日本\n');
      assert.equal(loadPolicy(utf8).policy.version, 1, 'the control: UTF-8 text is read');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('check --json lists every problem as {file, line, column, key, message, suggestion} in its error', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'xnt-ruleerr-'));
    try {
      const f = join(dir, 'x.yaml');
      writeFileSync(f, 'version: 1\ndefaults:\n  antispof: true\n');
      const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
      const r = await run(process.execPath, [cli, 'check', '--json', f]);
      assert.equal(r.code, 1);
      assert.deepEqual((JSON.parse(r.stdout) as { error: { problems: unknown } }).error.problems, [{ file: f, line: 3, column: 3, key: 'defaults.antispof', message: 'unknown key "antispof"', suggestion: 'antispoof' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('nearest: transpositions count once; long or distant words get nothing', function () {
    assert.equal(distance('dorp', 'drop'), 1);
    assert.equal(nearest('tpc', ['tcp', 'udp']), 'tcp');
    assert.equal(nearest('xyz', ['tcp', 'udp']), undefined);
    assert.equal(nearest('x'.repeat(100), ['tcp']), undefined);
  });
});
