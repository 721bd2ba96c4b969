/** Whether a guest's backend is still in xenstore, for a hook about to write there. */
import type { Transaction } from '../xenstore/client.js';

/**
 * Whether the backend is still there: a node of its own besides what hooks write. Once the
 * toolstack has removed the device, a late hook (one xend stopped waiting for, and removed the
 * device of) writes nothing there: a write would make the backend again, a failed guest in every
 * `status` for good.
 */
export async function backendPresent(tx: Pick<Transaction, 'directory'>, backendPath: string): Promise<boolean> {
  return (await tx.directory(backendPath)).some((n) => n !== 'hotplug-status' && n !== 'hotplug-error');
}
