/**
 * The firewall's core (compile, diff, render, the commit protocol's plans and reconcile, status's
 * names) asks the backend's driver and never assumes one: it runs on a fake driver it has never
 * seen, and its source names no backend.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { incrementalPlans, reconciledTable } from '../../src/firewall/commit.js';
import { compile, compileShared, compileVif } from '../../src/firewall/compile.js';
import { diffTable, render } from '../../src/firewall/diff.js';
import type { FirewallDriver, TableCodec } from '../../src/firewall/driver.js';
import { codecOf, driverFor, engineName, engineTables, parseLive, substituteDriver } from '../../src/firewall/drivers.js';
import { desiredFor } from '../../src/firewall/host.js';
import { emptyLive, type LiveTable } from '../../src/firewall/live.js';
import { emptyRuleSet, type Engine, type RuleSet, type TablePlan } from '../../src/firewall/model.js';
import type { IndexEntry } from '../../src/firewall/store.js';
import { cidr, ifn, mac } from './lib/values.js';

const ENGINE: Engine = { kind: 'nftables', conntrack: 'mark' };

/** A driver that writes one line per guest and one shared line, in a language of its own (JSON). */
function fakeDriver(): FirewallDriver & { recorded: TablePlan[] } {
  const recorded: TablePlan[] = [];
  const only = (chains: [string, string[]][]): RuleSet => ({ ...emptyRuleSet(), nftables: { chains: new Map(chains), roots: [] } });
  const codec: TableCodec = {
    dialect: 'nft',
    label: 'fake',
    parse: (text) => ({ ...emptyLive(), chains: new Map(text === '' ? [] : (JSON.parse(text) as [string, string[]][])) }),
    render: (plan) => JSON.stringify({ write: [...plan.write], remove: plan.remove }),
    emptyChain: (chain) => JSON.stringify({ write: [[chain, []]], remove: [] }),
    completePlan: (plan) => {
      plan.wake = ['bridge'];
    },
    completeRecordedPlan: (plan) => {
      plan.expectTable = true;
      recorded.push(plan);
    },
    chainKind: (chain) => ({ guard: chain === 'FAKE-GUARD', elements: false }),
    dropReason: (_chain, rule) => (rule === 'DROP' ? 'out' : undefined),
    // A guest shows by its own line only.
    liveGuests: (live) => new Set([...live.chains.keys()].filter((c) => c.startsWith('XN-O-')).map((c) => c.slice(5))),
    adoptedFacts: (live, vif) => ({ isolated: (live.chains.get(`XN-O-${vif}`) ?? []).some((r) => r.endsWith(' isolated')), learning: false }),
  };
  return {
    kind: 'nftables',
    tables: ['nftables'],
    describe: () => 'fake backend',
    summary: () => 'fake',
    compileVif: (v) => only([[`XN-O-${v.name}`, [`guest ${v.name}${v.isolation ? ' isolated' : ''}`]]]),
    compileShared: (members) => (members.length === 0 ? emptyRuleSet() : only([['FAKE-SHARED', members.map((m) => `member ${m.name}`)]])),
    warnings: (v) => [`fake cannot check ${v.name}`],
    bridgeNetfilter: { wanted: { 'net.bridge.bridge-nf-call-iptables': '0', 'net.bridge.bridge-nf-call-ip6tables': '0', 'net.bridge.bridge-nf-filter-vlan-tagged': '0', 'net.bridge.bridge-nf-filter-pppoe-tagged': '0' }, risk: '' },
    learningUnavailable: () => 'the fake learns nothing',
    compat: async () => undefined,
    learned: { write: async () => undefined, list: async () => [] },
    changesShowInGeneration: false,
    bindingsInRules: false,
    statusFindings: async () => ({ problems: [], notes: [] }),
    claimDrops: () => () => ({ packets: 0, bytes: 0 }),
    codecs: { nftables: codec },
    adoptionTables: [],
    adoptedAcrossTables: () => ({ isolated: false }),
    recorded,
  };
}

const facts = (name: string): Parameters<typeof desiredFor>[1][number] => ({ name: ifn(name), bridge: ifn('xenbr0'), mac: mac('00:16:3e:00:00:05'), ipv4: [cidr('192.168.0.5')], ipv6: [] });
const entry = (isolated = false): IndexEntry => ({ bridge: ifn('xenbr0'), inbound: false, isolated, state: 'installed' });

describe('firewall drivers', function () {
  describe('the core on a driver it has never seen', function () {
    let restore: () => void;
    let fake: ReturnType<typeof fakeDriver>;
    beforeEach(() => {
      fake = fakeDriver();
      restore = substituteDriver(fake);
    });
    afterEach(() => restore());

    it('compiles, warns, names and diffs through the driver, and writes in its language', function () {
      const state = desiredFor({ version: 1 }, [facts('vif2.0'), facts('vif1.0')], ENGINE);
      assert.deepEqual([...state.desired.nftables.chains], [['FAKE-SHARED', ['member vif1.0', 'member vif2.0']], ['XN-O-vif1.0', ['guest vif1.0']], ['XN-O-vif2.0', ['guest vif2.0']]]);
      assert.ok(state.warnings.includes('vif1.0: fake cannot check vif1.0'), state.warnings.join('\n'));
      assert.equal(engineName(ENGINE), 'fake backend');
      assert.deepEqual(engineTables(ENGINE), ['nftables']);
      assert.deepEqual(compileVif(state.resolved[0]!, ENGINE).ipv4.chains.size, 0, 'nothing in tables the driver does not own');
      const live = parseLive(JSON.stringify([['XN-O-vif1.0', ['guest vif1.0']], ['XN-O-vif9.0', ['old']]]), 'nftables');
      const plan = diffTable(live, state.desired.nftables, 'nftables');
      assert.deepEqual(plan.wake, ['bridge'], "the driver's completion of the plan");
      assert.deepEqual(JSON.parse(render(plan, 'nftables')), { write: [['FAKE-SHARED', ['member vif1.0', 'member vif2.0']], ['XN-O-vif2.0', ['guest vif2.0']]], remove: ['XN-O-vif9.0'] });
      assert.equal(codecOf('nftables').label, 'fake');
    });

    it('plans a change from the record and reconciles a table from the live rules through the driver', function () {
      const v = desiredFor({ version: 1 }, [facts('vif3.0')], ENGINE).resolved[0]!;
      const plans = incrementalPlans({ 'vif1.0': entry() }, { 'vif1.0': entry(), 'vif3.0': entry() }, emptyRuleSet(), compileVif(v, ENGINE), ENGINE);
      assert.equal(fake.recorded.length, 1, 'a change from the record: the driver completes it');
      assert.equal(plans.nftables.expectTable, true);
      assert.deepEqual(plans.nftables.write.get('FAKE-SHARED'), ['member vif1.0', 'member vif3.0']);
      // A guest with live rules and no record is adopted with what the driver reads of it.
      const live: LiveTable = parseLive(JSON.stringify([['XN-O-vif7.0', ['guest vif7.0 isolated']]]), 'nftables');
      const adopted: Record<string, IndexEntry> = {};
      const desired = reconciledTable(live, 'nftables', {}, () => undefined, new Set(), adopted, undefined, ENGINE);
      assert.deepEqual(Object.keys(adopted), ['vif7.0']);
      assert.equal(adopted['vif7.0']!.isolated, true);
      assert.deepEqual(desired.chains.get('XN-O-vif7.0'), ['guest vif7.0 isolated'], 'its live chain is kept');
      assert.deepEqual(compileShared([], ENGINE), emptyRuleSet());
      assert.deepEqual([...compile([], ENGINE).nftables.chains], []);
    });

    it('is the driver of its kind only while substituted', function () {
      assert.equal(driverFor('nftables'), fake);
      restore();
      assert.notEqual(driverFor('nftables'), fake);
      restore = substituteDriver(fake);
    });
  });

  describe('the source', function () {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src');
    const files = (dir: string): string[] => readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : f.endsWith('.ts') ? [join(dir, f)] : []));
    const all = files(root);

    it('of the backend-neutral core names no backend to branch on', function () {
      // model.ts declares the tables and kinds, engine.ts chooses one, store.ts reads the recorded
      // one, drivers.ts is the registry: everywhere else a backend's particulars are its driver's.
      const declaring = new Set(['firewall/model.ts', 'firewall/engine.ts', 'firewall/store.ts', 'firewall/drivers.ts'].map((f) => join(root, f)));
      const core = all.filter((f) => !/\/firewall\/(xtables|nftables)\//.test(f) && !declaring.has(f));
      assert.ok(core.length > 50, `the core is read (${core.length} files)`);
      const branch = /[!=]==\s*'(nftables|xtables)'|'(nftables|xtables)'\s*[!=]==|\.(nftables|ebnat|ipv4raw|ipv6raw)\b\./;
      const found = core.flatMap((f) => readFileSync(f, 'utf8').split('\n').map((l, i) => [f, i + 1, l] as const)).filter(([, , l]) => branch.test(l) && !/^\s*(\*|\/\/)/.test(l));
      assert.deepEqual(found.map(([f, n, l]) => `${f.slice(root.length + 1)}:${n}: ${l.trim()}`), []);
    });

    /** Each module's imports that load code (type-only imports are erased); `lazy`: with `import()`. */
    const importsOf = (lazy: boolean): Map<string, string[]> => {
      const deps = new Map<string, string[]>();
      for (const f of all) {
        const text = readFileSync(f, 'utf8');
        const out: string[] = [];
        for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?([^;]*?)from\s+'([^']+)';/gm)) {
          if (m[1] || /^\{\s*(type\s+\w+\s*,?\s*)+\}\s*$/.test(m[2]!)) continue; // types only: erased
          out.push(m[3]!.startsWith('.') ? normalize(join(dirname(f), m[3]!.replace(/\.js$/, '.ts'))) : m[3]!);
        }
        if (lazy) for (const m of text.matchAll(/import\('(\.[^']+)\.js'\)/g)) out.push(normalize(join(dirname(f), `${m[1]!}.ts`)));
        deps.set(f, out);
      }
      return deps;
    };

    /** The modules `from` loads before any dynamic import, each with the module that loaded it. */
    const staticClosure = (from: string): Map<string, string> => {
      const deps = importsOf(false);
      const loaded = new Map<string, string>([[join(root, from), '']]);
      const queue = [join(root, from)];
      for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
        for (const d of deps.get(f) ?? []) {
          if (loaded.has(d)) continue;
          loaded.set(d, f);
          if (deps.has(d)) queue.push(d);
        }
      }
      return loaded;
    };
    const chainTo = (loaded: Map<string, string>, m: string): string[] => (m === '' || !loaded.has(m) ? [] : [m.startsWith(root) ? m.slice(root.length + 1) : m, ...chainTo(loaded, loaded.get(m) ?? '')]);

    it('of the CLI loads the netlink binding only for a command that needs it (not `status` through the daemon)', function () {
      // The native addon and its generated structs cost the CLI about 30 ms at every start.
      const loaded = staticClosure('cli/command-line.ts');
      assert.ok(loaded.size > 10, `the CLI's modules are followed (${loaded.size})`);
      assert.deepEqual(chainTo(loaded, 'netlink'), []);
    });

    it('of the CLI answers `status` through the daemon before loading the command line parser or the renderer', function () {
      // At 1000 guests, yargs (25 ms), the command modules (20 ms) and the renderer (17 ms) were
      // most of what `status` through the daemon cost beyond Node's start.
      const loaded = staticClosure('cli/main.ts');
      assert.ok(loaded.has(join(root, 'cli/quick-status.ts')) && loaded.has(join(root, 'daemon/client.ts')), `the entry's modules are followed (${[...loaded.keys()].join(', ')})`);
      for (const m of ['yargs', 'netlink', 'yaml', 'zod', join(root, 'status/render.ts'), join(root, 'cli/command-line.ts')]) assert.deepEqual(chainTo(loaded, m), [], m);
      assert.ok(loaded.size <= 12, `a handful of modules: ${[...loaded.keys()].join(', ')}`);
    });

    it('has no import cycle', function () {
      const deps = importsOf(true);
      // Depth-first, each module once; a module met again while it is on the path closes a cycle.
      const state = new Map<string, 'open' | 'done'>();
      const cycles: string[] = [];
      const visit = (f: string, path: string[]): void => {
        state.set(f, 'open');
        for (const d of deps.get(f) ?? []) {
          if (!deps.has(d)) continue;
          if (state.get(d) === 'open') cycles.push([...path.slice(path.indexOf(d)), d].map((p) => p.slice(root.length + 1)).join(' -> '));
          else if (!state.has(d)) visit(d, [...path, d]);
        }
        state.set(f, 'done');
      };
      for (const f of all) if (!state.has(f)) visit(f, [f]);
      assert.deepEqual(cycles, []);
    });
  });
});
