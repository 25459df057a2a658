// The in-memory view of one member's Raft log: a snapshot point followed by
// contiguous entries, with the indexes that say how far each part has gone
// (persisted, committed, handed to the application, applied). Entries before
// the latest snapshot are dropped; the driver keeps the durable copy.
import { type Entry, type Snapshot, entrySize } from './types.ts';

export class RaftLog {
  /** Index and term of the last entry covered by the snapshot (0/0 for none). */
  snapIndex = 0;
  snapTerm = 0;
  entries: Entry[] = [];
  committed = 0;
  /** Highest index handed out in a Ready's committedEntries. */
  applying = 0;
  /** Highest index the application confirmed applied (advance). */
  applied = 0;
  /** Highest index known to be on disk. */
  stable = 0;
  /**
   * Asynchronous storage writes: highest index handed to the driver to write
   * (>= stable once the write lands). unstableEntries() starts after it.
   */
  inProgress = 0;
  /** False with asynchronous storage writes: committed entries are handed out only once durable here (so compaction never drops an entry still being written). */
  applyUnstable = true;
  /** A snapshot received from the leader that is yet to be persisted and applied. */
  unstableSnapshot: Snapshot | undefined;

  lastIndex(): number {
    return this.snapIndex + this.entries.length;
  }

  firstIndex(): number {
    return this.snapIndex + 1;
  }

  lastTerm(): number {
    const n = this.entries.length;
    return n ? this.entries[n - 1].term : this.snapTerm;
  }

  /** The term of entry i, or -1 when it is compacted away or beyond the end. */
  term(i: number): number {
    if (i === this.snapIndex) return this.snapTerm;
    if (i < this.snapIndex || i > this.lastIndex()) return -1;
    return this.entries[i - this.snapIndex - 1].term;
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Appends entries that may overwrite a suffix; the new first index must be <= lastIndex+1. */
  append(ents: Entry[]): void {
    if (!ents.length) return;
    const first = ents[0].index;
    if (first <= this.committed) throw new Error(`raft: append at ${first} would overwrite committed ${this.committed}`);
    if (first > this.lastIndex() + 1) throw new Error(`raft: append at ${first} leaves a gap after ${this.lastIndex()}`);
    const keep = first - this.snapIndex - 1;
    if (keep < this.entries.length) this.entries.length = keep;
    for (const e of ents) this.entries.push(e);
    if (this.stable >= first) this.stable = first - 1;
    if (this.inProgress >= first) this.inProgress = first - 1;
  }

  /**
   * The follower side of AppendEntries: if our log has (index, logTerm),
   * append what is new and return the last index the message vouches for.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed) throw new Error(`raft: entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      this.append(ents.slice(ci - index - 1));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** Index of the first entry that is new or whose term differs from ours; 0 if none. */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /** The largest index <= index whose term is <= term (fast back-tracking of a rejected append). */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (; i > this.snapIndex; i--) {
      if (this.term(i) <= term) return i;
    }
    return i;
  }

  commitTo(i: number): void {
    if (i > this.committed) {
      if (i > this.lastIndex()) throw new Error(`raft: commit ${i} is beyond the last index ${this.lastIndex()}`);
      this.committed = i;
    }
  }

  /** Entries [lo, ...] up to maxBytes (at least one); undefined when lo is compacted. */
  slice(lo: number, maxBytes: number, hi = this.lastIndex() + 1): Entry[] | undefined {
    if (lo <= this.snapIndex) return undefined;
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entries[i - this.snapIndex - 1];
      bytes += entrySize(e);
      if (out.length && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Entries not yet handed to the driver to write. */
  unstableEntries(): Entry[] {
    const from = Math.max(this.stable, this.inProgress, this.snapIndex);
    if (from >= this.lastIndex()) return [];
    return this.entries.slice(from - this.snapIndex);
  }

  hasUnstableEntries(): boolean {
    return Math.max(this.stable, this.inProgress) < this.lastIndex();
  }

  stableTo(i: number, t: number): void {
    if (i > this.stable && this.matchTerm(i, t)) this.stable = i;
  }

  /** The highest index that may be handed to the application. */
  private applyLimit(): number {
    return this.applyUnstable ? this.committed : Math.min(this.committed, this.stable);
  }

  hasNextCommitted(): boolean {
    return this.applyLimit() > this.applying && this.applying >= this.snapIndex;
  }

  nextCommitted(maxBytes: number): Entry[] {
    if (!this.hasNextCommitted()) return [];
    return this.slice(this.applying + 1, maxBytes, this.applyLimit() + 1) ?? [];
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  restore(s: Snapshot): void {
    this.snapIndex = s.meta.index;
    this.snapTerm = s.meta.term;
    this.entries = [];
    this.committed = s.meta.index;
    this.stable = s.meta.index;
    this.inProgress = s.meta.index;
    this.applying = s.meta.index;
    this.unstableSnapshot = s;
  }

  /** Drops entries up to i (the application snapshotted its state at i). */
  compact(i: number): void {
    if (i <= this.snapIndex) return;
    if (i > this.applied) throw new Error(`raft: compact ${i} is beyond applied ${this.applied}`);
    const t = this.term(i);
    this.entries = this.entries.slice(i - this.snapIndex);
    this.snapIndex = i;
    this.snapTerm = t;
  }
}
