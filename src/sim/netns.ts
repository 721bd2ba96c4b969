/**
 * Namespace plumbing for the simulated Xen host. This builds the world around xennet (the LAN,
 * the guests, and netback's creation of vif devices), so it uses iproute2 like any test rig
 * would; xennet's own work on dom0 always goes through its netlink client. Names carry the
 * creating pid (`<prefix>-<pid>-<role>`) so leftovers of dead runs can be swept.
 */
import { readdirSync } from 'node:fs';
import { run, type ExecResult } from '../sys/exec.js';
import { XennetError } from '../sys/errors.js';
import { pidAlive } from '../sys/process.js';

export class SimNetns {
  constructor(readonly name: string) {}

  exec(file: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, file, ...args], options);
  }

  async ip(...args: string[]): Promise<string> {
    const r = await run('ip', ['-n', this.name, ...args]);
    if (r.code !== 0) throw new XennetError('exec', `ip -n ${this.name} ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Runs many `ip` commands in one process (`ip -batch`). */
  async batch(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const r = await run('ip', ['-n', this.name, '-force', '-batch', '-'], { input: lines.join('\n') + '\n', timeoutMs: 300_000 });
    if (r.code !== 0) throw new XennetError('exec', `ip -n ${this.name} -batch: ${r.stderr.trim().split('\n').slice(0, 3).join(' ')}`);
  }

  async ipJson<T>(...args: string[]): Promise<T> {
    const out = await this.ip('-j', ...args);
    return (out.trim() === '' ? [] : JSON.parse(out)) as T;
  }

  /**
   * Whether `target` answers: `count` probes, each waited for `waitSeconds`; with `withinSeconds`,
   * a probe a second until the first answer, for at most that long (a probe lost to a neighbour
   * entry being resolved again is tried again, and a reply ends it at once).
   */
  async ping(target: string, options: { count?: number; waitSeconds?: number; withinSeconds?: number; source?: string } = {}): Promise<boolean> {
    const count = options.count ?? 1;
    const wait = options.waitSeconds ?? 2;
    const args = options.withinSeconds !== undefined ? ['-n', '-q', '-c', '1', '-w', String(options.withinSeconds)] : ['-n', '-q', '-c', String(count), '-W', String(wait)];
    if (options.source) args.push('-I', options.source);
    const r = await this.exec('ping', [...args, target], { timeoutMs: options.withinSeconds !== undefined ? (options.withinSeconds + 2) * 1000 : (wait + 2) * count * 1000 });
    return r.code === 0;
  }
}

export async function addNetns(name: string): Promise<SimNetns> {
  const r = await run('ip', ['netns', 'add', name]);
  if (r.code !== 0) throw new XennetError('exec', `ip netns add ${name}: ${r.stderr.trim()}`);
  const ns = new SimNetns(name);
  await ns.ip('link', 'set', 'lo', 'up');
  return ns;
}

/**
 * Deletes a namespace and ends what still runs in it first (a daemon a hook started, a server a
 * test left): a deleted namespace lives on as long as a process is in it.
 */
export async function deleteNetns(name: string): Promise<void> {
  const r = await run('ip', ['netns', 'pids', name]);
  const pids = r.code === 0 ? r.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number) : [];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (let i = 0; i < 40 && pids.some((p) => pidAlive(p)); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  await run('ip', ['netns', 'delete', name]);
}


/** Deletes namespaces `<prefix>-<pid>-...` whose pid is dead (or all of them with `all`). */
export async function sweepNetns(prefix: string, all = false): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return [];
  }
  const swept: string[] = [];
  const re = new RegExp(`^${prefix}-(\\d+)-`);
  for (const name of names) {
    const m = re.exec(name);
    if (!m || (!all && pidAlive(Number(m[1])))) continue;
    await deleteNetns(name);
    swept.push(name);
  }
  return swept;
}
