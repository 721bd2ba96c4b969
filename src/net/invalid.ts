/**
 * The error every value parser throws: names the value (where it came from), shows it escaped,
 * and says what would be valid. Callers add context (a hook writes it as hotplug-error, the rule
 * file loader turns it into file:line:col).
 */
import { XennetError } from '../sys/errors.js';
import { shown } from './printable.js';

export class InvalidValue extends XennetError {
  /** The reason alone, without the value's origin (for callers that print the origin themselves). */
  readonly reason: string;
  constructor(what: string, raw: string, reason: string) {
    super('invalid', `${what} ${shown(raw)} ${reason}`);
    this.name = 'InvalidValue';
    this.reason = reason;
  }
}
