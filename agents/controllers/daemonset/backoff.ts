// The back-off between replacements of a daemon pod that keeps failing on a
// node (Kubernetes' failedPodsBackoff, a flowcontrol.Backoff of 1 s doubling
// to 15 min per DaemonSet and node): the first failed pod is deleted at
// once, the next only after the current delay since the previous deletion.
// An entry idle for twice the maximum starts again from the initial delay.

export const FAILED_POD_BACKOFF_INITIAL_MS = 1000;
export const FAILED_POD_BACKOFF_MAX_MS = 15 * 60_000;

export class FailedPodBackoff {
  private readonly entries = new Map<string, { delay: number; last: number }>();

  constructor(private readonly initialMs = FAILED_POD_BACKOFF_INITIAL_MS, private readonly maxMs = FAILED_POD_BACKOFF_MAX_MS) {}

  /** How long `id` must still wait (ms) before its next deletion; 0 when it may go now. */
  remaining(id: string, now: number): number {
    const e = this.entries.get(id);
    if (!e) return 0;
    return Math.max(0, e.last + e.delay - now);
  }

  /** Records a deletion now: the delay starts at the initial one, or doubles (capped). */
  next(id: string, now: number): void {
    const e = this.entries.get(id);
    if (!e || now - e.last > 2 * this.maxMs) this.entries.set(id, { delay: this.initialMs, last: now });
    else this.entries.set(id, { delay: Math.min(e.delay * 2, this.maxMs), last: now });
  }

  /** Drops entries idle for more than twice the maximum. */
  gc(now: number): void {
    for (const [id, e] of this.entries) if (now - e.last > 2 * this.maxMs) this.entries.delete(id);
  }
}
