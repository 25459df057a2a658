// Types shared by the Raft core, its storage and its transport. The core is a
// pure state machine (see core.ts); these are the values that cross its edge.

/** Member ids are short strings ("1", "s1"); they appear in logs and on the wire. */
export type NodeId = string;

export enum EntryType {
  Normal = 0,
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque to the core. An empty payload is the no-op a new leader appends. */
  data: Uint8Array;
}

export interface HardState {
  term: number;
  /** '' when the member has not voted in `term`. */
  vote: NodeId;
  commit: number;
  /**
   * Set when this member lost log entries it may have acknowledged (storage
   * truncated a damaged tail that reached this index): until a leader has
   * brought its log back to at least this index it does not campaign, and it
   * votes only for a candidate whose log is at least as up to date as the lost
   * log could have been (last entry at noVoteUntil with term noVoteTerm).
   * Absent (0) normally.
   */
  noVoteUntil?: number;
  /** With noVoteUntil: the term at the truncation, a bound on the lost entries' terms. */
  noVoteTerm?: number;
}

/** Membership, one-at-a-time changes: voters decide, learners only receive the log. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  AddLearner = 2,
  /** AddNode on a member that is a learner promotes it. */
}

/** Payload of an EntryType.ConfChange entry. `context` carries e.g. the peer address. */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  context: Uint8Array;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  conf: ConfState;
}

export interface Snapshot {
  meta: SnapshotMetadata;
  data: Uint8Array;
}

export enum MessageType {
  // Local only: never sent on the wire.
  Hup = 0,
  Beat = 1,
  // Proposals a follower forwards to its leader.
  Prop = 2,
  App = 3,
  AppResp = 4,
  Vote = 5,
  VoteResp = 6,
  PreVote = 7,
  PreVoteResp = 8,
  /** One chunk of a snapshot: `snapshot` holds meta, `snapOffset`, `snapTotal`, `snapData`. */
  Snap = 9,
  /** Ack of a snapshot chunk: `index` = bytes received so far; `reject` asks to restart. */
  SnapResp = 10,
  Heartbeat = 11,
  HeartbeatResp = 12,
  TimeoutNow = 13,
  ReadIndex = 14,
  ReadIndexResp = 15,
  TransferLeader = 16,
}

export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** App: term of the entry at `index` (the one just before `entries`). Vote: last log term. */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** AppResp reject: the follower's best guess of the last index that may match. */
  rejectHint: number;
  /** ReadIndex request id; 'transfer' on a Vote from a leadership transfer. */
  context: Uint8Array;
  /** Snap: metadata of the snapshot being sent. */
  snapshot?: SnapshotMetadata;
  snapOffset: number;
  snapTotal: number;
  snapData: Uint8Array;
  /** Set by the transport on the wire (the core never looks at it): the sender's cluster. */
  clusterId?: string;
}

export enum Role {
  Follower = 'follower',
  PreCandidate = 'pre-candidate',
  Candidate = 'candidate',
  Leader = 'leader',
  Learner = 'learner',
}

export interface SoftState {
  leader: NodeId;
  role: Role;
}

export interface ReadState {
  /** Linearizable once the state machine has applied up to this index. */
  index: number;
  context: Uint8Array;
}

/**
 * What the core asks its driver to do, in order: persist `hardState`,
 * `entries` and `snapshot` (one synced write), then send `messages`, apply
 * `snapshot` and `committedEntries`, and call `advance(ready)`.
 * A leader may send its `messages` before persisting (Raft thesis 10.2.1):
 * its own log counts toward commitment only after `advance`.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  readStates: ReadState[];
  /** True when hardState or entries must reach disk with fsync before messages go out. */
  mustSync: boolean;
  /**
   * Asynchronous storage writes only (RaftConfig.asyncStorageWrites): the
   * messages that vouch for local state (acknowledgements, votes). Send them
   * only once this Ready's write, and every earlier one, is durable; then
   * call RaftCore.persisted(rd). `messages` may go out at once.
   */
  afterWrite?: Message[];
}

export interface RaftConfig {
  id: NodeId;
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [e, 2e)). */
  electionTick: number;
  heartbeatTick: number;
  /** Seeded randomness: returns a float in [0, 1). The core never calls Math.random. */
  random: () => number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /** Max bytes of entries in one App message. */
  maxSizePerMsg?: number;
  /** Max App messages in flight to one follower in the Replicate state. */
  maxInflightMsgs?: number;
  /** Max uncommitted bytes the leader accepts before rejecting proposals. */
  maxUncommittedSize?: number;
  /** Bytes per InstallSnapshot chunk. */
  snapshotChunkSize?: number;
  /**
   * TEST ONLY: commit entries of earlier terms by counting replicas (the bug
   * of figure 8 in the Raft paper). Exists so the simulator can show it finds it.
   */
  unsafeCommitPreviousTerms?: boolean;
  /**
   * Pipeline storage writes (etcd-io/raft's AsyncStorageWrites): the driver
   * calls advance() as soon as it has started a Ready's write (and applied
   * its committed entries), so the next Ready (with its outgoing
   * replication) is produced while the fsync is in flight; when the write is
   * durable it sends the Ready's `afterWrite` messages and calls
   * persisted(rd). Acknowledgements, votes and the leader's own log count
   * only from then on; committed entries are handed out only once durable here.
   */
  asyncStorageWrites?: boolean;
  /**
   * TEST ONLY, with asyncStorageWrites: acknowledge before durability —
   * 'follower': a follower's App response goes out as soon as its write
   * starts; 'leader': the leader counts its own log toward the commit quorum
   * as soon as its write starts. Exists so the simulator can show it catches both.
   */
  unsafeAckBeforeDurable?: 'follower' | 'leader';
}

/** Durable state the core restarts from (see storage.ts). */
export interface InitialState {
  hardState: HardState;
  /** Initial membership when the log and snapshot are empty (a fresh cluster). */
  conf: ConfState;
  snapshot?: Snapshot;
  /** Entries after the snapshot, contiguous. */
  entries: Entry[];
  /** Highest index the application has applied (entries up to it are not re-delivered). */
  applied: number;
}

/**
 * Codes of a proposal's failure that clients act on: 'superseded' - another
 * entry was applied at the proposal's index, so it never will be (safe to
 * send again); 'unknown-outcome' and 'timeout' - it may still be applied.
 */
export class RaftError extends Error {
  constructor(
    readonly code: 'not-leader' | 'dropped' | 'superseded' | 'unknown-outcome' | 'transfer-in-progress' | 'conf-change-pending' | 'too-large' | 'stopped' | 'timeout' | 'corrupt',
    message: string,
    readonly leader?: NodeId,
  ) {
    super(message);
    this.name = 'RaftError';
  }
}

export function emptyMessage(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  return {
    type, from, to, term, logTerm: 0, index: 0, entries: [], commit: 0, reject: false,
    rejectHint: 0, context: EMPTY, snapOffset: 0, snapTotal: 0, snapData: EMPTY,
  };
}

export const EMPTY = new Uint8Array(0);

export function entrySize(e: Entry): number {
  return e.data.length + 24;
}
