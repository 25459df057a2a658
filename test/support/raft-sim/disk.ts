// One member's simulated durable storage: what survives a crash. It is
// written only through save() (one Ready, as the contract in raft/types.ts
// prescribes) and compact() (the application's own snapshot), and checks on
// every write that the core never asks for something a real disk would turn
// into lost or corrupted state.
import { type ConfState, type Entry, type HardState, type InitialState, type Ready, type Snapshot } from '../../../raft/types.ts';
import { Violation } from './violation.ts';

export class Disk {
  hardState: HardState = { term: 0, vote: '', commit: 0 };
  snapshot: Snapshot | undefined;
  /** Entries after the snapshot, contiguous. */
  entries: Entry[] = [];

  /** The commit index as of the last fsync, when unsynced writes moved it since. */
  private syncedCommit: number | undefined;

  constructor(readonly owner: string) {}

  /** A crash: writes not fsynced are lost (if `loseUnsynced`). */
  crash(loseUnsynced: boolean): void {
    if (loseUnsynced && this.syncedCommit !== undefined) this.hardState = { ...this.hardState, commit: this.syncedCommit };
    this.syncedCommit = undefined;
  }

  /**
   * Damage: the last `n` log entries fail their checksum at the next start and
   * storage truncates them, as raft/storage.ts does: the commit index is
   * clamped to the shorter log and, unless `marker` is false (to show what
   * goes wrong without it), the hard state forbids voting until the log is
   * back to the old last index. Only while the member is down.
   */
  loseTail(n: number, marker = true): void {
    const last = this.lastIndex();
    this.entries.length = Math.max(0, this.entries.length - n);
    const hs: HardState = { ...this.hardState, commit: Math.min(this.hardState.commit, this.lastIndex()) };
    if (marker && this.lastIndex() < last) {
      hs.noVoteUntil = Math.max(hs.noVoteUntil ?? 0, last);
      hs.noVoteTerm = Math.max(hs.noVoteTerm ?? 0, hs.term);
    }
    this.hardState = hs;
    this.syncedCommit = undefined;
  }

  get snapIndex(): number {
    return this.snapshot ? this.snapshot.meta.index : 0;
  }

  get snapTerm(): number {
    return this.snapshot ? this.snapshot.meta.term : 0;
  }

  lastIndex(): number {
    return this.snapIndex + this.entries.length;
  }

  /** Term of entry i: the snapshot's at its index, undefined when compacted or absent. */
  term(i: number): number | undefined {
    if (i === this.snapIndex) return this.snapTerm;
    return this.entry(i)?.term;
  }

  entry(i: number): Entry | undefined {
    return i > this.snapIndex ? this.entries[i - this.snapIndex - 1] : undefined;
  }

  /**
   * Persists one Ready: its snapshot, then its entries, then its hard state.
   * A Ready that does not ask for fsync (mustSync false) may only move the
   * commit index, and that write may be lost in a crash (see crash()).
   */
  save(rd: Ready): void {
    const who = `member ${this.owner}`;
    if (rd.mustSync) {
      this.syncedCommit = undefined;
    } else {
      const hs = rd.hardState;
      if (rd.entries.length || rd.snapshot || (hs && (hs.term !== this.hardState.term || hs.vote !== this.hardState.vote))) {
        throw new Violation('contract', `${who}: a Ready with entries, a snapshot or a new term or vote says mustSync false`);
      }
      this.syncedCommit ??= this.hardState.commit;
    }
    if (rd.snapshot) {
      const m = rd.snapshot.meta;
      if (m.index <= this.snapIndex) {
        throw new Violation('contract', `${who}: Ready snapshot at ${m.index} does not advance the stored snapshot at ${this.snapIndex}`);
      }
      if (m.index < this.hardState.commit) {
        throw new Violation('durability', `${who}: Ready snapshot at ${m.index} is behind the persisted commit ${this.hardState.commit}`);
      }
      const own = this.term(m.index);
      if (own !== undefined && own !== m.term && m.index <= this.hardState.commit) {
        throw new Violation('durability', `${who}: snapshot ${m.index}/${m.term} replaces committed entry ${m.index}/${own}`);
      }
      this.snapshot = { meta: cloneMeta(m), data: rd.snapshot.data };
      this.entries = [];
    }
    if (rd.entries.length) this.append(rd.entries, who);
    if (rd.hardState) this.setHardState(rd.hardState, who);
    if (this.hardState.commit > this.lastIndex()) {
      throw new Violation('contract', `${who}: persisted commit ${this.hardState.commit} is beyond the persisted log (last ${this.lastIndex()})`);
    }
  }

  /** The application snapshotted its state at `snap.meta.index`: the log before it goes. */
  compact(snap: Snapshot): void {
    const { index, term } = snap.meta;
    if (index <= this.snapIndex) return;
    if (this.term(index) !== term) {
      throw new Violation('contract', `member ${this.owner}: app snapshot at ${index}/${term} but the disk has term ${this.term(index)} there`);
    }
    this.entries = this.entries.slice(index - this.snapIndex);
    this.snapshot = { meta: cloneMeta(snap.meta), data: snap.data };
  }

  /** What a restarting member's core is built from. */
  initialState(conf: ConfState): InitialState {
    return {
      hardState: { ...this.hardState },
      conf: { voters: [...conf.voters], learners: [...conf.learners] },
      snapshot: this.snapshot && { meta: cloneMeta(this.snapshot.meta), data: this.snapshot.data },
      entries: this.entries.map((e) => ({ ...e })),
      applied: this.snapIndex,
    };
  }

  private append(ents: Entry[], who: string): void {
    const first = ents[0].index;
    if (first <= this.snapIndex || first > this.lastIndex() + 1) {
      throw new Violation('contract', `${who}: Ready entries start at ${first}, outside [${this.snapIndex + 1}, ${this.lastIndex() + 1}]`);
    }
    let prevTerm = this.term(first - 1) ?? 0;
    for (let k = 0; k < ents.length; k++) {
      const e = ents[k];
      if (e.index !== first + k) throw new Violation('contract', `${who}: Ready entries not contiguous at ${e.index}`);
      if (e.term < prevTerm) throw new Violation('contract', `${who}: entry ${e.index} has term ${e.term} below the previous entry's ${prevTerm}`);
      prevTerm = e.term;
      const old = this.entry(e.index);
      if (old && e.index <= this.hardState.commit && (old.term !== e.term || !sameBytes(old.data, e.data))) {
        throw new Violation(
          'durability',
          `${who}: entry ${e.index} (term ${old.term}) is overwritten by term ${e.term} but the persisted commit is ${this.hardState.commit}`,
        );
      }
    }
    this.entries.length = first - this.snapIndex - 1;
    for (const e of ents) this.entries.push({ ...e });
  }

  private setHardState(hs: HardState, who: string): void {
    const old = this.hardState;
    if (hs.term < old.term) throw new Violation('durability', `${who}: persisted term goes back from ${old.term} to ${hs.term}`);
    if (hs.term === old.term && old.vote !== '' && hs.vote !== old.vote) {
      throw new Violation('durability', `${who}: persisted vote in term ${hs.term} changes from ${old.vote} to '${hs.vote}'`);
    }
    if (hs.commit < old.commit) throw new Violation('durability', `${who}: persisted commit goes back from ${old.commit} to ${hs.commit}`);
    this.hardState = { ...hs };
  }
}

function cloneMeta(m: Snapshot['meta']): Snapshot['meta'] {
  return { index: m.index, term: m.term, conf: { voters: [...m.conf.voters], learners: [...m.conf.learners] } };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
