/**
 * Parses how the Xen toolstack calls a vif-script:
 *   libxl:     vif-xennet online|offline type_if=vif      (env: vif, XENBUS_PATH, netdev, script)
 *              vif-xennet add|remove type_if=tap         (env: INTERFACE=vif<D>.<N>-emu)
 *   xend/udev: vif-xennet online|offline [bridge=xenbr1 ...]
 * The command is the first word without `=`; VAR=VAL words may come before or after it.
 */
import { usageError } from '../sys/errors.js';
import { absolutePath } from '../xenstore/protocol.js';
import { checkIfname } from './validate.js';

export type VifCommand = 'online' | 'offline' | 'add' | 'remove';

export interface VifHookInput {
  command: VifCommand;
  typeIf: 'vif' | 'tap';
  /** The kernel device the toolstack created (vif<D>.<N> or vif<D>.<N>-emu). */
  device: string;
  /** Absolute backend path, /local/domain/0/backend/vif/<domid>/<devid>. */
  backendPath: string;
  domid: number;
  devid: number;
  /** VAR=VAL from the environment and then argv (argv wins), before xenstore is read. */
  vars: { bridge?: string; ip?: string };
}

export type ParsedVifCall = { kind: 'run'; input: VifHookInput } | { kind: 'ignore'; reason: string };

const commands = new Set<string>(['online', 'offline', 'add', 'remove']);
const backendPattern = /^\/local\/domain\/0\/backend\/vif\/(\d{1,5})\/(\d{1,5})$/;

/** The part of the input that exists even when the rest is malformed: where to report errors. */
export function backendPathFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const raw = env['XENBUS_PATH'];
  if (!raw) return undefined;
  const abs = absolutePath(raw);
  return backendPattern.test(abs) ? abs : undefined;
}

export function parseVifCall(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedVifCall {
  const vars = new Map<string, string>();
  let command: string | undefined;
  for (const word of argv) {
    const eq = word.indexOf('=');
    if (eq > 0 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(word.slice(0, eq))) vars.set(word.slice(0, eq), word.slice(eq + 1));
    else if (command === undefined) command = word;
  }
  if (command === undefined || !commands.has(command)) {
    throw usageError(command === undefined ? 'no command given' : `invalid command ${JSON.stringify(command)}`, 'the toolstack calls vif-xennet online|offline|add|remove');
  }
  const typeIf = vars.get('type_if') ?? 'vif';
  if (typeIf !== 'vif' && typeIf !== 'tap') throw usageError(`unknown interface type type_if=${JSON.stringify(typeIf)}`, 'type_if is vif or tap');
  if (typeIf === 'vif' && (command === 'add' || command === 'remove')) return { kind: 'ignore', reason: `${command} is for emulated (tap) NICs; nothing to do for type_if=vif` };
  if (typeIf === 'tap' && (command === 'online' || command === 'offline')) return { kind: 'ignore', reason: `${command} is for paravirtual vifs; nothing to do for type_if=tap` };

  let device: string;
  let backendPath: string;
  if (typeIf === 'vif') {
    device = checkIfname(env['vif'] ?? '', 'environment variable vif');
    const raw = env['XENBUS_PATH'];
    if (!raw) throw usageError('XENBUS_PATH is not set', 'the toolstack sets it to backend/vif/<domid>/<devid>');
    backendPath = absolutePath(raw);
  } else {
    device = checkIfname(env['INTERFACE'] ?? '', 'environment variable INTERFACE');
    const m = /^vif(\d+)\.(\d+)-emu$/.exec(device);
    if (!m) throw usageError(`INTERFACE ${JSON.stringify(device)} is not named vif<domid>.<devid>-emu`);
    backendPath = `/local/domain/0/backend/vif/${m[1]}/${m[2]}`;
  }
  const bm = backendPattern.exec(backendPath);
  if (!bm) throw usageError(`XENBUS_PATH ${JSON.stringify(backendPath)} is not backend/vif/<domid>/<devid>`);
  const input: VifHookInput = { command: command as VifCommand, typeIf, device, backendPath, domid: Number(bm[1]), devid: Number(bm[2]), vars: {} };
  // Precedence: environment < argv (xenstore, read later, wins over both).
  for (const key of ['bridge', 'ip'] as const) {
    const value = vars.get(key) ?? env[key];
    if (value !== undefined && value !== '') input.vars[key] = value;
  }
  return { kind: 'run', input };
}
