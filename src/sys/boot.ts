/** The kernel's boot id: state written before the last reboot describes kernel state that is gone. */
import { readFileSync } from 'node:fs';

/** Read once: a process does not outlive its boot (locks and records asked for it on every check). */
let known: string | undefined;

export function currentBootId(): string {
  if (known !== undefined) return known;
  try {
    known = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    known = 'unknown';
  }
  return known;
}
