/**
 * One call at a time per vif backend, in the daemon: a hook's online, its offline, and the backend
 * watch's prepare and cleanup of the same backend run one after another. The toolstack starts an
 * offline when it gave up on the online (it killed the client at its timeout, not the call the
 * daemon runs); run side by side, the online's attach (after another call's batch committed its
 * rules, without the lock) could come after the offline removed them: a port on the bridge
 * without its firewall (found by the soak).
 */
export class BackendQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `fn` once every call queued before it for `key` has ended (whatever its outcome). */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const mine = before.then(fn, fn);
    const tail = mine.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return mine;
  }

  /** Backends with a call running or queued. */
  get busy(): number {
    return this.tails.size;
  }
}
