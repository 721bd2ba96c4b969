/**
 * JSON requests on the daemon's socket: `{"v":1,"cmd":"stats"|"reload"|"status"|"metrics"|"drops"|"plan"|"apply",
 * "rules"?: "/path", "rulesAbsentOk"?: true, "fresh"?: true, "render"?: {...}}`, one line. `fresh` (status): read
 * everything now, not what the daemon remembers (daemon/status-cache.ts). `render` (status): answer
 * with the text the CLI prints and its exit code (status/status-outcome.ts), not the status. `rulesAbsentOk`: the client did not name
 * the file (it is the default path), so a missing one means the built-in defaults; a named file
 * that is missing is an error. The CLI's status, plan and apply run here when the daemon runs,
 * under the daemon's lock queue, so its state and the CLI's never race.
 */
import { loadPolicy, rulesSource } from '../config/load.js';
import { XennetError, reasonOf } from '../sys/errors.js';
import type { DaemonContext } from './server.js';
import type { PlanResult } from '../firewall/cli-plan.js';
import type { NetSnapshot } from '../firewall/session.js';
import { answeredStatus, parseStatusForm, statusOutcome } from '../status/status-outcome.js';

export type JsonResult = { ok: true; result: unknown } | { ok: false; bad?: boolean; error: { code: string; message: string; hint?: string } };

const bad = (message: string): JsonResult => ({ ok: false, bad: true, error: { code: 'usage', message } });

export async function handleJsonRequest(d: DaemonContext, line: string): Promise<JsonResult> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch (e) {
    return bad(`not JSON: ${reasonOf(e)}`);
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return bad('a request is a JSON object');
  const r = req as Record<string, unknown>;
  if (r['v'] !== 1) return bad('unknown protocol version (want "v": 1)');
  const rules = r['rules'];
  if (rules !== undefined && (typeof rules !== 'string' || !rules.startsWith('/') || rules.length > 4096 || rules.includes('\0'))) return bad('"rules" is an absolute path');
  const absentFlag = r['rulesAbsentOk'];
  if (absentFlag !== undefined && typeof absentFlag !== 'boolean') return bad('"rulesAbsentOk" is true or false');
  const own = rulesSource(undefined, d.env);
  const source = typeof rules === 'string' ? { file: rules, absentOk: absentFlag === true } : own;
  const file = source.file;
  try {
    switch (r['cmd']) {
      case 'stats':
        return { ok: true, result: d.stats() };
      case 'metrics':
        return { ok: true, result: { text: await d.metricsText() } };
      case 'drops': {
        // Every guest's: the CLI picks one guest's out (cli/commands/drops.ts), as status finds it.
        const after = r['after'] ?? 0;
        if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) return bad('"after" is a sequence number');
        return { ok: true, result: d.dropsSince(after) };
      }
      case 'reload':
        d.policy.reload('requested');
        return { ok: true, result: d.stats() };
      case 'status': {
        const fresh = r['fresh'];
        if (fresh !== undefined && typeof fresh !== 'boolean') return bad('"fresh" is true or false');
        // `render`: the CLI's quick path asks for the text it prints (cli/quick-status.ts).
        const form = r['render'] === undefined ? undefined : parseStatusForm(r['render']);
        if (typeof form === 'string') return bad(form);
        const answer = await d.statusCache.get(source, fresh === true);
        const result = { status: answer.status, daemon: d.stats(), read: { at: answer.asOf, remembered: answer.remembered } };
        return { ok: true, result: form ? { rendered: statusOutcome(answeredStatus(result), form) } : result };
      }
      case 'plan':
      case 'apply': {
        const apply = r['cmd'] === 'apply';
        if (apply && file !== d.policy.file) return { ok: false, error: { code: 'refused', message: `the daemon enforces ${d.policy.file}; it does not apply ${file}`, hint: 'apply the daemon\'s rule file, or stop the daemon to apply another' } };
        const { hostPlan } = await import('../firewall/cli-plan.js');
        const planNow = (snapshot: NetSnapshot | undefined) => hostPlan(loadPolicy(file, { absentOk: source.absentOk }), { apply: false, env: d.env, ...(snapshot ? { snapshot } : {}) });
        const answered = (a: { result: PlanResult; asOf?: string }, applied?: true): PlanResult => ({ ...a.result, ...(applied ? { applied: { tables: [] } } : {}), ...(a.asOf !== undefined ? { asOf: a.asOf } : {}) });
        if (!apply) return { ok: true, result: answered(await d.statusCache.plan(source, planNow)) };
        // An apply: under the hotplug lock (no hook commits meanwhile), answered from a plan
        // with nothing to change made for the host as it is now, else applied.
        const held = await d.lock.acquire('iptables', { env: d.env });
        let result: PlanResult;
        try {
          const known = await d.statusCache.nothingToChange(source);
          result = known ? answered(known, true) : await hostPlan(loadPolicy(file, { absentOk: source.absentOk }), { apply: true, env: d.env, acquireLock: () => Promise.resolve({ path: held.path, release: () => {} }) });
          if (!known) d.statusCache.refreshPlan(source, planNow);
        } finally {
          held.release();
        }
        d.policy.reload('applied', { applied: true });
        return { ok: true, result };
      }
      default:
        return bad(`unknown command ${JSON.stringify(String(r['cmd'])).slice(0, 40)}`);
    }
  } catch (e) {
    if (e instanceof XennetError) return { ok: false, error: e.toJSON() };
    throw e;
  }
}
