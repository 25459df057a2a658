// One simulated member: a RaftCore, its Disk (which survives crashes), its
// state machine (which does not), and the driver loop of the Ready contract:
// persist, send, apply, advance. A Ready's write may stay in flight over
// several steps (a slow disk); messages the policy allows go out before it
// lands, and a crash in between loses the write. With asynchronous storage
// writes (raft.asyncStorageWrites) the driver advances the core as soon as a
// write starts: several writes may be in flight, landing in order, and each
// Ready's afterWrite messages go out (and core.persisted runs) only when its
// write lands.
import { RaftCore, sendableBeforePersist } from '../../../raft/core.ts';
import {
  type ConfChange, type ConfState, type Entry, type Message, MessageType, type NodeId, type RaftConfig, RaftError,
  type ReadState, type Ready, Role,
} from '../../../raft/types.ts';
import { Disk } from './disk.ts';
import type { CommittedEntry, History } from './history.ts';
import type { Rng } from '../../../harness/rng.ts';
import { fmtConf, sameConf, StateMachine } from './state-machine.ts';
import { Violation } from './violation.ts';

/** Which messages of a Ready go out before its write is durable. */
export type EarlySend = 'none' | 'sendable' | 'leader';

export interface NodeConfig {
  raft: Omit<RaftConfig, 'id' | 'random'>;
  /** Snapshot the state machine (and compact the log) every this many applied entries. */
  compactEvery: number;
  earlySend: EarlySend;
}

/** What a node needs from the simulation around it. */
export interface NodeHost {
  readonly history: History;
  /** `via` is the member that emits `m`. */
  send(m: Message, via: NodeId): void;
  applied(node: SimNode, e: Entry, cc: ConfChange | undefined, first: CommittedEntry | undefined): void;
  readState(node: SimNode, rs: ReadState): void;
  snapshotInstalled(node: SimNode): void;
  event(text: () => string): void;
}

type Status = ReturnType<RaftCore['status']>;

interface InFlightReady {
  rd: Ready;
  sentEarly: Set<Message>;
  /** The term this member led when the Ready was taken (0 when not leading). */
  leaderTerm: number;
}

export class SimNode {
  readonly disk: Disk;
  core: RaftCore | undefined;
  sm: StateMachine | undefined;
  up = false;
  /** Its removal from the cluster is committed: it is (or soon will be) shut down for good. */
  removed = false;
  incarnation = 0;
  /** Last observed status fields (this incarnation). */
  role: Role = Role.Follower;
  term = 0;
  commit = 0;
  /** Step at which a crashed member comes back (0: not scheduled). */
  restartAt = 0;
  /** Until this step the member's disk is stuck: Readys are not processed. */
  stalledUntil = 0;
  /** Step at which this member last campaigned or granted a vote. */
  votedAt = -1;
  private now = 0;
  private pending: InFlightReady | undefined;
  /** Asynchronous storage writes: Readys already advanced whose writes have not landed, oldest first. */
  private writes: { rd: Ready; leaderTerm: number }[] = [];
  /** Leader completeness check due at this leader's first persisted Ready. */
  private leaderCheck: { term: number; bound: number } | undefined;

  constructor(
    readonly id: NodeId,
    /** The membership a brand-new member starts from (founders: the initial voters; joiners: none). */
    readonly bootConf: ConfState,
    readonly cfg: NodeConfig,
    private readonly host: NodeHost,
    private readonly rng: Rng,
  ) {
    this.disk = new Disk(id);
  }

  get hasPendingWrite(): boolean {
    return this.pending !== undefined || this.writes.length > 0;
  }

  private get async(): boolean {
    return this.cfg.raft.asyncStorageWrites === true;
  }

  start(): void {
    if (this.up) return;
    this.incarnation++;
    const init = this.disk.initialState(this.bootConf);
    const random = this.rng.fork();
    const cfg: RaftConfig = { ...this.cfg.raft, id: this.id, random: () => random.next() };
    this.core = this.guard('new RaftCore', () => new RaftCore(cfg, init));
    this.up = true;
    this.role = Role.Follower;
    this.term = init.hardState.term;
    this.commit = 0;
    this.restartAt = 0;
    this.leaderCheck = undefined;
    if (this.disk.snapshot) {
      this.sm = StateMachine.restore(this.disk.snapshot);
      this.host.history.restored(this.id, this.sm);
    } else {
      // As the core: a brand-new member starts from its boot membership (whose
      // founding conf changes the log then repeats), a restarting one from the log.
      const fresh = init.entries.length === 0 && init.hardState.term === 0;
      this.sm = new StateMachine(fresh ? this.bootConf : { voters: [], learners: [] });
    }
    this.observe();
  }

  /** Loses everything not on disk, including a Ready whose write has not landed (and, if `loseUnsynced`, writes not fsynced). */
  crash(loseUnsynced = false): void {
    this.disk.crash(loseUnsynced);
    this.up = false;
    this.core = undefined;
    this.sm = undefined;
    this.pending = undefined;
    this.writes = [];
    this.leaderCheck = undefined;
    this.role = Role.Follower;
  }

  status(): Status {
    return this.live().status();
  }

  tick(): void {
    this.call('tick', (c) => c.tick());
  }

  deliver(m: Message): void {
    this.call('step', (c) => c.step(m));
  }

  propose(data: Uint8Array): { index: number; term: number } | null {
    return this.call('propose', (c) => c.propose(data));
  }

  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    return this.call('proposeConfChange', (c) => c.proposeConfChange(cc));
  }

  readIndex(context: Uint8Array): void {
    this.call('readIndex', (c) => c.readIndex(context));
  }

  campaign(): void {
    this.call('campaign', (c) => c.campaign());
  }

  transferLeader(to: NodeId): void {
    this.call('transferLeader', (c) => c.transferLeader(to));
  }

  /**
   * One turn of the driver loop. A write still in flight lands unless
   * `slowDisk` says it stays out; then a new Ready is taken and its write
   * either lands now or (with probability `slowDisk`) stays in flight.
   */
  processReady(now: number, slowDisk: number): void {
    this.now = now;
    if (!this.up || now < this.stalledUntil) return;
    if (this.async) {
      this.processAsync(slowDisk);
      return;
    }
    if (this.pending) {
      if (this.rng.chance(slowDisk)) return;
      this.finishReady();
    }
    if (!this.up || !this.live().hasReady()) return;
    const rd = this.call('ready', (c) => c.ready());
    const pending: InFlightReady = { rd, sentEarly: new Set(), leaderTerm: this.role === Role.Leader ? this.term : 0 };
    for (const m of rd.messages) {
      if (this.sendsEarly(m)) {
        this.checkMessage(m);
        pending.sentEarly.add(m);
        this.host.send(m, this.id);
      }
    }
    this.pending = pending;
    if (this.rng.chance(slowDisk)) return;
    this.finishReady();
  }

  /**
   * The asynchronous driver: in-flight writes land in order (each unless the
   * slow disk holds it, which holds the ones behind it too); then a new Ready
   * is taken, its messages sent, its committed entries applied and the core
   * advanced at once, and its write joins the queue.
   */
  private processAsync(slowDisk: number): void {
    while (this.writes.length && !this.rng.chance(slowDisk)) this.landWrite();
    if (!this.up || !this.live().hasReady()) return;
    const rd = this.call('ready', (c) => c.ready());
    const leaderTerm = this.role === Role.Leader ? this.term : 0;
    for (const m of rd.messages) {
      this.checkMessage(m);
      this.host.send(m, this.id);
    }
    this.writes.push({ rd, leaderTerm });
    this.applyAndAdvance(rd);
    if (!this.rng.chance(slowDisk)) this.landWrite();
  }

  /** The oldest in-flight write lands: persist, send what waited for it, tell the core. */
  private landWrite(): void {
    const { rd, leaderTerm } = this.writes.shift()!;
    this.persist(rd);
    if (this.leaderCheck && leaderTerm === this.leaderCheck.term) {
      // Every write up to this leader's first Ready has landed: its disk holds its whole log as of its election.
      this.host.history.checkLeaderLog(this.id, this.leaderCheck.term, this.leaderCheck.bound, this.disk);
      this.leaderCheck = undefined;
    }
    for (const m of rd.afterWrite ?? []) {
      this.checkMessage(m);
      this.host.send(m, this.id);
    }
    this.call('persisted', (c) => c.persisted(rd));
    this.maybeCompact();
  }

  private sendsEarly(m: Message): boolean {
    switch (this.cfg.earlySend) {
      case 'none':
        return false;
      case 'sendable':
        return sendableBeforePersist(m);
      case 'leader':
        return this.role === Role.Leader;
    }
  }

  private finishReady(): void {
    const { rd, sentEarly, leaderTerm } = this.pending!;
    this.pending = undefined;
    const h = this.host.history;

    // 1. Persist.
    this.persist(rd);
    if (this.leaderCheck && leaderTerm === this.leaderCheck.term) {
      h.checkLeaderLog(this.id, leaderTerm, this.leaderCheck.bound, this.disk);
      this.leaderCheck = undefined;
    }

    // 2. Send.
    for (const m of rd.messages) {
      if (sentEarly.has(m)) continue;
      this.checkMessage(m);
      this.host.send(m, this.id);
    }

    this.applyAndAdvance(rd);
  }

  private persist(rd: Ready): void {
    const h = this.host.history;
    this.disk.save(rd);
    if (rd.messages.some(castsVote) || rd.afterWrite?.some(castsVote)) this.votedAt = this.now;
    if (rd.snapshot) h.snapshotStored(this.id, rd.snapshot.meta);
    h.persisted(this.id, rd.entries, this.disk);
  }

  /** Steps 3 and 4 of the driver loop: apply what the Ready hands out, then advance the core. */
  private applyAndAdvance(rd: Ready): void {
    const h = this.host.history;
    // 3. Apply.
    let sm = this.sm!;
    if (rd.snapshot) {
      const restored = StateMachine.restore(rd.snapshot);
      if (restored.applied <= sm.applied) {
        throw new Violation('contract', `${this.id}: Ready snapshot at ${restored.applied} would roll the state machine back from ${sm.applied}`);
      }
      h.restored(this.id, restored);
      this.host.snapshotInstalled(this);
      this.host.event(() => `${this.id} installs snapshot ${restored.applied}/${restored.term}`);
      sm = this.sm = restored;
    }
    for (const e of rd.committedEntries) {
      const cc = sm.apply(e);
      this.host.applied(this, e, cc, h.applied(this.id, e, sm, cc));
    }
    for (const rs of rd.readStates) this.host.readState(this, rs);

    // 4. Advance, and check the core agrees with what was applied.
    this.call('advance', (c) => c.advance(rd));
    const s = this.status();
    if (s.applied !== sm.applied) {
      throw new Violation('contract', `${this.id}: after advance the core reports applied ${s.applied}, the application applied ${sm.applied}`);
    }
    // (Unless a snapshot arrived meanwhile: the core adopts its membership on receipt.)
    if (s.firstIndex - 1 <= s.applied && !sameConf(s.conf, sm.conf)) {
      throw new Violation('contract', `${this.id}: core conf ${fmtConf(s.conf)} but the applied log gives ${fmtConf(sm.conf)} at ${sm.applied}`);
    }
    this.maybeCompact();
  }

  private maybeCompact(): void {
    // Asynchronously, the app's snapshot is stored after the writes in flight (storage runs them in order): model it when they have landed.
    if (this.writes.length) return;
    const sm = this.sm!;
    if (sm.applied - this.disk.snapIndex < this.cfg.compactEvery) return;
    const data = sm.encode();
    const meta = { index: sm.applied, term: sm.term, conf: { voters: [...sm.conf.voters], learners: [...sm.conf.learners] } };
    this.call('compact', (c) => c.compact(sm.applied, data));
    this.disk.compact({ meta, data });
    this.host.history.snapshotStored(this.id, meta);
  }

  /** Checks a message about to leave: well-formed, and vouching only for what is on disk. */
  private checkMessage(m: Message): void {
    // A follower forwards proposals and transfer requests under their originator's name.
    const forwarded = m.type === MessageType.Prop || m.type === MessageType.TransferLeader;
    if ((m.from !== this.id && !forwarded) || m.to === this.id || m.to === '' || m.type === MessageType.Hup || m.type === MessageType.Beat) {
      throw new Violation('contract', `${this.id} emits ${MessageType[m.type]} from '${m.from}' to '${m.to}'`);
    }
    const hs = this.disk.hardState;
    const what = `${this.id} sends ${MessageType[m.type]} (term ${m.term}) to ${m.to}`;
    switch (m.type) {
      case MessageType.AppResp:
        // (A higher-term leader may have truncated the acknowledged entries
        // since, in the same Ready: the acknowledgement is merely stale.)
        if (!m.reject && m.term === hs.term && m.index > this.disk.lastIndex()) {
          throw new Violation('durability', `${what} acknowledging entries up to ${m.index}, but its disk ends at ${this.disk.lastIndex()}`);
        }
        break;
      case MessageType.Vote:
      case MessageType.VoteResp: {
        if (m.type === MessageType.VoteResp && m.reject) break;
        const votee = m.type === MessageType.Vote ? this.id : m.to;
        if (hs.term < m.term || (hs.term === m.term && hs.vote !== votee)) {
          throw new Violation('durability', `${what} voting for ${votee}, but its disk has term ${hs.term} vote '${hs.vote}'`);
        }
        break;
      }
    }
  }

  private live(): RaftCore {
    if (!this.core) throw new Error(`raft-sim: member ${this.id} is down`);
    return this.core;
  }

  /** Calls into the core, then observes its status (election safety, monotonic term and commit). */
  private call<T>(what: string, fn: (c: RaftCore) => T): T {
    const core = this.live();
    let result: T;
    try {
      result = this.guard(what, () => fn(core));
    } catch (e) {
      if (e instanceof RaftError) this.observe();
      throw e;
    }
    this.observe();
    return result;
  }

  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof RaftError || e instanceof Violation) throw e;
      const err = e as Error;
      throw new Violation('core-error', `${what} on ${this.id} threw ${err?.stack ?? String(e)}`);
    }
  }

  private observe(): void {
    const s = this.live().status();
    if (s.term < this.term) throw new Violation('durability', `${this.id}: term went back from ${this.term} to ${s.term}`);
    if (s.commit < this.commit) throw new Violation('durability', `${this.id}: commit went back from ${this.commit} to ${s.commit}`);
    if (s.role === Role.Leader && s.commit > this.commit) this.host.history.checkCommitDurable(this.id, s, this.live().log.term(s.commit));
    this.term = s.term;
    this.commit = s.commit;
    const h = this.host.history;
    h.commit(s.commit);
    if (s.role === Role.Leader && h.leader(s.term, this.id)) {
      this.leaderCheck = { term: s.term, bound: h.maxApplied };
      this.host.event(() => `${this.id} leads term ${s.term} (log ${s.lastIndex}, commit ${s.commit})`);
    }
    this.role = s.role;
  }
}

/** A vote request (for itself) or a granted vote: what a member must never forget. */
function castsVote(m: Message): boolean {
  return m.type === MessageType.Vote || (m.type === MessageType.VoteResp && !m.reject);
}
