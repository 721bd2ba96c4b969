/** The kernel's boot id: state written before the last reboot describes kernel state that is gone. */
import { readFileSync } from 'node:fs';

export function currentBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}
