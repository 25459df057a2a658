// What a leader knows of one follower's log, and how it paces replication to
// it: probing one message at a time until it finds where the logs match,
// then pipelining up to a window of messages, or streaming a snapshot.
import type { Snapshot } from './types.ts';

export enum ProgressState {
  Probe = 'probe',
  Replicate = 'replicate',
  Snapshot = 'snapshot',
}

/** A bounded window of in-flight App messages, identified by their last index. */
export class Inflights {
  private buf: number[] = [];
  private head = 0;
  constructor(readonly size: number) {}

  get count(): number {
    return this.buf.length - this.head;
  }

  full(): boolean {
    return this.count >= this.size;
  }

  add(lastIndex: number): void {
    this.buf.push(lastIndex);
  }

  /** Frees every message whose last index is <= to (acknowledged). */
  freeLE(to: number): void {
    while (this.head < this.buf.length && this.buf[this.head] <= to) this.head++;
    if (this.head > 1024 && this.head * 2 > this.buf.length) {
      this.buf = this.buf.slice(this.head);
      this.head = 0;
    }
  }

  freeFirst(): void {
    if (this.count > 0) this.head++;
  }

  reset(): void {
    this.buf = [];
    this.head = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state = ProgressState.Probe;
  /** In Probe: an App was sent and no answer yet, so send no more until a heartbeat answer. */
  probeSent = false;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  readonly inflights: Inflights;

  // Snapshot streaming (state Snapshot): the snapshot being sent and how far.
  snap: Snapshot | undefined;
  snapSent = 0;
  snapAcked = 0;
  snapAckedAtLastHeartbeat = -1;

  constructor(next: number, maxInflight: number, public isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pending = this.snap ? this.snap.meta.index : 0;
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = ProgressState.Probe;
    this.probeSent = false;
    this.snap = undefined;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = ProgressState.Replicate;
    this.next = this.match + 1;
    this.probeSent = false;
    this.snap = undefined;
    this.inflights.reset();
  }

  becomeSnapshot(snap: Snapshot): void {
    this.state = ProgressState.Snapshot;
    this.snap = snap;
    this.snapSent = 0;
    this.snapAcked = 0;
    this.snapAckedAtLastHeartbeat = -1;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** An acknowledgement up to n; returns whether match moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * A rejection of the App sent at `rejected`; matchHint is where the follower
   * suggests to try next. Returns false for a stale rejection.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    // A follower whose log is now shorter than what it acknowledged lost a
    // torn tail at restart: believe it, or the probe would never go below match.
    if (matchHint < this.match) this.match = matchHint;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}
