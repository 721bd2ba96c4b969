/**
 * Text from outside (domain names, xenstore values, rule-file keys) shown to a person: no raw
 * control character, line break or bidirectional override ever reaches a terminal or a log line.
 */

/** C0 and C1 controls, DEL, line/paragraph separators, and bidi embedding/override/isolate marks. */
// eslint-disable-next-line no-control-regex
const unsafe = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function hasUnsafeChars(s: string): boolean {
  unsafe.lastIndex = 0;
  return unsafe.test(s);
}

/** The string with every unsafe character written as a \u escape; otherwise unchanged. */
export function printable(s: string): string {
  return s.replace(unsafe, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A value quoted for a message: JSON-style quotes, unsafe characters escaped, long values cut.
 * Backslashes are escaped first, so that a value cannot end the quote early (`\"`) or pass for
 * an escaped character (`\u001b` written out).
 */
export function shown(s: string, max = 80): string {
  const cut = s.length > max ? `${s.slice(0, max)}...` : s;
  return `"${printable(cut.replace(/\\/g, '\\\\')).replace(/"/g, '\\"')}"`;
}
