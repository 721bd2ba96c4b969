/**
 * Parses how the Xen toolstack calls a vif-script:
 *   libxl:     vif-xennet online|offline type_if=vif      (env: vif, XENBUS_PATH, netdev, script)
 *              vif-xennet add|remove type_if=tap         (env: INTERFACE=vif<D>.<N>-emu)
 *   xend/udev: vif-xennet online|offline [bridge=xenbr1 ...]
 * The command is the first word without `=`; VAR=VAL words may come before or after it.
 *
 * The device is always derived from XENBUS_PATH (`backend/vif/<D>/<N>` -> `vif<D>.<N>`, the name
 * netback gives it; libxl sets `vif` to exactly that). The `vif` variable is only checked: xend's
 * udev path passes the device's current name, which after a rename is its `vifname`, so a `vif`
 * that differs from the device is accepted only when it equals the validated vifname.
 */
import { parseIfName, xenVifName, type IfName } from '../net/index.js';
import { usageError } from '../sys/errors.js';
import { absolutePath } from '../xenstore/protocol.js';

export type VifCommand = 'online' | 'offline' | 'add' | 'remove';

export interface VifHookInput {
  command: VifCommand;
  typeIf: 'vif' | 'tap';
  /** The kernel device the backend created: vif<D>.<N>, or vif<D>.<N>-emu for an emulated NIC. */
  device: IfName;
  /** The name the caller's environment gave (`vif` or `INTERFACE`); usually `device`. */
  envName: IfName;
  /** Absolute backend path, /local/domain/0/backend/vif/<domid>/<devid>. */
  backendPath: string;
  domid: number;
  devid: number;
  /** Raw VAR=VAL from the environment and then argv (argv wins), before xenstore is read. */
  vars: { bridge?: string; ip?: string };
}

export type ParsedVifCall = { kind: 'run'; input: VifHookInput } | { kind: 'ignore'; reason: string };

const commands = new Set<string>(['online', 'offline', 'add', 'remove']);
/** Domain ids of guests: 1 .. DOMID_FIRST_RESERVED-1; device ids as libxl writes them. */
const backendPattern = /^\/local\/domain\/0\/backend\/vif\/([1-9]\d{0,4})\/(0|[1-9]\d{0,4})$/;
const DOMID_FIRST_RESERVED = 0x7ff0;

function parseBackendPath(raw: string): { path: string; domid: number; devid: number } | undefined {
  const path = absolutePath(raw);
  const m = backendPattern.exec(path);
  if (!m) return undefined;
  const domid = Number(m[1]);
  const devid = Number(m[2]);
  if (domid >= DOMID_FIRST_RESERVED || devid > 65535) return undefined;
  return { path, domid, devid };
}

/** The part of the input that exists even when the rest is malformed: where to report errors. */
export function backendPathFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const raw = env['XENBUS_PATH'];
  return raw ? parseBackendPath(raw)?.path : undefined;
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
    throw usageError(command === undefined ? 'no command given' : `invalid command ${JSON.stringify(command).slice(0, 60)}`, 'the toolstack calls vif-xennet online|offline|add|remove');
  }
  const typeIf = vars.get('type_if') ?? 'vif';
  if (typeIf !== 'vif' && typeIf !== 'tap') throw usageError(`unknown interface type type_if=${JSON.stringify(typeIf).slice(0, 40)}`, 'type_if is vif or tap');
  if (typeIf === 'vif' && (command === 'add' || command === 'remove')) return { kind: 'ignore', reason: `${command} is for emulated (tap) NICs; nothing to do for type_if=vif` };
  if (typeIf === 'tap' && (command === 'online' || command === 'offline')) return { kind: 'ignore', reason: `${command} is for paravirtual vifs; nothing to do for type_if=tap` };

  const envVar = typeIf === 'vif' ? 'vif' : 'INTERFACE';
  const envName = parseIfName(env[envVar] ?? '', `environment variable ${envVar}`);
  let backend: ReturnType<typeof parseBackendPath>;
  const raw = env['XENBUS_PATH'];
  if (raw) {
    backend = parseBackendPath(raw);
    if (!backend) throw usageError(`XENBUS_PATH ${JSON.stringify(raw).slice(0, 100)} is not backend/vif/<domid>/<devid> of a guest`);
  } else if (typeIf === 'tap') {
    const m = /^vif(\d+)\.(\d+)-emu$/.exec(envName);
    backend = m ? parseBackendPath(`/local/domain/0/backend/vif/${m[1]}/${m[2]}`) : undefined;
    if (!backend) throw usageError(`INTERFACE ${JSON.stringify(envName)} is not named vif<domid>.<devid>-emu`);
  } else {
    throw usageError('XENBUS_PATH is not set', 'the toolstack sets it to backend/vif/<domid>/<devid>');
  }
  const device = xenVifName(backend.domid, backend.devid, typeIf === 'tap');
  const input: VifHookInput = { command: command as VifCommand, typeIf, device, envName, backendPath: backend.path, domid: backend.domid, devid: backend.devid, vars: {} };
  // Precedence: environment < argv (xenstore, read later, wins over both).
  for (const key of ['bridge', 'ip'] as const) {
    const value = vars.get(key) ?? env[key];
    if (value !== undefined && value !== '') input.vars[key] = value;
  }
  return { kind: 'run', input };
}
