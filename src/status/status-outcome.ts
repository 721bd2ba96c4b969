/**
 * What `xennet status` (the whole host) prints of the daemon's answer, and its exit code: the
 * same whether the CLI renders it or the daemon renders it for the CLI's quick path
 * (cli/quick-status.ts), which then loads neither the renderer nor the command line parser.
 */
import type { DaemonStats } from '../daemon/server.js';
import { ExitCode } from '../sys/errors.js';
import { learningProblems, withDaemon } from './daemon-problems.js';
import type { HostStatus } from './host-status.js';
import { renderHostStatus } from './render.js';

/** How the CLI shows it: JSON (--json), else text in its terminal's width and colour. */
export interface StatusForm {
  json: boolean;
  color: boolean;
  width: number;
}

/** A daemon's status answer with what the daemon adds to it (its rule file, learning guests it does not listen for). */
export function answeredStatus(a: { status: HostStatus; daemon: DaemonStats; read?: HostStatus['read'] }): HostStatus {
  return learningProblems(withDaemon(a));
}

/** The text printed (without its final newline) and the exit code. */
export function statusOutcome(s: HostStatus, form: StatusForm): { text: string; exitCode: number } {
  return { text: form.json ? JSON.stringify(s, null, 2) : renderHostStatus(s, form.color, form.width), exitCode: s.ok ? ExitCode.ok : ExitCode.error };
}

/** A form from a request (hostile until checked), or a reason it is not one. */
export function parseStatusForm(raw: unknown): StatusForm | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return '"render" is an object';
  const r = raw as Record<string, unknown>;
  if (typeof r['json'] !== 'boolean' || typeof r['color'] !== 'boolean') return '"render" has "json" and "color", true or false';
  const width = r['width'];
  if (typeof width !== 'number' || !Number.isInteger(width) || width < 20 || width > 1000) return '"render"."width" is a whole number of columns from 20 to 1000';
  return { json: r['json'], color: r['color'], width };
}
