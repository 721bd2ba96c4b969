/**
 * What `xennet status GUEST` gathers beyond the host's status: the policy in force explained
 * from the rule file's text (or the last good one, when the file cannot be used), the record of
 * hook calls, and the plan (through the daemon when it runs, as `xennet plan` does).
 */
import { resolve } from 'node:path';
import { ConfigError, keyLines, loadPolicy, parsePolicy, type RulesSource } from '../config/load.js';
import { lastGoodText } from '../config/policy-cache.js';
import { rulesRequest } from '../config/paths.js';
import type { PolicyFile } from '../config/schema.js';
import type { PlanResult } from '../firewall/cli-plan.js';
import { readHookCalls } from '../hooks/hook-journal.js';
import { reasonOf, XennetError } from '../sys/errors.js';
import { explainPolicy } from '../status/guest-policy.js';
import { callOf, guestVifs, guestView, type GuestView } from '../status/guest-view.js';
import type { HostStatus, VifStatus } from '../status/host-status.js';

/** How many of its last hook calls are read (each interface's last one decides whether it failed). */
const HOOK_CALLS_READ = 100;

export async function guestScreen(query: string, status: HostStatus, source: RulesSource, daemonRuns: boolean, env: NodeJS.ProcessEnv = process.env): Promise<GuestView> {
  const vifs = guestVifs(status, query);
  const file = resolve(source.file);
  const first = vifs.find((v) => v.domain === query) ?? vifs[0]!;

  // The daemon's last good policy is the one in force only for the file it enforces.
  const daemonKept = status.daemon?.running === true && status.daemon.policy.state === 'kept' && resolve(status.daemon.policy.file) === file;
  const policy = policyInForce(source, env, daemonKept, first);

  // Its interfaces' hook calls (a renamed vif's too): enough of them that each interface's last
  // one is among them (a failed one is a problem), the last ten shown.
  const hooks = readHookCalls(env, (r) => vifs.some((v) => callOf(v, r)), HOOK_CALLS_READ);

  let plan: PlanResult | { error: string };
  try {
    if (daemonRuns) {
      const { askDaemon, unwrap } = await import('../daemon/client.js');
      const answer = await askDaemon(env, rulesRequest('plan', source), 120_000);
      if (!answer) throw new Error('the daemon did not answer');
      plan = unwrap(answer) as PlanResult;
    } else {
      const { hostPlan } = await import('../firewall/cli-plan.js');
      plan = await hostPlan(loadPolicy(file, { absentOk: source.absentOk }), { apply: false, env });
    }
  } catch (e) {
    plan = { error: e instanceof XennetError ? e.message : reasonOf(e) };
  }
  return guestView({ query, status, vifs, policy, hooks, plan });
}

/**
 * The policy in force for the guest, explained: the file's, or the last good one while the file
 * cannot be used (the daemon keeps it; so do the hooks without it, config/policy-cache.ts),
 * including a default-path file deleted while its policy was in force.
 */
export function policyInForce(source: RulesSource, env: NodeJS.ProcessEnv, daemonKept: boolean, first: VifStatus): GuestView['policy'] {
  const file = resolve(source.file);
  try {
    let text: string | undefined;
    let parsed: PolicyFile;
    let state: 'valid' | 'absent' | 'kept';
    let loaded = daemonKept ? undefined : tryLoad(file, source.absentOk);
    // A file deleted while its policy was in force: that policy stays, until the built-in defaults are recorded.
    if (loaded && !(loaded instanceof Error) && !loaded.fromFile && lastGoodText(file, env)) loaded = undefined;
    if (loaded && !(loaded instanceof Error)) {
      parsed = loaded.policy;
      text = loaded.text;
      state = loaded.fromFile ? 'valid' : 'absent';
    } else {
      const last = lastGoodText(file, env);
      if (!last) throw loaded ?? new XennetError('invalid', `the rule file ${file} cannot be used, and no last good policy is recorded`);
      text = last.text;
      parsed = parsePolicy(last.text, file);
      state = 'kept';
    }
    const facts = { policyName: first.policyName, devid: first.devid, mac: first.mac, addresses: first.addresses, addressSource: first.addressSource };
    return { file, state, ...explainPolicy(parsed, text !== undefined ? keyLines(text) : undefined, facts) };
  } catch (e) {
    return { file, error: e instanceof ConfigError ? `the rule file cannot be used: ${e.message}` : reasonOf(e) };
  }
}

function tryLoad(file: string, absentOk: boolean): ReturnType<typeof loadPolicy> | Error {
  try {
    return loadPolicy(file, { absentOk });
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}
