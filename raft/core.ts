// The Raft consensus algorithm as a pure, deterministic state machine, after
// etcd-io/raft. It does no I/O, reads no clock and draws randomness only from
// the injected source: inputs are tick(), step(message), propose(), and the
// output is a Ready batch the driver persists, sends and applies before
// calling advance(). Features: PreVote, CheckQuorum with leader leases,
// pipelined and flow-controlled replication with fast back-tracking, chunked
// snapshots, one-at-a-time membership changes (applied when committed),
// leadership transfer and ReadIndex.
import { decodeConfChange, encodeConfChange } from './codec.ts';
import { RaftLog } from './log.ts';
import { Progress, ProgressState } from './progress.ts';
import {
  type ConfChange, ConfChangeType, type ConfState, EMPTY, type Entry, EntryType, type HardState,
  type InitialState, type Message, MessageType, type NodeId, type RaftConfig, RaftError, type ReadState,
  type Ready, Role, type Snapshot, type SoftState, emptyMessage, entrySize,
} from './types.ts';

const TRANSFER_CONTEXT = new TextEncoder().encode('transfer');

interface ReadRequest {
  index: number;
  from: NodeId;
  context: Uint8Array;
  acks: Set<NodeId>;
}

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId;
  leader: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  conf: ConfState;
  leadTransferee: NodeId;
  /** Prop messages refused because their sender is not a member. */
  droppedProposals: number;
  /** Non-zero while this member may not campaign and votes only for a log at least as good as the one it lost (see HardState.noVoteUntil). */
  noVoteUntil: number;
  progress?: Record<NodeId, { match: number; next: number; state: string; recentActive: boolean }>;
}

/** Messages a driver may send before the Ready's writes are durable (none of them vouch for local state). */
export function sendableBeforePersist(m: Message): boolean {
  switch (m.type) {
    case MessageType.App:
    case MessageType.Heartbeat:
    case MessageType.Snap:
    case MessageType.TimeoutNow:
    case MessageType.ReadIndex:
    case MessageType.ReadIndexResp:
    case MessageType.Prop:
    case MessageType.PreVote:
    case MessageType.PreVoteResp:
    case MessageType.TransferLeader:
    case MessageType.SnapResp:
      return true;
    default:
      return false;
  }
}

function ctxKey(c: Uint8Array): string {
  return Buffer.from(c.buffer, c.byteOffset, c.byteLength).toString('latin1');
}

export class RaftCore {
  readonly id: NodeId;
  private readonly cfg: Required<Omit<RaftConfig, 'unsafeAckBeforeDurable'>> & Pick<RaftConfig, 'unsafeAckBeforeDurable'>;
  readonly log = new RaftLog();

  term = 0;
  vote: NodeId = '';
  leader: NodeId = '';
  role: Role = Role.Follower;
  private voters = new Set<NodeId>();
  private learners = new Set<NodeId>();

  private progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private msgs: Message[] = [];
  private readStates: ReadState[] = [];

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leadTransferee: NodeId = '';
  /** A leader accepts no conf change until it has applied this index. */
  private pendingConfIndex = 0;
  private uncommittedSize = 0;
  /** Prop messages refused because their sender is not a member (see step). */
  droppedProposals = 0;
  /**
   * This member lost log entries up to this index that it may have
   * acknowledged (a damaged tail was truncated; HardState.noVoteUntil), none
   * with a term above noVoteTerm. Until a leader has restored its log that far
   * it does not campaign, and it grants a vote only to a candidate at least as
   * up to date as the lost log could have been (last entry noVoteTerm at
   * noVoteUntil): its short log must not help elect a leader that lacks a
   * committed entry. By the usual argument (Raft §5.4.3) such a candidate
   * holds every entry this member ever acknowledged that was committed.
   */
  private noVoteUntil = 0;
  private noVoteTerm = 0;
  /**
   * Batching: a leader appends proposals at once but replicates them when the
   * driver next asks for a Ready, so every proposal of one event-loop turn
   * travels in one App per follower; a follower likewise forwards its
   * proposals to the leader in one Prop.
   */
  private appendPending = false;
  private forwardBuf: Entry[] = [];

  // ReadIndex bookkeeping (leader): requests waiting for a heartbeat quorum, in order.
  private readQueue: ReadRequest[] = [];
  private readByCtx = new Map<string, ReadRequest>();
  /** ReadIndex requests received before this leader committed an entry of its term. */
  private pendingReads: Message[] = [];

  // Snapshot being received in chunks (follower).
  private snapRecv: { index: number; term: number; chunks: Uint8Array[]; received: number } | undefined;

  private prevSoft: SoftState;
  private prevHard: HardState;
  private readyOutstanding = false;
  /** The latest snapshot (made locally or received): what lagging followers get. */
  private snapshot: Snapshot | undefined;

  constructor(cfg: RaftConfig, init: InitialState) {
    this.id = cfg.id;
    this.cfg = {
      preVote: true,
      checkQuorum: true,
      maxSizePerMsg: 1 << 20,
      maxInflightMsgs: 256,
      maxUncommittedSize: 64 << 20,
      snapshotChunkSize: 1 << 20,
      unsafeCommitPreviousTerms: false,
      asyncStorageWrites: false,
      ...cfg,
    };
    this.log.applyUnstable = !this.cfg.asyncStorageWrites;
    if (cfg.heartbeatTick <= 0 || cfg.electionTick <= cfg.heartbeatTick) {
      throw new Error('raft: electionTick must be greater than heartbeatTick > 0');
    }
    const log = this.log;
    const fresh = !init.snapshot && !init.entries.length && init.hardState.term === 0;
    // A restarting member rebuilds its membership from the snapshot and the
    // log (which begins with the founding members' conf changes); init.conf
    // only seeds a brand-new cluster.
    let conf: ConfState = fresh ? init.conf : { voters: [], learners: [] };
    if (init.snapshot) {
      const s = init.snapshot;
      log.snapIndex = s.meta.index;
      log.snapTerm = s.meta.term;
      log.committed = log.applied = log.applying = log.stable = s.meta.index;
      conf = s.meta.conf;
      this.snapshot = s;
    }
    for (const e of init.entries) {
      if (e.index !== log.lastIndex() + 1) throw new Error(`raft: initial entries not contiguous at ${e.index}`);
      log.entries.push(e);
    }
    log.stable = log.lastIndex();
    this.setConf(conf);
    const hs = init.hardState;
    this.term = hs.term;
    this.vote = hs.vote;
    this.noVoteUntil = hs.noVoteUntil ?? 0;
    this.noVoteTerm = this.noVoteUntil ? hs.noVoteTerm ?? hs.term : 0;
    this.maybeEndCatchUp();
    if (fresh && conf.voters.length) {
      // A new cluster: write the initial membership as committed conf-change
      // entries, identically on every founding member, so that a member that
      // later catches up from index 1 learns the configuration from the log.
      const sorted = [...conf.voters].sort();
      const ents: Entry[] = sorted.map((id, i) => ({
        term: 1, index: i + 1, type: EntryType.ConfChange,
        data: encodeConfChange({ type: ConfChangeType.AddNode, nodeId: id, context: EMPTY }),
      }));
      log.append(ents);
      this.term = 1;
      log.committed = ents.length;
    } else {
      log.committed = Math.max(log.committed, Math.min(hs.commit, log.lastIndex()));
      const applied = Math.max(init.applied, log.snapIndex);
      log.applied = log.applying = Math.min(applied, log.committed);
      // Membership as of `applied`: conf changes after the snapshot up to it.
      for (let i = log.snapIndex + 1; i <= log.applied; i++) {
        const e = log.entries[i - log.snapIndex - 1];
        if (e.type === EntryType.ConfChange) this.applyConfChangeToSets(decodeConfChange(e.data));
      }
    }
    this.prevHard = fresh && conf.voters.length ? { term: 0, vote: '', commit: 0 } : this.hardState();
    this.becomeFollower(this.term, '');
    this.prevSoft = { leader: '', role: this.role };
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    if (this.role === Role.Leader) {
      this.heartbeatElapsed++;
      this.electionElapsed++;
      if (this.electionElapsed >= this.cfg.electionTick) {
        this.electionElapsed = 0;
        if (this.cfg.checkQuorum) this.checkQuorum();
        if (this.role !== Role.Leader) return;
        if (this.leadTransferee) this.leadTransferee = '';
      }
      if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
        this.heartbeatElapsed = 0;
        this.bcastHeartbeat(undefined);
      }
      return;
    }
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  campaign(): void {
    this.hup(false);
  }

  propose(data: Uint8Array): { index: number; term: number } | null {
    return this.proposeEntry(EntryType.Normal, data);
  }

  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    if (this.role !== Role.Leader) throw new RaftError('not-leader', 'raft: conf changes are proposed on the leader', this.leader);
    if (this.pendingConfIndex > this.log.applied) {
      throw new RaftError('conf-change-pending', `raft: a conf change (up to index ${this.pendingConfIndex}) is not yet applied`);
    }
    if (cc.type === ConfChangeType.RemoveNode && this.voters.has(cc.nodeId) && this.voters.size === 1) {
      throw new RaftError('dropped', 'raft: cannot remove the last voter');
    }
    const r = this.proposeEntry(EntryType.ConfChange, encodeConfChange(cc));
    this.pendingConfIndex = r!.index;
    return r!;
  }

  readIndex(context: Uint8Array): void {
    if (this.role === Role.Leader) {
      this.leaderReadIndex(this.id, context);
      return;
    }
    if (!this.leader) throw new RaftError('dropped', 'raft: no leader to serve a read index');
    const m = this.msg(MessageType.ReadIndex, this.leader);
    m.context = context;
    this.send(m);
  }

  transferLeader(to: NodeId): void {
    if (this.role !== Role.Leader) throw new RaftError('not-leader', 'raft: transfer is requested on the leader', this.leader);
    this.handleTransferLeader(to);
  }

  /**
   * The transport lost its connection from `id`. If that is our leader it has
   * probably died: stop honouring its lease and campaign after a short random
   * delay rather than a whole election timeout. Safe whatever the cause (Raft's
   * safety never depends on timing); if the leader is in fact alive, the other
   * members' leases refuse our pre-vote and its next heartbeat restores order.
   */
  peerUnreachable(id: NodeId): void {
    if (this.role !== Role.Follower || id !== this.leader || !this.promotable()) return;
    this.leader = '';
    const delay = 1 + Math.floor(this.cfg.random() * 3);
    this.electionElapsed = Math.max(this.electionElapsed, this.randomizedElectionTimeout - delay);
  }

  step(m: Message): void {
    if (m.to !== this.id && m.to !== '') return;
    if (m.term === 0) {
      // Forwarded proposal, read or transfer request: no term to compare.
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context.length === TRANSFER_CONTEXT.length && ctxKey(m.context) === 'transfer';
        const inLease = this.cfg.checkQuorum && this.leader !== '' && this.electionElapsed < this.cfg.electionTick;
        // A member that heard from a live leader recently ignores elections: a
        // partitioned member rejoining must not depose a healthy leader.
        if (!force && inLease) return;
      }
      if (m.type === MessageType.PreVote) {
        // Never change term for a pre-vote.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // Granted pre-votes carry the term we will campaign at.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, '');
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A stale leader (e.g. after a partition) learns the new term from this answer and steps down.
        this.send(this.msg(MessageType.AppResp, m.from));
      } else if (m.type === MessageType.PreVote) {
        const r = this.msg(MessageType.PreVoteResp, m.from);
        r.reject = true;
        this.send(r);
      }
      return;
    }

    switch (m.type) {
      case MessageType.Vote:
      case MessageType.PreVote: {
        const canVote =
          (this.vote === m.from ||
            (this.vote === '' && this.leader === '') ||
            (m.type === MessageType.PreVote && m.term > this.term)) &&
          (this.noVoteUntil === 0 || m.logTerm > this.noVoteTerm || (m.logTerm === this.noVoteTerm && m.index >= this.noVoteUntil));
        const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
        if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
          const r = this.msg(respType, m.from);
          r.term = m.term;
          this.send(r);
          if (m.type === MessageType.Vote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          const r = this.msg(respType, m.from);
          r.reject = true;
          this.send(r);
        }
        return;
      }
    }
    if (m.type === MessageType.Prop && !this.isMember(m.from)) {
      // Only members propose. A Prop over the wire claiming to be from this
      // member, or from anyone outside the configuration, is not one of ours:
      // appending (or forwarding, which would launder it under our own id)
      // would let any process that can connect write to the log.
      this.droppedProposals++;
      return;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        break;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        break;
      default:
        this.stepFollower(m);
    }
  }

  // ---------------------------------------------------------------- Ready

  hasReady(): boolean {
    if (this.readyOutstanding) return false;
    if (this.appendPending || this.forwardBuf.length) return true;
    const soft = this.softState();
    if (soft.leader !== this.prevSoft.leader || soft.role !== this.prevSoft.role) return true;
    const hs = this.hardState();
    if (!hardStateEqual(hs, this.prevHard)) return true;
    return (
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.log.unstableSnapshot !== undefined ||
      this.log.hasUnstableEntries() ||
      this.log.hasNextCommitted()
    );
  }

  ready(): Ready {
    if (this.readyOutstanding) throw new Error('raft: ready() called again before advance()');
    this.flushProposals();
    this.readyOutstanding = true;
    const rd: Ready = {
      entries: this.log.unstableEntries(),
      committedEntries: this.log.nextCommitted(this.cfg.maxSizePerMsg * 4),
      messages: this.msgs,
      readStates: this.readStates,
      mustSync: false,
    };
    this.msgs = [];
    this.readStates = [];
    const soft = this.softState();
    if (soft.leader !== this.prevSoft.leader || soft.role !== this.prevSoft.role) {
      rd.softState = soft;
      this.prevSoft = soft;
    }
    const hs = this.hardState();
    if (!hardStateEqual(hs, this.prevHard)) rd.hardState = hs;
    if (this.log.unstableSnapshot) rd.snapshot = this.log.unstableSnapshot;
    if (rd.committedEntries.length) this.log.applying = rd.committedEntries[rd.committedEntries.length - 1].index;
    rd.mustSync =
      rd.entries.length > 0 || rd.snapshot !== undefined ||
      (rd.hardState !== undefined && (rd.hardState.term !== this.prevHard.term || rd.hardState.vote !== this.prevHard.vote));
    if (this.cfg.asyncStorageWrites) {
      // What vouches for local state waits for the write; the rest goes now.
      // (The planted bug sends append acknowledgements early as well.)
      const early = this.cfg.unsafeAckBeforeDurable === 'follower'
        ? (m: Message) => sendableBeforePersist(m) || m.type === MessageType.AppResp
        : sendableBeforePersist;
      const all = rd.messages;
      rd.messages = all.filter(early);
      rd.afterWrite = rd.messages.length === all.length ? [] : all.filter((m) => !early(m));
    }
    return rd;
  }

  advance(rd: Ready): void {
    if (!this.readyOutstanding) throw new Error('raft: advance() without ready()');
    this.readyOutstanding = false;
    if (rd.hardState) this.prevHard = rd.hardState;
    if (rd.snapshot) {
      if (this.log.unstableSnapshot === rd.snapshot) this.log.unstableSnapshot = undefined;
      this.log.applied = Math.max(this.log.applied, rd.snapshot.meta.index);
      this.log.applying = Math.max(this.log.applying, this.log.applied);
      this.snapshot = rd.snapshot;
    }
    const async = this.cfg.asyncStorageWrites;
    if (rd.entries.length) {
      const last = rd.entries[rd.entries.length - 1];
      // Asynchronously: the write has only started; persisted(rd) marks it stable.
      if (async) this.log.inProgress = Math.max(this.log.inProgress, last.index);
      else this.log.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length) {
      for (const e of rd.committedEntries) {
        if (e.index <= this.log.applied) continue;
        if (e.type === EntryType.ConfChange) this.applyConfChange(decodeConfChange(e.data));
        if (this.role === Role.Leader) this.uncommittedSize = Math.max(0, this.uncommittedSize - entrySize(e));
        this.log.applied = e.index;
      }
    }
    if (async && this.cfg.unsafeAckBeforeDurable === 'leader') {
      // The planted bug: the leader's own vote counts before its write is durable.
      this.selfAck(this.log.inProgress);
    } else if (!async) {
      this.selfAck(this.log.stable);
    }
  }

  /**
   * Asynchronous storage writes: the write of `rd` (taken by ready() and
   * passed to advance()) is durable, and so is every earlier Ready's. Its
   * entries become stable, so they count toward the leader's commit quorum
   * and may be handed to the application. (Like etcd's MsgStorageAppendResp.
   * If a later Ready has since replaced these entries, the term no longer
   * matches and nothing changes: that Ready's own persisted() will.)
   */
  persisted(rd: Ready): void {
    if (!this.cfg.asyncStorageWrites) throw new Error('raft: persisted() is for asyncStorageWrites');
    if (rd.entries.length) {
      const last = rd.entries[rd.entries.length - 1];
      this.log.stableTo(last.index, last.term);
    }
    this.selfAck(this.log.stable);
  }

  /** The leader's own log counts toward a quorum only up to what is on disk. */
  private selfAck(upTo: number): void {
    if (this.role !== Role.Leader) return;
    const self = this.progress.get(this.id);
    if (self && self.maybeUpdate(upTo) && this.maybeCommit()) this.bcastAppend();
  }

  private flushProposals(): void {
    if (this.appendPending) {
      this.appendPending = false;
      if (this.role === Role.Leader) {
        for (const id of this.progress.keys()) {
          if (id === this.id) continue;
          while (this.sendAppend(id, false)) { /* until the window is full or nothing is left */ }
        }
      }
    }
    if (this.forwardBuf.length) {
      const ents = this.forwardBuf;
      this.forwardBuf = [];
      if (this.leader && this.leader !== this.id) {
        const m = this.msg(MessageType.Prop, this.leader);
        m.entries = ents;
        this.send(m);
      }
      // No leader any more: dropped; the proposers learn of the leader change and fail them.
    }
  }

  /** The application snapshotted its state machine at `index` (== applied): drop the log before it. */
  compact(index: number, data: Uint8Array): void {
    if (index !== this.log.applied) throw new Error(`raft: compact at ${index} but applied is ${this.log.applied}`);
    if (index <= this.log.snapIndex) return;
    const term = this.log.term(index);
    this.log.compact(index);
    this.snapshot = { meta: { index, term, conf: this.confState() }, data };
  }

  status(): RaftStatus {
    const s: RaftStatus = {
      id: this.id, role: this.role, term: this.term, vote: this.vote, leader: this.leader,
      commit: this.log.committed, applied: this.log.applied, lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(), conf: this.confState(), leadTransferee: this.leadTransferee,
      droppedProposals: this.droppedProposals, noVoteUntil: this.noVoteUntil,
    };
    if (this.role === Role.Leader) {
      s.progress = {};
      for (const [id, p] of this.progress) {
        s.progress[id] = { match: p.match, next: p.next, state: p.state, recentActive: p.recentActive };
      }
    }
    return s;
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() };
  }

  // ---------------------------------------------------------------- roles

  private softState(): SoftState {
    return { leader: this.leader, role: this.role };
  }

  private hardState(): HardState {
    const hs: HardState = { term: this.term, vote: this.vote, commit: this.log.committed };
    if (this.noVoteUntil) {
      hs.noVoteUntil = this.noVoteUntil;
      hs.noVoteTerm = this.noVoteTerm;
    }
    return hs;
  }

  /**
   * The log came from a leader up to noVoteUntil (appended or a snapshot): it
   * now holds every entry committed up to there, so this member may vote
   * again. The cleared marker goes to disk in the same Ready as those entries.
   */
  private maybeEndCatchUp(): void {
    if (this.noVoteUntil && this.log.lastIndex() >= this.noVoteUntil) this.noVoteUntil = this.noVoteTerm = 0;
  }

  /** A current voter or learner other than this member (the sender of a message from the wire). */
  private isMember(id: NodeId): boolean {
    return id !== this.id && (this.voters.has(id) || this.learners.has(id));
  }

  private promotable(): boolean {
    return this.voters.has(this.id) && this.noVoteUntil === 0;
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = '';
    }
    this.leader = '';
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.cfg.electionTick + Math.floor(this.cfg.random() * this.cfg.electionTick);
    this.votes.clear();
    this.leadTransferee = '';
    this.readQueue = [];
    this.readByCtx.clear();
    this.pendingReads = [];
    this.uncommittedSize = 0;
    this.progress.clear();
    // Proposals meant for a leader that is gone are dropped, not re-sent to
    // the next one: their proposers are told the outcome is unknown.
    this.forwardBuf = [];
    this.appendPending = false;
  }

  private becomeFollower(term: number, leader: NodeId): void {
    this.reset(term);
    this.leader = leader;
    this.role = this.voters.has(this.id) || !this.learners.has(this.id) ? Role.Follower : Role.Learner;
  }

  private becomePreCandidate(): void {
    // Pre-candidacy changes neither term nor vote, so a member cut off from
    // the cluster does not inflate its term and disrupt the leader on return.
    this.votes.clear();
    this.leader = '';
    this.role = Role.PreCandidate;
    this.electionElapsed = 0;
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.leader = this.id;
    this.role = Role.Leader;
    const last = this.log.lastIndex();
    for (const id of this.voters) this.progress.set(id, new Progress(last + 1, this.cfg.maxInflightMsgs, false));
    for (const id of this.learners) this.progress.set(id, new Progress(last + 1, this.cfg.maxInflightMsgs, true));
    const self = this.progress.get(this.id)!;
    self.match = this.log.stable;
    self.becomeReplicate();
    for (const p of this.progress.values()) p.recentActive = true;
    // The no-op of the new term: entries of earlier terms commit with it
    // (figure 8), and conf changes wait until it is applied.
    this.appendEntries([{ term: this.term, index: 0, type: EntryType.Normal, data: EMPTY }]);
    this.pendingConfIndex = this.log.lastIndex();
  }

  private hup(transfer: boolean): void {
    if (this.role === Role.Leader || !this.promotable()) return;
    // A member with committed but unapplied conf changes may not know its real membership yet.
    for (let i = this.log.applied + 1; i <= this.log.committed; i++) {
      const e = this.log.entries[i - this.log.snapIndex - 1];
      if (e && e.type === EntryType.ConfChange) return;
    }
    if (this.cfg.preVote && !transfer) this.startElection(true, false);
    else this.startElection(false, transfer);
  }

  private startElection(pre: boolean, transfer: boolean): void {
    if (pre) this.becomePreCandidate();
    else this.becomeCandidate();
    const type = pre ? MessageType.PreVote : MessageType.Vote;
    const term = pre ? this.term + 1 : this.term;
    this.votes.set(this.id, true);
    if (this.tallyVotes() === 'won') {
      if (pre) this.startElection(false, false);
      else this.becomeLeader();
      return;
    }
    for (const id of this.voters) {
      if (id === this.id) continue;
      const m = this.msg(type, id);
      m.term = term;
      m.index = this.log.lastIndex();
      m.logTerm = this.log.lastTerm();
      if (transfer) m.context = TRANSFER_CONTEXT;
      this.send(m);
    }
  }

  private tallyVotes(): 'won' | 'lost' | 'pending' {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const q = Math.floor(this.voters.size / 2) + 1;
    if (granted >= q) return 'won';
    if (rejected >= q || this.voters.size - rejected < q) return 'lost';
    return 'pending';
  }

  private checkQuorum(): void {
    let active = 0;
    for (const [id, p] of this.progress) {
      if (id === this.id) {
        if (this.voters.has(id)) active++;
        continue;
      }
      if (p.recentActive && !p.isLearner) active++;
      p.recentActive = false;
    }
    if (active < Math.floor(this.voters.size / 2) + 1) this.becomeFollower(this.term, '');
  }

  // ---------------------------------------------------------------- per role

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.leadTransferee || !m.entries.length) return;
        try {
          this.appendEntries(m.entries.map((e) => ({ ...e, type: EntryType.Normal })));
          this.appendPending = true;
        } catch {
          // Too large for the uncommitted budget: the proposer times out and retries.
        }
        return;
      case MessageType.ReadIndex:
        this.leaderReadIndex(m.from, m.context);
        return;
      case MessageType.TransferLeader:
        this.handleTransferLeader(m.from);
        return;
    }
    const pr = this.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppResp(m, pr);
        return;
      case MessageType.HeartbeatResp:
        this.handleHeartbeatResp(m, pr);
        return;
      case MessageType.SnapResp:
        this.handleSnapResp(m, pr);
        return;
    }
  }

  private stepCandidate(m: Message): void {
    const respType = this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        return;
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapChunk(m);
        return;
      case respType: {
        this.votes.set(m.from, !m.reject);
        const r = this.tallyVotes();
        if (r === 'won') {
          if (this.role === Role.PreCandidate) this.startElection(false, false);
          else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (r === 'lost') {
          this.becomeFollower(this.term, '');
        }
        return;
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.leader) for (const e of m.entries) this.forwardBuf.push(e);
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.leader = m.from;
        this.handleSnapChunk(m);
        return;
      case MessageType.TransferLeader:
        if (this.leader) {
          const f = this.msg(MessageType.TransferLeader, this.leader);
          f.from = m.from;
          this.send(f);
        }
        return;
      case MessageType.TimeoutNow:
        // A leadership transfer: campaign now, skipping PreVote and the voters' leases.
        if (this.promotable()) this.hup(true);
        return;
      case MessageType.ReadIndex:
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, context: m.context });
        return;
    }
  }

  // ---------------------------------------------------------------- proposals

  private proposeEntry(type: EntryType, data: Uint8Array): { index: number; term: number } | null {
    if (this.role === Role.Leader) {
      if (this.leadTransferee) {
        throw new RaftError('transfer-in-progress', `raft: leadership is being transferred to ${this.leadTransferee}`);
      }
      this.appendEntries([{ term: this.term, index: 0, type, data }]);
      this.appendPending = true;
      const last = this.log.lastIndex();
      return { index: last, term: this.term };
    }
    if (type !== EntryType.Normal) throw new RaftError('not-leader', 'raft: not the leader', this.leader);
    if (!this.leader) throw new RaftError('dropped', 'raft: no leader (election in progress)');
    this.forwardBuf.push({ term: 0, index: 0, type, data });
    return null;
  }

  private appendEntries(ents: Entry[]): void {
    let size = 0;
    for (const e of ents) size += entrySize(e);
    if (this.uncommittedSize > 0 && this.uncommittedSize + size > this.cfg.maxUncommittedSize) {
      throw new RaftError('too-large', 'raft: too many uncommitted bytes; retry later');
    }
    let li = this.log.lastIndex();
    const stamped = ents.map((e) => ({ term: this.term, index: ++li, type: e.type, data: e.data }));
    this.log.append(stamped);
    this.uncommittedSize += size;
    // The leader's own progress moves when the entries are durable (advance).
  }

  // ---------------------------------------------------------------- replication

  private bcastAppend(): void {
    for (const id of this.progress.keys()) {
      if (id !== this.id) this.sendAppend(id, true);
    }
  }

  private bcastHeartbeat(context: Uint8Array | undefined): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      const m = this.msg(MessageType.Heartbeat, id);
      // Never tell a follower to commit past what it is known to hold.
      m.commit = Math.min(pr.match, this.log.committed);
      if (context) m.context = context;
      this.send(m);
    }
  }

  /** Sends an App (or starts a snapshot) to `to`; returns whether anything was sent. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const ents = prevTerm < 0 ? undefined : this.log.slice(pr.next, this.cfg.maxSizePerMsg);
    if (ents === undefined) {
      this.startSnapshot(to, pr);
      return true;
    }
    if (!ents.length && !sendIfEmpty) return false;
    const m = this.msg(MessageType.App, to);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = ents;
    m.commit = this.log.committed;
    if (ents.length) {
      const last = ents[ents.length - 1].index;
      if (pr.state === ProgressState.Replicate) {
        pr.next = last + 1;
        pr.inflights.add(last);
      } else {
        pr.probeSent = true;
      }
    } else if (pr.state === ProgressState.Probe) {
      pr.probeSent = true;
    }
    this.send(m);
    return true;
  }

  private handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      const r = this.msg(MessageType.AppResp, m.from);
      r.index = this.log.committed;
      this.send(r);
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    const r = this.msg(MessageType.AppResp, m.from);
    if (lastNew !== undefined) {
      r.index = lastNew;
      // Only what the leader's message vouches for counts (lastNew, not a stale suffix beyond it).
      if (this.noVoteUntil && lastNew >= this.noVoteUntil) this.noVoteUntil = this.noVoteTerm = 0;
    } else {
      // Fast back-tracking: suggest the last index whose term is <= the
      // leader's probe term, skipping a whole divergent term per round trip.
      const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
      r.index = m.index;
      r.reject = true;
      r.rejectHint = hint;
      r.logTerm = Math.max(this.log.term(hint), 0);
    }
    this.send(r);
  }

  private handleAppResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      let next = m.rejectHint;
      if (m.logTerm > 0) next = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecrTo(m.index, next)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      if (pr.state === ProgressState.Snapshot && pr.snap && m.index >= pr.snap.meta.index) {
        pr.becomeProbe();
        pr.becomeReplicate();
        this.sendAppend(m.from, false);
      }
      return;
    }
    if (pr.state === ProgressState.Probe) pr.becomeReplicate();
    else if (pr.state === ProgressState.Snapshot && pr.snap && pr.match >= pr.snap.meta.index) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(m.index);

    if (this.maybeCommit()) {
      this.bcastAppend();
    } else if (wasPaused) {
      this.sendAppend(m.from, true);
    }
    // Fill the window.
    while (this.sendAppend(m.from, false)) { /* keep sending */ }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const id of this.voters) {
      const p = this.progress.get(id);
      matches.push(p ? p.match : 0);
    }
    if (!matches.length) return false;
    matches.sort((a, b) => b - a);
    const mci = matches[Math.floor(matches.length / 2)];
    if (mci <= this.log.committed) return false;
    // Only entries of the current term commit by counting replicas (Raft §5.4.2).
    if (!this.cfg.unsafeCommitPreviousTerms && this.log.term(mci) !== this.term) return false;
    const wasCommittedInTerm = this.log.term(this.log.committed) === this.term;
    this.log.commitTo(mci);
    if (!wasCommittedInTerm) this.releasePendingReads();
    return true;
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    const r = this.msg(MessageType.HeartbeatResp, m.from);
    r.context = m.context;
    if (m.commit > this.log.lastIndex()) {
      // The leader sends min(match, commit): it believes we hold entries we
      // do not (we lost a damaged tail since acknowledging them). Say so, or
      // it would resend them only when it next has something new to send.
      r.reject = true;
      r.rejectHint = this.log.lastIndex();
    }
    this.send(r);
  }

  private handleHeartbeatResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    if (m.reject && m.rejectHint < pr.match && pr.state !== ProgressState.Snapshot) {
      // The follower lost entries it had acknowledged (see handleHeartbeat):
      // probe again from where its log now ends.
      pr.match = m.rejectHint;
      pr.becomeProbe();
    }
    // Lost answers must not stall a full window forever: free one slot per heartbeat.
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirst();
    if (pr.state === ProgressState.Snapshot) {
      // No chunk acknowledged since the last heartbeat: resend from the last ack.
      if (pr.snapAcked === pr.snapAckedAtLastHeartbeat) {
        pr.snapSent = pr.snapAcked;
        this.sendSnapChunks(m.from, pr);
      }
      pr.snapAckedAtLastHeartbeat = pr.snapAcked;
    } else if (pr.match < this.log.lastIndex()) {
      this.sendAppend(m.from, true);
    }
    if (m.context.length) this.ackRead(m.from, m.context);
  }

  // ---------------------------------------------------------------- snapshots

  private startSnapshot(to: NodeId, pr: Progress): void {
    const snap = this.snapshot;
    if (!snap) throw new Error(`raft: entries for ${to} are compacted but there is no snapshot`);
    pr.becomeSnapshot(snap);
    this.sendSnapChunks(to, pr);
  }

  private sendSnapChunks(to: NodeId, pr: Progress): void {
    const snap = pr.snap!;
    const total = snap.data.length;
    const chunk = this.cfg.snapshotChunkSize;
    const window = chunk * 4;
    do {
      const end = Math.min(total, pr.snapSent + chunk);
      const m = this.msg(MessageType.Snap, to);
      m.snapshot = snap.meta;
      m.snapOffset = pr.snapSent;
      m.snapTotal = total;
      m.snapData = snap.data.subarray(pr.snapSent, end);
      m.commit = this.log.committed;
      this.send(m);
      pr.snapSent = end;
    } while (pr.snapSent < total && pr.snapSent - pr.snapAcked < window);
  }

  private handleSnapResp(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (pr.state !== ProgressState.Snapshot || !pr.snap || !m.snapshot || m.snapshot.index !== pr.snap.meta.index) return;
    if (m.reject || m.index < pr.snapAcked) {
      pr.snapAcked = m.index;
      pr.snapSent = m.index;
      this.sendSnapChunks(m.from, pr);
      return;
    }
    pr.snapAcked = m.index;
    if (m.index < pr.snapSent) {
      if (m.index + this.cfg.snapshotChunkSize * 4 > pr.snapSent || pr.snapSent >= pr.snap.data.length) return;
    }
    if (pr.snapSent < pr.snap.data.length) this.sendSnapChunks(m.from, pr);
  }

  private handleSnapChunk(m: Message): void {
    const meta = m.snapshot;
    if (!meta) return;
    const ack = (received: number, reject = false) => {
      const r = this.msg(MessageType.SnapResp, m.from);
      r.snapshot = meta;
      r.index = received;
      r.reject = reject;
      this.send(r);
    };
    if (meta.index <= this.log.committed) {
      this.snapRecv = undefined;
      const r = this.msg(MessageType.AppResp, m.from);
      r.index = this.log.committed;
      this.send(r);
      return;
    }
    let rcv = this.snapRecv;
    if (!rcv || rcv.index !== meta.index || rcv.term !== meta.term) {
      if (m.snapOffset !== 0) return ack(0, true);
      rcv = this.snapRecv = { index: meta.index, term: meta.term, chunks: [], received: 0 };
    }
    if (m.snapOffset !== rcv.received) return ack(rcv.received, m.snapOffset > rcv.received);
    if (m.snapData.length) rcv.chunks.push(m.snapData.slice());
    rcv.received += m.snapData.length;
    if (rcv.received < m.snapTotal) return ack(rcv.received);
    this.snapRecv = undefined;
    const data = rcv.chunks.length === 1 ? rcv.chunks[0] : Buffer.concat(rcv.chunks);
    const r = this.msg(MessageType.AppResp, m.from);
    if (this.restore({ meta, data })) {
      r.index = this.log.lastIndex();
    } else {
      r.index = this.log.committed;
    }
    this.send(r);
  }

  private restore(s: Snapshot): boolean {
    if (s.meta.index <= this.log.committed) return false;
    if (this.log.matchTerm(s.meta.index, s.meta.term)) {
      // We already have the entries: just learn that they are committed.
      this.log.commitTo(s.meta.index);
      return false;
    }
    this.log.restore(s);
    this.setConf(s.meta.conf);
    this.maybeEndCatchUp();
    return true;
  }

  // ---------------------------------------------------------------- ReadIndex

  private leaderReadIndex(from: NodeId, context: Uint8Array): void {
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      this.answerRead({ index: this.log.committed, from, context, acks: new Set() });
      return;
    }
    if (this.log.term(this.log.committed) !== this.term) {
      // Until this leader commits an entry of its own term its commit index may be stale.
      const m = this.msg(MessageType.ReadIndex, this.id);
      m.from = from;
      m.context = context;
      this.pendingReads.push(m);
      return;
    }
    const req: ReadRequest = { index: this.log.committed, from, context, acks: new Set([this.id]) };
    const key = ctxKey(context);
    if (this.readByCtx.has(key)) return;
    this.readByCtx.set(key, req);
    this.readQueue.push(req);
    this.bcastHeartbeat(context);
  }

  private releasePendingReads(): void {
    const pending = this.pendingReads;
    this.pendingReads = [];
    for (const m of pending) this.leaderReadIndex(m.from, m.context);
  }

  private ackRead(from: NodeId, context: Uint8Array): void {
    const req = this.readByCtx.get(ctxKey(context));
    if (!req) return;
    req.acks.add(from);
    let n = 0;
    for (const id of req.acks) if (this.voters.has(id)) n++;
    if (n < Math.floor(this.voters.size / 2) + 1) return;
    // A quorum confirmed leadership at the time of this request, and so of every earlier one.
    const i = this.readQueue.indexOf(req);
    const done = this.readQueue.splice(0, i + 1);
    for (const r of done) {
      this.readByCtx.delete(ctxKey(r.context));
      this.answerRead(r);
    }
  }

  private answerRead(r: ReadRequest): void {
    if (r.from === this.id) {
      this.readStates.push({ index: r.index, context: r.context });
      return;
    }
    const m = this.msg(MessageType.ReadIndexResp, r.from);
    m.index = r.index;
    m.context = r.context;
    this.send(m);
  }

  // ---------------------------------------------------------------- transfer

  private handleTransferLeader(to: NodeId): void {
    const pr = this.progress.get(to);
    if (!pr || pr.isLearner || to === this.id) return;
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    // The transfer must finish within an election timeout or it is abandoned.
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, true);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(this.msg(MessageType.TimeoutNow, to));
  }

  // ---------------------------------------------------------------- membership

  private setConf(c: ConfState): void {
    this.voters = new Set(c.voters);
    this.learners = new Set(c.learners);
  }

  private applyConfChangeToSets(cc: ConfChange): void {
    switch (cc.type) {
      case ConfChangeType.AddNode:
        this.learners.delete(cc.nodeId);
        this.voters.add(cc.nodeId);
        break;
      case ConfChangeType.AddLearner:
        if (!this.voters.has(cc.nodeId)) this.learners.add(cc.nodeId);
        break;
      case ConfChangeType.RemoveNode:
        this.voters.delete(cc.nodeId);
        this.learners.delete(cc.nodeId);
        break;
    }
  }

  private applyConfChange(cc: ConfChange): void {
    this.applyConfChangeToSets(cc);
    if (this.role !== Role.Leader) {
      if (this.role === Role.Follower || this.role === Role.Learner) {
        this.role = this.voters.has(this.id) || !this.learners.has(this.id) ? Role.Follower : Role.Learner;
      }
      return;
    }
    const last = this.log.lastIndex();
    for (const id of [...this.voters, ...this.learners]) {
      const learner = this.learners.has(id);
      const p = this.progress.get(id);
      if (!p) {
        const np = new Progress(last + 1, this.cfg.maxInflightMsgs, learner);
        np.recentActive = true;
        this.progress.set(id, np);
      } else {
        p.isLearner = learner;
      }
    }
    for (const id of [...this.progress.keys()]) {
      if (!this.voters.has(id) && !this.learners.has(id) && id !== this.id) this.progress.delete(id);
    }
    if (this.leadTransferee && !this.voters.has(this.leadTransferee)) this.leadTransferee = '';
    if (!this.voters.has(this.id)) {
      // Removed ourselves: hand leadership to the most up-to-date voter, then step down.
      let best: NodeId = '';
      let bestMatch = -1;
      for (const id of this.voters) {
        const p = this.progress.get(id);
        if (p && p.match > bestMatch) {
          best = id;
          bestMatch = p.match;
        }
      }
      if (best && bestMatch === last) this.sendTimeoutNow(best);
      this.progress.delete(this.id);
      this.becomeFollower(this.term, '');
      return;
    }
    if (this.maybeCommit()) this.bcastAppend();
    else for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id, false);
  }

  // ---------------------------------------------------------------- plumbing

  private msg(type: MessageType, to: NodeId): Message {
    return emptyMessage(type, this.id, to, this.term);
  }

  private send(m: Message): void {
    // Forwarded requests are the leader's local business: they carry no term,
    // so a term mismatch never drops them (as in etcd).
    if (m.type === MessageType.Prop || m.type === MessageType.ReadIndex || m.type === MessageType.TransferLeader) m.term = 0;
    this.msgs.push(m);
  }
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit &&
    (a.noVoteUntil ?? 0) === (b.noVoteUntil ?? 0) && (a.noVoteTerm ?? 0) === (b.noVoteTerm ?? 0);
}
