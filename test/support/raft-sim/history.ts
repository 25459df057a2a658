// Everything the simulation has observed across all members and all of
// their incarnations, and the Raft safety properties checked against it
// incrementally as observations arrive:
//  - election safety: one leader per term, ever;
//  - log matching: an (index, term) pair names one entry with one
//    predecessor term, in every log ever persisted (by induction, logs that
//    share an entry share the whole prefix);
//  - state machine safety / durability: every index is applied with the same
//    entry (and the same state hash) by every member in every incarnation,
//    and restored snapshots hold exactly the state of their index;
//  - leader completeness: a new leader's log holds every entry known to be
//    committed when it was elected;
//  - commit durability: when a leader moves its commit index to c, a quorum
//    of its voters (itself included) has made entry c durable: an entry
//    counts toward commit only once a member's storage holds it, so a crash
//    that loses unwritten entries never loses a committed one.
import { type ConfChange, type ConfState, type Entry, type NodeId, type SnapshotMetadata } from '../../../raft/types.ts';
import type { Disk } from './disk.ts';
import { applyConfChange, entryKey, type StateMachine } from './state-machine.ts';
import { Violation } from './violation.ts';

export interface CommittedEntry {
  term: number;
  /** Entry content (type and payload). */
  key: string;
  /** State hash after applying it. */
  hash: string;
  /** The first member seen applying it. */
  by: NodeId;
  cc?: ConfChange;
}

export class History {
  /** term -> the one member that led it. */
  readonly leaders = new Map<number, NodeId>();
  /** index -> the entry applied there (the first application; every other must match). */
  readonly committed: CommittedEntry[] = [];
  /** Highest index applied anywhere: 1..maxApplied are known committed. */
  maxApplied = 0;
  /** Highest commit index any member has reported. */
  maxCommit = 0;
  /** Membership as of maxApplied. */
  readonly conf: ConfState = { voters: [], learners: [] };
  private readonly logIds = new Map<string, { key: string; prevTerm: number; by: NodeId }>();
  /** index/term -> members whose disk ever held that entry (a damaged tail lost later still counts: it was durable). */
  private readonly durable = new Map<string, Set<NodeId>>();

  /** Records that `id` leads `term`; true the first time. */
  leader(term: number, id: NodeId): boolean {
    const prev = this.leaders.get(term);
    if (prev === undefined) {
      this.leaders.set(term, id);
      return true;
    }
    if (prev !== id) throw new Violation('election-safety', `two leaders in term ${term}: ${prev} and ${id}`);
    return false;
  }

  commit(index: number): void {
    if (index > this.maxCommit) this.maxCommit = index;
  }

  /** Entries just written to `owner`'s disk (already saved there). */
  persisted(owner: NodeId, ents: Entry[], disk: Disk): void {
    for (const e of ents) {
      const id = `${e.index}/${e.term}`;
      const key = entryKey(e);
      const prevTerm = disk.term(e.index - 1) ?? 0;
      let holders = this.durable.get(id);
      if (!holders) this.durable.set(id, (holders = new Set()));
      holders.add(owner);
      const seen = this.logIds.get(id);
      if (!seen) {
        this.logIds.set(id, { key, prevTerm, by: owner });
        continue;
      }
      if (seen.key !== key) {
        throw new Violation('log-matching', `entry ${id} on ${owner} differs from the one persisted by ${seen.by}: ${show(key)} vs ${show(seen.key)}`);
      }
      if (seen.prevTerm !== prevTerm) {
        throw new Violation(
          'log-matching',
          `entry ${id} on ${owner} follows term ${prevTerm} at ${e.index - 1}, but on ${seen.by} it follows term ${seen.prevTerm}`,
        );
      }
    }
  }

  /** Leader `owner` just moved its commit index to `status.commit` (entry of term `term`): a quorum of its voters must hold it durably. */
  checkCommitDurable(owner: NodeId, status: { commit: number; term: number; conf: ConfState }, term: number): void {
    const c = status.commit;
    const voters = status.conf.voters;
    const holders = this.durable.get(`${c}/${term}`) ?? new Set<NodeId>();
    const have = voters.filter((v) => holders.has(v));
    if (have.length < Math.floor(voters.length / 2) + 1) {
      throw new Violation(
        'durability',
        `leader ${owner} of term ${status.term} commits ${c}/${term}, but only [${have.join(',')}] of voters [${voters.join(',')}] have it on disk`,
      );
    }
  }

  /** A snapshot was stored on `owner`'s disk. */
  snapshotStored(owner: NodeId, meta: SnapshotMetadata): void {
    const c = this.committed[meta.index];
    if (!c) throw new Violation('state-machine-safety', `${owner} stores a snapshot at ${meta.index}, an index nobody applied`);
    if (c.term !== meta.term) {
      throw new Violation('state-machine-safety', `${owner} stores a snapshot at ${meta.index}/${meta.term}, but ${c.by} applied term ${c.term} there`);
    }
  }

  /** `owner` applied `e`, reaching `sm`; returns the record when this is the first application of the index. */
  applied(owner: NodeId, e: Entry, sm: StateMachine, cc: ConfChange | undefined): CommittedEntry | undefined {
    const key = entryKey(e);
    const c = this.committed[e.index];
    if (c) {
      if (c.term !== e.term || c.key !== key) {
        throw new Violation(
          'state-machine-safety',
          `${owner} applies ${e.index}/${e.term} ${show(key)}, but ${c.by} applied ${e.index}/${c.term} ${show(c.key)}`,
        );
      }
      if (c.hash !== sm.hash) throw new Violation('state-machine-safety', `${owner} reaches state ${sm.hash} at ${e.index}, ${c.by} reached ${c.hash}`);
      return undefined;
    }
    if (e.index !== this.maxApplied + 1) {
      throw new Violation('state-machine-safety', `${owner} applies ${e.index} first, but the highest index applied anywhere is ${this.maxApplied}`);
    }
    const rec: CommittedEntry = { term: e.term, key, hash: sm.hash, by: owner, cc };
    this.committed[e.index] = rec;
    this.maxApplied = e.index;
    if (cc) applyConfChange(this.conf, cc);
    return rec;
  }

  /** `owner` restored its state machine from a snapshot. */
  restored(owner: NodeId, sm: StateMachine): void {
    const c = this.committed[sm.applied];
    if (!c) throw new Violation('state-machine-safety', `${owner} restores a snapshot at ${sm.applied}, an index nobody applied`);
    if (c.term !== sm.term || c.hash !== sm.hash) {
      throw new Violation(
        'state-machine-safety',
        `${owner} restores ${sm.applied}/${sm.term} with state ${sm.hash}, but ${c.by} had ${sm.applied}/${c.term} with state ${c.hash}`,
      );
    }
  }

  /** A leader's persisted log must hold every entry in 1..bound (known committed when it was elected). */
  checkLeaderLog(owner: NodeId, term: number, bound: number, disk: Disk): void {
    if (disk.lastIndex() < bound) {
      throw new Violation('leader-completeness', `leader ${owner} of term ${term} has log up to ${disk.lastIndex()}, but ${bound} was committed before its election`);
    }
    if (disk.snapIndex > 0) this.snapshotStored(owner, disk.snapshot!.meta);
    for (let i = disk.snapIndex + 1; i <= bound; i++) {
      const e = disk.entry(i)!;
      const c = this.committed[i];
      if (e.term !== c.term || entryKey(e) !== c.key) {
        throw new Violation(
          'leader-completeness',
          `leader ${owner} of term ${term} has ${i}/${e.term} ${show(entryKey(e))}, but ${i}/${c.term} ${show(c.key)} was committed before its election`,
        );
      }
    }
  }
}

function show(key: string): string {
  const s = key.length > 40 ? `${key.slice(0, 40)}...` : key;
  return JSON.stringify(s);
}
