/**
 * `sudo node dist/bench/steps.js`: one world of the simulated host (XNT_STEPS_GUESTS background
 * guests, default 1000, on XNT_STEPS_BACKEND, default nftables), and the commands of XNT_STEPS
 * run in it one after the other, each timed as the bench times it (whole process, GNU time). For
 * comparing two builds (run it in each, alternately) and for finding where the time goes.
 *
 * XNT_STEPS: a comma-separated list of `xennet` command lines (`apply`, `plan`, `status --json`),
 * `daemon` (start the daemon and wait 5 s), `stop-daemon`, `sleep<N>` (seconds). Default:
 * apply,apply,plan,status,daemon,status,status,plan,plan,apply.
 * XNT_STEPS_PROFILE=DIR: every command writes a CPU profile there (step<i>-<command>.cpuprofile),
 * the daemon too (daemon.cpuprofile, at its stop).
 */
import { join } from 'node:path';
import { DAEMON_NODE_FLAGS } from '../src/daemon/paths.js';
import { xennetCli } from '../src/sim/host.js';
import { buildWorld, destroyWorld, timedXennet } from './lib/world.js';

const guests = Number(process.env['XNT_STEPS_GUESTS'] ?? 1000);
const backend = process.env['XNT_STEPS_BACKEND'] === 'xtables' ? 'xtables' : 'nftables';
const steps = (process.env['XNT_STEPS'] ?? 'apply,apply,plan,status,daemon,status,status,plan,plan,apply').split(',').filter((s) => s !== '');
const profileDir = process.env['XNT_STEPS_PROFILE'];
const profile = (name: string): string[] => (profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []);

const world = await buildWorld({ tool: 'xennet', background: guests, backend });
process.stdout.write(`${guests} guests, ${backend}\n`);
try {
  for (const [i, step] of steps.entries()) {
    if (step === 'daemon') {
      await world.host.startDaemon(world.env, ['node', ...DAEMON_NODE_FLAGS, ...profile('daemon'), xennetCli, 'daemon']);
      await new Promise((r) => setTimeout(r, 5000));
      continue;
    }
    if (step === 'stop-daemon') {
      await world.host.stopDaemon();
      continue;
    }
    if (/^sleep\d+$/.test(step)) {
      await new Promise((r) => setTimeout(r, Number(step.slice(5)) * 1000));
      continue;
    }
    const args = step.split(' ');
    const r = await timedXennet(world, args, join(process.cwd(), 'dist/src/cli/main.js'), profile(`step${i + 1}-${args[0]}`));
    process.stdout.write(`${i + 1} ${step}: ${r.seconds.toFixed(2)} s, peak RSS ${Math.round(r.rssKiB / 1024)} MiB, exit ${r.code}\n`);
    if (r.code !== 0 && r.code !== 2) process.stdout.write(`${r.stderr.slice(0, 500)}\n`);
  }
} finally {
  await world.host.stopDaemon().catch(() => undefined);
  await destroyWorld(world);
}
