// The node driver: wires the pure core to durable storage, the TCP transport
// and a ticker, and gives the application a promise-based API: propose (from
// any member), linearizable reads (ReadIndex), membership changes, leadership
// transfer, and events for committed entries and role changes.
import { EventEmitter } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { Packr, pack, unpack } from 'msgpackr';
import pino, { type Logger } from 'pino';
import { type Proposal, decodeConfChange, decodeProposal, encodeProposal } from './codec.ts';
import { RaftCore, type RaftStatus, sendableBeforePersist } from './core.ts';
import { RaftStorage, type SaveRequest } from './storage.ts';
import { type PeerTlsOptions, TcpTransport, type TransportStats } from './transport.ts';
import {
  type ConfChange, ConfChangeType, type ConfState, type Entry, EntryType, type InitialState, type Message,
  EMPTY, type NodeId, RaftError, type Ready, Role, type Snapshot, entrySize,
} from './types.ts';

/**
 * The replicated application. apply() runs for every committed entry, in order, on every member.
 *
 * apply() must be deterministic and total: any member may be handed any bytes
 * (a buggy or hostile proposer, a future version's command), and it must reach
 * the same decision as every other member. An entry it cannot decode, or a
 * command it refuses, is a no-op it reports through its result (and counts);
 * it must not throw for it. A throw is taken as a bug whose effect on the
 * state is unknown: the driver stops this member (fail-stop, 'fatal') rather
 * than guess that skipping the entry leaves it identical to the others.
 */
export interface StateMachine {
  apply(entry: { index: number; term: number; data: Uint8Array }): unknown;
  /** The state as of the last applied entry. */
  snapshot(): Uint8Array;
  /**
   * Optional: the same state as parts to be concatenated (restore() gets the
   * concatenation). Lets a large state be encoded in pieces and copied once
   * into the snapshot, with no intermediate buffer of its whole size.
   */
  snapshotParts?(): Uint8Array[];
  restore(data: Uint8Array, index: number): void;
}

export interface RaftNodeOptions {
  id: NodeId;
  /** Founding members' peer addresses (id → host:port), this member included. */
  peers: Map<NodeId, string>;
  /** host:port this member's transport listens on; defaults to its entry in peers. */
  listen?: string;
  dataDir: string;
  stateMachine: StateMachine;
  logger?: Logger;
  /** Joining an existing cluster: start with no membership and wait for the leader. */
  join?: boolean;
  /**
   * Founding a cluster: the cluster ID is derived from this token and the
   * founding member ids (so every founder computes the same one without
   * talking), and stored in the data directory; later starts use the stored
   * one. Give each cluster its own token so that two clusters with the same
   * member ids cannot talk to each other. A joining member learns the ID from
   * the first message of a peer it was given, and stores it.
   */
  clusterToken?: string;
  tickMs?: number;
  electionTick?: number;
  heartbeatTick?: number;
  /** Take a snapshot and compact the log every this many applied entries. */
  snapshotEntries?: number;
  /**
   * ...or once this many bytes of entries were applied since the last
   * snapshot (default 32 MiB), or as many as the last snapshot's size if that
   * is larger (so that snapshotting costs at most about as much as the
   * writes). This bounds the log the core keeps in memory by bytes: a
   * follower that needs entries from before it gets the snapshot instead.
   */
  snapshotBytes?: number;
  /** Default deadline of propose/read calls. */
  requestTimeoutMs?: number;
  /**
   * Asynchronous storage writes (etcd-io/raft's AsyncStorageWrites; default
   * off): the next Ready is produced, and its replication sent, while the
   * previous fsync is in flight; acknowledgements, votes and this member's
   * own log count toward a commit only once durable. Readys that arrive
   * while a write is in flight are merged into the next write (one fsync).
   */
  asyncStorageWrites?: boolean;
  /** Mutual TLS between members (see raft/transport.ts); plain TCP without it. */
  tls?: PeerTlsOptions;
  /** Extra core settings (tests). */
  core?: Partial<ConstructorParameters<typeof RaftCore>[0]>;
}

/** A storage write of one or more Readys (asynchronous storage writes), and what waits for it to be durable. */
interface QueuedWrite {
  req: SaveRequest & { entries: Entry[] };
  done: (() => void)[];
}

export interface CommittedEvent {
  index: number;
  term: number;
  type: EntryType;
  data: Uint8Array;
  result: unknown;
}

interface Waiter {
  resolve: (v: { index: number; result: unknown }) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  /** Log index, for proposals appended by this member as leader. */
  index?: number;
  /** The leader a follower forwarded the proposal to. */
  forwardedTo?: NodeId;
}

interface ReadBatch {
  ctx: Uint8Array;
  waiters: { resolve: (index: number) => void; reject: (e: Error) => void; deadline: number }[];
  index?: number;
  issuedAt: number;
}

/** Driver-level snapshot wrapping the application's: the peer address book travels with it. */
export interface SnapshotEnvelope {
  peers: Record<NodeId, string>;
  /** The application's snapshot (as parts to concatenate, when encoding). */
  app: Uint8Array;
  appParts?: Uint8Array[];
  /** The applied-log hash chain at the snapshot's index. */
  hash?: string;
}

/**
 * The envelope on disk and on the wire: MAGIC, u32be length of a msgpack
 * header { peers, hash }, the header, then the application's snapshot bytes
 * as they are. One exact-size buffer, the application's bytes copied once
 * and read back without a copy. (msgpack-packing the application's bytes
 * inside the envelope, as before, returned a view into msgpackr's shared
 * output buffer, which grows to twice the largest value packed: the core
 * kept that whole buffer alive with the snapshot.) Envelopes written before
 * are a msgpack map, whose first byte is never 0xc1.
 */
const ENVELOPE_MAGIC = Buffer.from([0xc1, 0x46, 0x4c, 0x31]); // 0xc1 "FL1"

export function encodeSnapshotEnvelope(env: SnapshotEnvelope): Uint8Array {
  const header = pack({ peers: env.peers, hash: env.hash });
  const parts = env.appParts ?? [env.app];
  let size = ENVELOPE_MAGIC.length + 4 + header.length;
  for (const p of parts) size += p.length;
  const out = Buffer.allocUnsafeSlow(size);
  ENVELOPE_MAGIC.copy(out, 0);
  out.writeUInt32BE(header.length, ENVELOPE_MAGIC.length);
  out.set(header, ENVELOPE_MAGIC.length + 4);
  let at = ENVELOPE_MAGIC.length + 4 + header.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function decodeSnapshotEnvelope(data: Uint8Array): SnapshotEnvelope {
  const m = ENVELOPE_MAGIC;
  if (data.length >= m.length + 4 && data[0] === m[0] && data[1] === m[1] && data[2] === m[2] && data[3] === m[3]) {
    const b = Buffer.from(data.buffer, data.byteOffset, data.length);
    const hl = b.readUInt32BE(m.length);
    const start = m.length + 4;
    if (start + hl > b.length) throw new RaftError('corrupt', 'raft: snapshot envelope header runs past its end');
    const header = unpack(b.subarray(start, start + hl)) as { peers: Record<NodeId, string>; hash?: string };
    return { peers: header.peers ?? {}, hash: header.hash, app: data.subarray(start + hl) };
  }
  return unpack(data) as SnapshotEnvelope;
}

/**
 * msgpackr packs every value into one module-wide output buffer and, when a
 * value does not fit, replaces it with one up to twice that value's size,
 * which every later pack keeps using and re-allocating at that size. After
 * a large snapshot was packed (and copied out), start it afresh at a small size.
 */
const packBufferReset = new Packr();
export function resetPackBuffer(): void {
  packBufferReset.useBuffer(Buffer.allocUnsafeSlow(8192));
}

/** Default of RaftNodeOptions.snapshotBytes. */
export const DEFAULT_SNAPSHOT_BYTES = 32 * 1024 * 1024;

/** How many recent (index, hash) pairs of the applied-log hash chain are kept for comparison. */
const HASH_RING = 1 << 16;

/** The ID of a cluster founded by `members` with `token`: the same on every founder. */
export function clusterIdFor(members: NodeId[], token: string): string {
  const h = createHash('sha256').update('flotilla-raft-cluster\0').update(token).update('\0');
  for (const id of [...members].sort()) h.update(id).update('\0');
  return h.digest('hex').slice(0, 16);
}

export class RaftNode extends EventEmitter {
  readonly id: NodeId;
  private core!: RaftCore;
  private storage!: RaftStorage;
  private transport!: TcpTransport;
  private readonly log: Logger;
  private readonly sm: StateMachine;
  private readonly peers: Map<NodeId, string>;
  private readonly origin: string;
  private seq = 0;
  private waiters = new Map<number, Waiter>();
  /** Leader-local proposals by log index: lets a lost proposal fail fast. */
  private byIndex = new Map<number, number>();
  private confWaiters = new Map<number, Waiter>();
  private reads: ReadBatch[] = [];
  private nextReads: ReadBatch['waiters'] = [];
  private readSeq = 0;
  private applied = 0;
  private snapshotIndex = 0;
  /** Bytes of entries (as entrySize counts them) applied since the last snapshot. */
  private bytesSinceSnapshot = 0;
  /** Size of the last snapshot taken or restored. */
  private lastSnapshotBytes = 0;
  private ticker?: NodeJS.Timeout;
  private processing = false;
  private scheduled = false;
  private stopped = false;
  private fatal?: Error;
  private readonly opts: Required<Pick<RaftNodeOptions, 'tickMs' | 'snapshotEntries' | 'snapshotBytes' | 'requestTimeoutMs'>>;
  /** Members whose address the command line gave: a snapshot or conf change never moves them. */
  private readonly fixedPeers: Set<NodeId>;
  /**
   * A hash chain over every applied entry (index, term, type, data): two
   * members with the same hash at an index applied identical logs up to it.
   */
  private appliedHash = '';
  private readonly hashRing = new Array<string>(HASH_RING);
  private readonly hashIndex = new Float64Array(HASH_RING);
  /** Committed normal entries that were not a proposal envelope: applied as no-ops. */
  private rejected = 0;
  private lastRole: Role = Role.Follower;
  private lastLeader: NodeId = '';
  private readonly asyncWrites: boolean;
  /** Asynchronous storage writes: [0] is being written when non-empty, the rest wait (the last one gathers new Readys). */
  private writes: QueuedWrite[] = [];

  private constructor(opts: RaftNodeOptions) {
    super();
    this.id = opts.id;
    this.sm = opts.stateMachine;
    this.peers = new Map(opts.peers);
    this.fixedPeers = new Set(opts.peers.keys());
    this.log = (opts.logger ?? pino({ name: 'raft' })).child({ raft: opts.id });
    this.origin = `${opts.id}/${randomBytes(6).toString('hex')}`;
    this.opts = {
      tickMs: opts.tickMs ?? 20,
      // etcd's default snapshot-count: a snapshot of a large state machine is
      // not free (serialize, write), so not too often.
      snapshotEntries: opts.snapshotEntries ?? 100_000,
      snapshotBytes: opts.snapshotBytes ?? DEFAULT_SNAPSHOT_BYTES,
      requestTimeoutMs: opts.requestTimeoutMs ?? 5_000,
    };
    this.asyncWrites = opts.asyncStorageWrites ?? opts.core?.asyncStorageWrites ?? false;
  }

  static async start(opts: RaftNodeOptions): Promise<RaftNode> {
    const node = new RaftNode(opts);
    await node.init(opts);
    return node;
  }

  private async init(opts: RaftNodeOptions): Promise<void> {
    this.storage = await RaftStorage.open(opts.dataDir, { logger: this.log });
    const loaded = await this.storage.load();
    if (loaded.hardState.noVoteUntil) {
      this.log.warn({ ...this.storage.lastRecovery, noVoteUntil: loaded.hardState.noVoteUntil, lastIndex: this.storage.lastIndex },
        'raft log lost entries this member may have acknowledged: it will not vote or campaign until a leader has restored its log to index %d',
        loaded.hardState.noVoteUntil);
    }
    let snapshot: Snapshot | undefined;
    if (loaded.snapshot) {
      const env = decodeSnapshotEnvelope(loaded.snapshot.data);
      for (const [id, addr] of Object.entries(env.peers)) if (!this.fixedPeers.has(id)) this.peers.set(id, addr);
      this.sm.restore(env.app, loaded.snapshot.meta.index);
      this.appliedHash = env.hash ?? '';
      this.applied = this.snapshotIndex = loaded.snapshot.meta.index;
      this.lastSnapshotBytes = loaded.snapshot.data.length;
      snapshot = loaded.snapshot;
    }
    // Addresses of members added after the founding: replay them from the log.
    for (const e of loaded.entries) if (e.type === EntryType.ConfChange) this.notePeer(decodeConfChange(e.data));
    const conf: ConfState = { voters: opts.join ? [] : [...opts.peers.keys()], learners: [] };
    const init: InitialState = {
      hardState: loaded.hardState, conf, snapshot, entries: loaded.entries, applied: this.applied,
    };
    this.core = new RaftCore(
      {
        id: opts.id,
        electionTick: opts.electionTick ?? 10,
        heartbeatTick: opts.heartbeatTick ?? 2,
        random: Math.random,
        ...opts.core,
        asyncStorageWrites: this.asyncWrites,
      },
      init,
    );
    const clusterId = await this.resolveClusterId(opts, loaded.clusterId, init);
    const listen = opts.listen ?? this.peers.get(opts.id);
    if (!listen) throw new Error(`raft: no listen address for member ${opts.id}`);
    const others = new Map([...this.peers].filter(([id]) => id !== this.id));
    this.transport = new TcpTransport({
      id: opts.id, listen, peers: others, logger: this.log, clusterId, tls: opts.tls,
      onClusterId: (id: string) => {
        this.storage.setClusterId(id).catch((e) => this.die(e as Error));
      },
      onMessage: (m: Message) => this.onMessage(m),
      onPeerDisconnected: (id: NodeId) => {
        if (this.stopped) return;
        this.core.peerUnreachable(id);
        this.kick();
      },
    });
    await this.transport.start();
    this.ticker = setInterval(() => {
      this.core.tick();
      this.kick();
    }, this.opts.tickMs);
    this.kick();
  }

  /** The stored cluster ID; else a founder derives (and stores) it; a joiner learns it later (undefined). */
  private async resolveClusterId(opts: RaftNodeOptions, stored: string | undefined, init: InitialState): Promise<string | undefined> {
    if (stored) return stored;
    if (opts.join) {
      this.log.info('joining: the raft cluster ID will be learned from the first message of a peer');
      return undefined;
    }
    const id = clusterIdFor([...opts.peers.keys()], opts.clusterToken ?? '');
    const fresh = !init.snapshot && !init.entries.length && init.hardState.term === 0;
    if (!fresh) this.log.warn({ cluster: id }, 'raft log has no cluster ID (written by an older version): deriving it from --peers');
    await this.storage.setClusterId(id);
    return id;
  }

  get clusterId(): string {
    return this.transport.clusterId;
  }

  // ---------------------------------------------------------------- API

  /** Replicates `payload`; resolves with its index and the state machine's result once applied here. */
  propose(payload: Uint8Array, timeoutMs = this.opts.requestTimeoutMs): Promise<{ index: number; result: unknown }> {
    this.checkRunning();
    const seq = ++this.seq;
    const data = encodeProposal({ origin: this.origin, seq, payload });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.dropWaiter(seq);
        reject(new RaftError('timeout', 'raft: proposal not applied in time (its outcome is unknown)', this.core.leader));
      }, timeoutMs);
      const w: Waiter = { resolve, reject, timer };
      this.waiters.set(seq, w);
      this.submit(seq, data);
    });
  }

  /** Hands a proposal to the core; during an election it retries each tick until the caller's deadline. */
  private submit(seq: number, data: Uint8Array): void {
    const w = this.waiters.get(seq);
    if (!w || this.stopped) return;
    try {
      const r = this.core.propose(data);
      if (r) {
        w.index = r.index;
        this.byIndex.set(r.index, seq);
      } else {
        w.forwardedTo = this.core.leader;
      }
      this.kick();
    } catch (e) {
      if (e instanceof RaftError && (e.code === 'dropped' || e.code === 'transfer-in-progress')) {
        setTimeout(() => this.submit(seq, data), this.opts.tickMs);
        return;
      }
      this.failWaiter(seq, e as Error);
    }
  }

  /**
   * Waits until this member's state reflects every write acknowledged before
   * the call (ReadIndex). Concurrent calls share one round trip.
   */
  readIndex(timeoutMs = this.opts.requestTimeoutMs): Promise<number> {
    this.checkRunning();
    return new Promise((resolve, reject) => {
      this.nextReads.push({ resolve, reject, deadline: Date.now() + timeoutMs });
      this.issueReads();
    });
  }

  async addMember(id: NodeId, peerAddr: string, opts: { learner?: boolean } = {}): Promise<number> {
    const context = new TextEncoder().encode(peerAddr);
    return this.changeConf({ type: opts.learner ? ConfChangeType.AddLearner : ConfChangeType.AddNode, nodeId: id, context });
  }

  async promoteMember(id: NodeId): Promise<number> {
    const addr = this.peers.get(id);
    if (!addr) throw new RaftError('dropped', `raft: unknown member ${id}`);
    return this.changeConf({ type: ConfChangeType.AddNode, nodeId: id, context: new TextEncoder().encode(addr) });
  }

  async removeMember(id: NodeId): Promise<number> {
    return this.changeConf({ type: ConfChangeType.RemoveNode, nodeId: id, context: new Uint8Array(0) });
  }

  /** Asks the leader (this member) to hand leadership to `to`; resolves when `to` leads. */
  async transferLeadership(to: NodeId, timeoutMs = this.opts.requestTimeoutMs): Promise<void> {
    this.checkRunning();
    this.core.transferLeader(to);
    this.kick();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.core.leader === to) return;
      await new Promise((r) => setTimeout(r, this.opts.tickMs));
    }
    throw new RaftError('timeout', `raft: leadership did not move to ${to} in time`, this.core.leader);
  }

  status(): RaftStatus & { members: { id: NodeId; peer: string; voter: boolean }[] } {
    const s = this.core.status();
    const members = [
      ...s.conf.voters.map((id) => ({ id, peer: this.peers.get(id) ?? '', voter: true })),
      ...s.conf.learners.map((id) => ({ id, peer: this.peers.get(id) ?? '', voter: false })),
    ];
    return { ...s, applied: this.applied, members };
  }

  /** Counters for metrics: entries applied as no-ops, and what the transport dropped. */
  stats(): { rejectedEntries: number; droppedProposals: number } & TransportStats {
    return { rejectedEntries: this.rejected, droppedProposals: this.core.droppedProposals, ...this.transport.stats };
  }

  get leader(): NodeId {
    return this.core.leader;
  }

  get role(): Role {
    return this.core.role;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  peerAddress(id: NodeId): string | undefined {
    return this.peers.get(id);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    const err = new RaftError('stopped', 'raft: node stopped');
    this.failAll(err);
    await this.transport?.stop();
    while (this.processing) await new Promise((r) => setTimeout(r, 5));
    await this.storage?.close();
  }

  // ---------------------------------------------------------------- loop

  private onMessage(m: Message): void {
    if (this.stopped) return;
    this.core.step(m);
    this.kick();
  }

  private kick(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.process();
    });
  }

  private async process(): Promise<void> {
    if (this.processing || this.stopped) return;
    this.processing = true;
    try {
      while (!this.stopped && this.core.hasReady()) {
        const rd = this.core.ready();
        if (this.asyncWrites) this.startReady(rd);
        else await this.handleReady(rd);
        this.core.advance(rd);
        this.afterAdvance();
      }
    } catch (e) {
      this.die(e as Error);
    } finally {
      this.processing = false;
    }
  }

  private async handleReady(rd: Ready): Promise<void> {
    const leader = this.core.role === Role.Leader;
    let later = rd.messages;
    if (leader) {
      // A leader replicates while it writes its own log (Raft thesis 10.2.1).
      const now = rd.messages.filter(sendableBeforePersist);
      if (now.length === rd.messages.length) later = [];
      else later = rd.messages.filter((m) => !sendableBeforePersist(m));
      this.transport.send(now);
    }
    if (rd.hardState || rd.entries.length || rd.snapshot) {
      const saved = this.storage.save({ hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot, sync: rd.mustSync });
      // Only the commit index moved: nothing below depends on it being on disk
      // (it is relearned from the leader after a crash), and storage keeps
      // writes in order, so apply without waiting for the write.
      if (rd.mustSync) await saved;
      else saved.catch((e) => this.die(e as Error));
    }
    if (later.length) this.transport.send(later);
    this.applyReady(rd);
  }

  /**
   * Asynchronous storage writes: send what needs no durability, queue the
   * write, apply (the core hands out only entries already durable here), and
   * return without waiting; the core is advanced at once. When the write
   * lands, the messages that vouch for it go out and the core learns it is
   * durable (persisted), which may commit and so produce another Ready.
   */
  private startReady(rd: Ready): void {
    if (rd.messages.length) this.transport.send(rd.messages);
    const after = rd.afterWrite ?? [];
    this.enqueueWrite(rd, () => {
      if (this.stopped) return;
      if (after.length) this.transport.send(after);
      this.core.persisted(rd);
      this.kick();
    });
    this.applyReady(rd);
  }

  /**
   * Queues rd's write; `done` runs once it and every earlier write are
   * durable. One write is in flight at a time; Readys arriving meanwhile are
   * merged into the next one (later entries replace earlier ones from their
   * first index on, as storage does; the latest hard state wins), so a busy
   * member pays one fsync per round rather than one per Ready. A snapshot is
   * never merged: it replaces the log, and its write stands alone.
   */
  private enqueueWrite(rd: Ready, done: () => void): void {
    const q = this.writes;
    const hasWrite = rd.hardState !== undefined || rd.entries.length > 0 || rd.snapshot !== undefined;
    if (!hasWrite) {
      if (q.length) q[q.length - 1]!.done.push(done);
      else done();
      return;
    }
    const tail = q.length > 1 ? q[q.length - 1]! : undefined;
    if (tail && !tail.req.snapshot && !rd.snapshot) {
      const r = tail.req;
      if (rd.entries.length) {
        const first = rd.entries[0]!.index;
        r.entries = r.entries.filter((e) => e.index < first).concat(rd.entries);
      }
      if (rd.hardState) r.hardState = rd.hardState;
      r.sync = r.sync || rd.mustSync;
      tail.done.push(done);
      return;
    }
    q.push({ req: { hardState: rd.hardState, entries: rd.entries, snapshot: rd.snapshot, sync: rd.mustSync }, done: [done] });
    if (q.length === 1) this.writeNext();
  }

  private writeNext(): void {
    const w = this.writes[0];
    if (!w || this.stopped) return;
    this.storage.save(w.req).then(() => {
      this.writes.shift();
      for (const f of w.done) f();
      this.writeNext();
    }, (e) => this.die(e as Error));
  }

  /** Steps 3 of the Ready contract: role events, snapshot, committed entries, reads. */
  private applyReady(rd: Ready): void {
    if (rd.softState) this.onSoftState();
    if (rd.snapshot) this.applySnapshot(rd.snapshot);
    for (const e of rd.committedEntries) this.applyEntry(e);
    for (const rs of rd.readStates) this.onReadState(rs.context, rs.index);
  }

  private afterAdvance(): void {
    this.resolveReads();
    if (this.snapshotDue() && this.core.log.applied === this.applied) this.takeSnapshot();
  }

  /** Whether enough was applied since the last snapshot, by count or by bytes. */
  private snapshotDue(): boolean {
    if (this.applied <= this.snapshotIndex) return false;
    if (this.applied - this.snapshotIndex >= this.opts.snapshotEntries) return true;
    return this.bytesSinceSnapshot >= Math.max(this.opts.snapshotBytes, this.lastSnapshotBytes);
  }

  private takeSnapshot(): void {
    const index = this.applied;
    const t0 = performance.now();
    const parts = this.sm.snapshotParts?.();
    const data = encodeSnapshotEnvelope({
      peers: Object.fromEntries(this.peers), hash: this.appliedHash,
      ...(parts ? { app: EMPTY, appParts: parts } : { app: this.sm.snapshot() }),
    });
    resetPackBuffer();
    this.core.compact(index, data);
    this.snapshotIndex = index;
    this.bytesSinceSnapshot = 0;
    this.lastSnapshotBytes = data.length;
    const meta = { index, term: this.core.log.snapTerm, conf: this.core.confState() };
    this.storage.compact({ meta, data }).catch((e) => this.die(e));
    // Serializing blocks the event loop: the time says how close it comes to an election timeout.
    this.log.info({ index, bytes: data.length, ms: Math.round(performance.now() - t0) }, 'snapshot taken, log compacted');
  }

  private applySnapshot(s: Snapshot): void {
    const env = decodeSnapshotEnvelope(s.data);
    for (const [id, addr] of Object.entries(env.peers)) this.notePeerAddr(id, addr);
    this.sm.restore(env.app, s.meta.index);
    this.applied = this.snapshotIndex = s.meta.index;
    this.bytesSinceSnapshot = 0;
    this.lastSnapshotBytes = s.data.length;
    this.appliedHash = env.hash ?? '';
    this.recordHash(s.meta.index);
    this.log.info({ index: s.meta.index }, 'restored state from a snapshot sent by the leader');
    // Local proposals at or below the snapshot are unknowable now.
    for (const [index, seq] of this.byIndex) {
      if (index <= s.meta.index) this.failWaiter(seq, new RaftError('unknown-outcome', 'raft: outcome unknown (replaced by a snapshot)'));
    }
  }

  private applyEntry(e: Entry): void {
    if (e.index <= this.applied) return;
    this.applied = e.index;
    this.bytesSinceSnapshot += entrySize(e);
    this.appliedHash = createHash('sha1')
      .update(`${this.appliedHash}:${e.index}:${e.term}:${e.type}:`).update(e.data).digest('base64');
    this.recordHash(e.index);
    let result: unknown;
    let mine: number | undefined;
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      this.notePeer(cc);
      const w = this.confWaiters.get(e.index);
      if (w) {
        this.confWaiters.delete(e.index);
        clearTimeout(w.timer);
        w.resolve({ index: e.index, result: cc });
      }
      if (cc.type === ConfChangeType.RemoveNode && cc.nodeId === this.id) {
        this.log.warn({ index: e.index }, 'this member was removed from the cluster');
        this.emit('removed');
      }
      this.emit('committed', { index: e.index, term: e.term, type: e.type, data: e.data, result: cc } satisfies CommittedEvent);
      return;
    }
    if (e.data.length === 0) {
      this.emit('committed', { index: e.index, term: e.term, type: e.type, data: e.data, result: undefined });
      return; // a new leader's no-op
    }
    let p: Proposal;
    try {
      p = decodeProposal(e.data);
    } catch (err) {
      // Not an envelope this driver wrote (every member sees the same bytes
      // and decides the same): a no-op for the application, recorded, never a crash.
      this.rejected++;
      this.log.warn({ index: e.index, term: e.term, bytes: e.data.length, err: (err as Error).message },
        'raft: committed entry %d is not a proposal; applied as a no-op', e.index);
      const expected = this.byIndex.get(e.index);
      if (expected !== undefined) {
        this.byIndex.delete(e.index);
        this.failWaiter(expected, new RaftError('superseded', 'raft: proposal lost in a leader change; retry'));
      }
      this.emit('committed', { index: e.index, term: e.term, type: e.type, data: e.data, result: undefined } satisfies CommittedEvent);
      return;
    }
    try {
      result = this.sm.apply({ index: e.index, term: e.term, data: p.payload });
    } catch (err) {
      throw new Error(`raft: the state machine threw applying entry ${e.index} (term ${e.term}); ` +
        `stopping this member: ${(err as Error).message}`, { cause: err });
    }
    if (p.origin === this.origin) mine = p.seq;
    const expected = this.byIndex.get(e.index);
    if (expected !== undefined) {
      this.byIndex.delete(e.index);
      if (expected !== mine) this.failWaiter(expected, new RaftError('superseded', 'raft: proposal lost in a leader change; retry'));
    }
    if (mine !== undefined) {
      const w = this.waiters.get(mine);
      if (w) {
        this.dropWaiter(mine);
        w.resolve({ index: e.index, result });
      }
    }
    this.emit('committed', { index: e.index, term: e.term, type: e.type, data: p.payload, result } satisfies CommittedEvent);
  }

  private onSoftState(): void {
    const role = this.core.role;
    const leader = this.core.leader;
    if (role !== this.lastRole || leader !== this.lastLeader) {
      this.log.info({ role, leader, term: this.core.term }, 'raft role changed');
      this.lastRole = role;
      this.lastLeader = leader;
      this.emit('role', { role, leader, term: this.core.term });
    }
    // Proposals forwarded to a leader that is gone are in limbo: answer them
    // now (outcome unknown) so that clients retry against the new leader
    // instead of waiting out their deadline.
    for (const [seq, w] of this.waiters) {
      if (w.forwardedTo !== undefined && w.forwardedTo !== leader) {
        this.failWaiter(seq, new RaftError('unknown-outcome', `raft: leader ${w.forwardedTo} lost; the proposal's outcome is unknown`, leader));
      }
    }
    if (role !== Role.Leader) {
      // Proposals appended while leader may be truncated by the new leader: they
      // fail fast when another entry is applied at their index (applyEntry).
      for (const [, w] of this.confWaiters) {
        clearTimeout(w.timer);
        w.reject(new RaftError('unknown-outcome', 'raft: leadership lost before the conf change applied'));
      }
      this.confWaiters.clear();
    }
    if (leader) this.issueReads();
  }

  // ---------------------------------------------------------------- reads

  private issueReads(): void {
    if (!this.nextReads.length || this.stopped) return;
    if (this.reads.some((b) => b.index === undefined)) return; // one round trip in flight at a time
    const ctx = Buffer.alloc(12);
    ctx.writeUInt32BE(++this.readSeq, 0);
    randomBytes(8).copy(ctx, 4);
    const batch: ReadBatch = { ctx, waiters: this.nextReads, issuedAt: Date.now() };
    this.nextReads = [];
    try {
      this.core.readIndex(ctx);
    } catch {
      // No leader yet: keep waiting (until each read's deadline) and retry on a role change or tick.
      this.nextReads = batch.waiters.concat(this.nextReads);
      this.expireReads();
      setTimeout(() => this.issueReads(), this.opts.tickMs * 2).unref();
      return;
    }
    this.reads.push(batch);
    this.kick();
    // Lost messages: if no answer comes, retry this batch with a fresh context.
    setTimeout(() => {
      if (batch.index !== undefined || this.stopped) return;
      const i = this.reads.indexOf(batch);
      if (i < 0) return;
      this.reads.splice(i, 1);
      this.nextReads = batch.waiters.concat(this.nextReads);
      this.expireReads();
      this.issueReads();
    }, Math.max(200, this.opts.tickMs * 8)).unref();
  }

  private expireReads(): void {
    const now = Date.now();
    const keep: ReadBatch['waiters'] = [];
    for (const w of this.nextReads) {
      if (w.deadline <= now) w.reject(new RaftError('timeout', 'raft: linearizable read timed out (no leader?)', this.core.leader));
      else keep.push(w);
    }
    this.nextReads = keep;
  }

  private onReadState(ctx: Uint8Array, index: number): void {
    const b = this.reads.find((r) => Buffer.compare(Buffer.from(r.ctx), Buffer.from(ctx)) === 0);
    if (b) b.index = index;
    this.resolveReads();
    this.issueReads();
  }

  private resolveReads(): void {
    if (!this.reads.length) return;
    const keep: ReadBatch[] = [];
    for (const b of this.reads) {
      if (b.index !== undefined && b.index <= this.applied) {
        for (const w of b.waiters) w.resolve(b.index);
      } else keep.push(b);
    }
    this.reads = keep;
  }

  // ---------------------------------------------------------------- membership

  private async changeConf(cc: ConfChange, timeoutMs = this.opts.requestTimeoutMs): Promise<number> {
    this.checkRunning();
    const { index } = this.core.proposeConfChange(cc);
    this.kick();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.confWaiters.delete(index);
        reject(new RaftError('timeout', 'raft: conf change not applied in time (its outcome is unknown)'));
      }, timeoutMs);
      this.confWaiters.set(index, { resolve: (v) => resolve(v.index), reject, timer });
    });
  }

  private notePeer(cc: ConfChange): void {
    if (cc.type === ConfChangeType.RemoveNode) {
      if (cc.nodeId !== this.id) {
        this.peers.delete(cc.nodeId);
        this.transport?.removePeer(cc.nodeId);
      }
      return;
    }
    if (cc.context.length) this.notePeerAddr(cc.nodeId, new TextDecoder().decode(cc.context));
  }

  private recordHash(index: number): void {
    const slot = index % HASH_RING;
    this.hashRing[slot] = this.appliedHash;
    this.hashIndex[slot] = index;
  }

  /** The applied-log hash chain at `index`, if this member applied it recently (and not via a snapshot past it). */
  appliedHashAt(index: number): string | undefined {
    const slot = index % HASH_RING;
    return this.hashIndex[slot] === index ? this.hashRing[slot] : undefined;
  }

  private notePeerAddr(id: NodeId, addr: string): void {
    if (!addr || (this.fixedPeers.has(id) && this.peers.has(id))) return;
    this.peers.set(id, addr);
    if (id !== this.id) this.transport?.setPeer(id, addr);
  }

  // ---------------------------------------------------------------- errors

  private checkRunning(): void {
    if (this.fatal) throw this.fatal;
    if (this.stopped) throw new RaftError('stopped', 'raft: node stopped');
  }

  private dropWaiter(seq: number): void {
    const w = this.waiters.get(seq);
    if (!w) return;
    clearTimeout(w.timer);
    this.waiters.delete(seq);
    if (w.index !== undefined) this.byIndex.delete(w.index);
  }

  private failWaiter(seq: number, err: Error): void {
    const w = this.waiters.get(seq);
    if (!w) return;
    this.dropWaiter(seq);
    w.reject(err);
  }

  private failAll(err: Error): void {
    for (const seq of [...this.waiters.keys()]) this.failWaiter(seq, err);
    for (const [, w] of this.confWaiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.confWaiters.clear();
    for (const b of this.reads) for (const w of b.waiters) w.reject(err);
    for (const w of this.nextReads) w.reject(err);
    this.reads = [];
    this.nextReads = [];
  }

  /** A storage failure or a broken invariant: stop taking part rather than risk safety. */
  private die(e: Error): void {
    if (this.fatal) return;
    this.fatal = e;
    this.log.fatal({ err: e }, 'raft node failed; stopping');
    this.failAll(e);
    this.emit('fatal', e);
    void this.stop();
  }
}
