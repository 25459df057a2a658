// Kubernetes' ControllerExpectations (pkg/controller/controller_utils.go): a
// controller that has just asked for N creations or deletions must not act on
// its cache again until the cache has seen them, or a slow cache makes it
// create twice. Each owner key records how many adds/deletes are still
// unseen; reconciles that find the expectations unsatisfied do nothing but
// status. Expectations expire after five minutes, so a lost event (or a
// create the server refused) never blocks an owner forever.

export const EXPECTATIONS_TIMEOUT_MS = 5 * 60_000;

interface Expectation {
  add: number;
  del: number;
  at: number;
  /** Keys of objects whose deletion is awaited (UID-tracking expectations). */
  deleting: Set<string>;
}

export class ControllerExpectations {
  private readonly m = new Map<string, Expectation>();

  constructor(private readonly now: () => number = Date.now, private readonly timeoutMs = EXPECTATIONS_TIMEOUT_MS) {}

  /** Whether the owner's cache may be trusted: nothing awaited, everything seen, or the wait expired. */
  satisfied(key: string): boolean {
    const e = this.m.get(key);
    if (!e) return true;
    if (e.add <= 0 && e.del <= 0) return true;
    return this.now() - e.at > this.timeoutMs;
  }

  /** Await `n` creations (replaces earlier expectations of the key). */
  expectCreations(key: string, n: number): void {
    this.set(key, n, 0);
  }

  /** Await the deletion of these objects (their namespace/name keys). */
  expectDeletions(key: string, objectKeys: readonly string[]): void {
    this.set(key, 0, objectKeys.length, objectKeys);
  }

  /** Await both. */
  set(key: string, add: number, del: number, deleting: readonly string[] = []): void {
    this.m.set(key, { add, del, at: this.now(), deleting: new Set(deleting) });
  }

  /** The cache saw one of the owner's objects created (or a create failed and will not be seen). */
  creationObserved(key: string): void {
    const e = this.m.get(key);
    if (e) e.add--;
  }

  /**
   * The cache saw an object deleted (or a delete failed). With `objectKey`,
   * counts only if that object's deletion was awaited, so a deletion seen
   * twice (terminating, then gone) is counted once.
   */
  deletionObserved(key: string, objectKey?: string): void {
    const e = this.m.get(key);
    if (!e) return;
    if (objectKey !== undefined) {
      if (!e.deleting.delete(objectKey)) return;
    }
    e.del--;
  }

  /** Still awaited (for logs and tests). */
  pending(key: string): { add: number; del: number } | undefined {
    const e = this.m.get(key);
    return e && { add: e.add, del: e.del };
  }

  /** Forgets an owner (it was deleted). */
  delete(key: string): void {
    this.m.delete(key);
  }
}
