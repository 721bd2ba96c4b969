/**
 * Logging to stderr, one line per event, prefixed with the program's tag (the hook name or
 * `xennet`). Levels follow syslog's names. `--quiet` raises the threshold to warnings.
 */

import { fireAndForget } from './exec.js';

export type LogLevel = 'debug' | 'info' | 'warning' | 'err';
const rank: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, err: 3 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warning(msg: string): void;
  err(msg: string): void;
}

export interface LoggerOptions {
  tag: string;
  level?: LogLevel;
  write?: (line: string) => void;
  /** Also send each line to syslog (facility daemon) through logger(1), like Xen's scripts. */
  syslog?: boolean;
}

export function createLogger(options: LoggerOptions): Logger {
  const threshold = rank[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (level: LogLevel, msg: string): void => {
    if (rank[level] < threshold) return;
    const prefix = level === 'info' ? '' : `${level === 'err' ? 'error' : level}: `;
    write(`${options.tag}: ${prefix}${msg}`);
    if (options.syslog) fireAndForget('logger', ['-t', options.tag, '-p', `daemon.${level}`, '--', msg]);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warning: (m) => emit('warning', m),
    err: (m) => emit('err', m),
  };
}

/** A logger that drops everything (for library callers and unit tests). */
export const silentLogger: Logger = { debug: () => undefined, info: () => undefined, warning: () => undefined, err: () => undefined };
