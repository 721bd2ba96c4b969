/**
 * One error hierarchy for xennet. Every error has a stable code (for --json and tests), the exit
 * code the CLI uses, and a message that says what failed, on which object, why, and what to do.
 */

export const ExitCode = {
  ok: 0,
  error: 1,
  /** `plan`: changes pending. */
  pending: 2,
  usage: 64,
} as const;

export type ErrorCode =
  | 'usage' // bad command line or hook argv/env
  | 'invalid' // a value from outside (xenstore, env, argv, rule file) failed to parse
  | 'timeout' // a bounded wait ran out
  | 'refused' // preconditions not met; nothing was changed
  | 'netlink' // the kernel rejected a netlink request
  | 'step-failed' // a step of a multi-step change failed; completed steps were undone
  | 'state' // the state file is unreadable or inconsistent
  | 'locked' // another xennet holds the lock
  | 'exec' // a helper process failed
  | 'not-found' // what was named (a guest, a file) is not there
  | 'internal';

export class XennetError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown; exitCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'XennetError';
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? (code === 'usage' ? ExitCode.usage : ExitCode.error);
  }

  /** The message with its hint, as printed to a person. */
  describe(): string {
    return this.hint ? `${this.message}\n  hint: ${this.hint}` : this.message;
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string } {
    return this.hint ? { code: this.code, message: this.message, hint: this.hint } : { code: this.code, message: this.message };
  }
}

export function usageError(message: string, hint?: string): XennetError {
  return new XennetError('usage', message, hint === undefined ? {} : { hint });
}

export function refused(message: string, hint?: string): XennetError {
  return new XennetError('refused', message, hint === undefined ? {} : { hint });
}

/** Any thrown value as a readable one-line reason. */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
