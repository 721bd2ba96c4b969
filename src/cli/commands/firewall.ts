/** `xennet plan`, `xennet apply`, `xennet check`, `xennet schema`: the guest firewall. */
import type { Argv, CommandModule } from 'yargs';
import { resolve } from 'node:path';
import type { PlanResult } from '../../firewall/cli-plan.js';
import { ExitCode, XennetError } from '../../sys/errors.js';
import { runCommand } from '../run-command.js';

interface RulesArgs {
  rules?: string;
  json: boolean;
}

interface PlanArgs extends RulesArgs {
  offline: boolean;
  vif?: string[];
}

const rulesOption = (y: Argv): Argv<RulesArgs> =>
  y
    .option('rules', { type: 'string', describe: 'rule file (default $XENNET_RULES, else /etc/xen/xennet.yaml)' })
    .option('json', { type: 'boolean', default: false, describe: 'print machine-readable JSON' }) as unknown as Argv<RulesArgs>;

async function planOutcome(argv: PlanArgs, apply: boolean) {
  // The planner itself (compiling, reading the host) is loaded only where this process plans: not when the daemon answers.
  const [{ rulesRequest, rulesSource }, view] = await Promise.all([import('../../config/paths.js'), import('../../firewall/plan-view.js')]);
  const planner = () => import('../../firewall/cli-plan.js');
  const source = rulesSource(argv.rules);
  const file = resolve(source.file);
  const load = async () => (await import('../../config/load.js')).loadPolicy(file, { absentOk: source.absentOk });
  let result: PlanResult;
  if (argv.offline) {
    result = (await planner()).offlinePlan(await load(), argv.vif ?? []);
  } else {
    // When the daemon runs, it plans and applies (under its lock queue: never racing its hooks).
    const { askDaemon, unwrap } = await import('../../daemon/client.js');
    const answer = await askDaemon(process.env, rulesRequest(apply ? 'apply' : 'plan', source));
    result = answer ? (unwrap(answer) as PlanResult) : await (await planner()).hostPlan(await load(), { apply, progress: process.stderr.isTTY === true });
  }
  const text = view.renderPlanView(result, { apply, color: (await import('../terminal.js')).colorWanted(process.env, process.stdout.isTTY === true) });
  const exitCode = apply ? ExitCode.ok : result.pending ? ExitCode.pending : ExitCode.ok;
  return { json: result, text, exitCode };
}

export const planCommand: CommandModule<object, PlanArgs> = {
  command: 'plan',
  describe: 'show what apply would change in the guest firewall (exit 0: nothing, 2: changes pending, 1: error)',
  builder: (y) =>
    rulesOption(y)
      .option('offline', { type: 'boolean', default: false, describe: 'compile without root or kernel state, against --vif or the guests in the file' })
      .option('vif', { type: 'string', array: true, describe: 'with --offline: a vif as NAME=DOMAIN[@BRIDGE], e.g. vif5.0=web01@xenbr0' })
      .example('$0 plan', 'live rules vs the rule file for the live vifs')
      .example('$0 plan --offline --rules new.yaml --vif vif5.0=web01', 'review a policy change in CI') as unknown as Argv<PlanArgs>,
  handler: (argv) =>
    runCommand(argv.json, () => {
      // A --vif the live plan would quietly not use: the live plan takes the host's own vifs.
      if (argv.vif !== undefined && !argv.offline) throw new XennetError('usage', '--vif describes a made-up vif for --offline; without --offline, plan compares the host\'s own vifs', { hint: 'add --offline, or drop --vif' });
      return planOutcome(argv, false);
    }),
};

export const applyCommand: CommandModule<object, RulesArgs> = {
  command: 'apply',
  describe: 'make the live guest firewall match the rule file for every live vif, then verify',
  builder: (y) => rulesOption(y).example('$0 apply', 'reconcile the whole host') as unknown as Argv<RulesArgs>,
  handler: (argv) => runCommand(argv.json, () => planOutcome({ ...argv, offline: false }, true)),
};

export const checkCommand: CommandModule<object, RulesArgs & { file?: string }> = {
  command: 'check [file]',
  describe: 'validate a rule file (file, line, column and key of every problem)',
  builder: (y) => rulesOption(y).positional('file', { type: 'string', describe: 'the rule file (default as --rules)' }).example('$0 check /etc/xen/xennet.yaml', '') as unknown as Argv<RulesArgs & { file?: string }>,
  handler: (argv) =>
    runCommand(argv.json, async () => {
      const { loadPolicy, rulesSource } = await import('../../config/load.js');
      const source = rulesSource(argv.file ?? argv.rules);
      const file = source.file;
      const loaded = loadPolicy(file, { absentOk: source.absentOk });
      const guests = Object.keys(loaded.policy.guests ?? {}).length;
      return {
        json: { file, valid: true, exists: loaded.fromFile, guests },
        text: loaded.fromFile ? `${file}: valid (${guests} guest${guests === 1 ? '' : 's'})` : `${file}: does not exist; the built-in defaults apply (anti-spoofing from xenstore)`,
      };
    }),
};

export const schemaCommand: CommandModule<object, object> = {
  command: 'schema',
  describe: 'print the JSON Schema of the rule file (for editors: yaml-language-server $schema)',
  handler: () =>
    runCommand(false, async () => {
      const { jsonSchema } = await import('../../config/schema.js');
      return { json: null, text: JSON.stringify(jsonSchema(), null, 2) };
    }),
};
