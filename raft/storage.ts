// The durable Raft log: hard state, entries and the latest snapshot in one
// LevelDB database per member.
//
// Layout (keys are bytes; big-endian fixed width so index order = key order):
//   'e' + u64be(index)        one log entry        payload: codec Entry
//   'h'                       hard state           payload: codec HardState
//   's/meta'                  snapshot metadata    payload: msgpack SnapMetaRecord
//   's/data/' + u32be(n)      snapshot data chunk  payload: raw bytes (<= 4 MiB)
//   'c'                       cluster ID           payload: utf-8
//
// Every value is [crc32(payload), 4 bytes BE][payload]. LevelDB checksums its
// own blocks, but it skips what it cannot read in its WAL on recovery and it
// cannot tell a record it lost from one it never had; our checksums and the
// index/term checks in load() let a member refuse to start on a damaged log
// instead of voting or acknowledging with a log it does not really have.
//
// Every mutation is ONE LevelDB batch written with sync (fsync): a batch is
// atomic in LevelDB, so hard state, entries, snapshot and the deletions that
// go with them are never seen half-applied after a crash.
import { crc32 as zlibCrc32 } from 'node:zlib';
import { Level } from 'level';
import { pack, unpack } from 'msgpackr';
import { pino, type Logger } from 'pino';
import { decodeEntry, decodeHardState, encodeEntry, encodeHardState } from './codec.ts';
import { RaftError, type Entry, type HardState, type Snapshot } from './types.ts';

/** Snapshot data is split over keys of this size so huge snapshots need no huge LevelDB values. */
export const SNAPSHOT_CHUNK_BYTES = 4 * 1024 * 1024;

export const HARD_STATE_KEY = Buffer.from('h');
export const SNAP_META_KEY = Buffer.from('s/meta');
/** The cluster this member belongs to (utf-8), written once. */
export const CLUSTER_ID_KEY = Buffer.from('c');
const SNAP_DATA_PREFIX = Buffer.from('s/data/');
const ENTRY_PREFIX = 0x65; // 'e'
/** All entry keys sort in ['e', 'f'). */
const ENTRY_RANGE = { gte: Buffer.from([ENTRY_PREFIX]), lt: Buffer.from([ENTRY_PREFIX + 1]) };

export function entryKey(index: number): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = ENTRY_PREFIX;
  k.writeUInt32BE(Math.floor(index / 2 ** 32), 1);
  k.writeUInt32BE(index >>> 0, 5); // >>> 0 = index mod 2^32, exact for safe integers
  return k;
}

/** The index an entry key encodes, or -1 if the key is malformed. */
export function entryIndexOf(key: Uint8Array): number {
  if (key.length !== 9 || key[0] !== ENTRY_PREFIX) return -1;
  const hi = ((key[1]! << 24) | (key[2]! << 16) | (key[3]! << 8) | key[4]!) >>> 0;
  const lo = ((key[5]! << 24) | (key[6]! << 16) | (key[7]! << 8) | key[8]!) >>> 0;
  const n = hi * 2 ** 32 + lo;
  return Number.isSafeInteger(n) ? n : -1;
}

export function snapChunkKey(n: number): Buffer {
  const k = Buffer.allocUnsafe(SNAP_DATA_PREFIX.length + 4);
  SNAP_DATA_PREFIX.copy(k, 0);
  k.writeUInt32BE(n, SNAP_DATA_PREFIX.length);
  return k;
}

// ---- checksummed records ---------------------------------------------------

/**
 * CRC-32 (IEEE). node:zlib has it natively from Node 20.15; older Node 20s
 * get the table-driven version. Both compute the same function, so the disk
 * format does not depend on the Node version.
 */
export const crc32: (data: Uint8Array) => number =
  typeof zlibCrc32 === 'function' ? (data) => zlibCrc32(data) : tableCrc32;

let crcTable: Uint32Array | undefined;
function tableCrc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export function sealRecord(payload: Uint8Array): Buffer {
  const rec = Buffer.allocUnsafe(4 + payload.length);
  rec.writeUInt32BE(crc32(payload), 0);
  rec.set(payload, 4);
  return rec;
}

/** The payload of a record, or a reason why it is not valid. */
export function openRecord(rec: Uint8Array): { payload: Uint8Array } | { error: string } {
  if (rec.length < 4) return { error: `record too short (${rec.length} bytes)` };
  const payload = rec.subarray(4);
  const stored = ((rec[0]! << 24) | (rec[1]! << 16) | (rec[2]! << 8) | rec[3]!) >>> 0;
  if (crc32(payload) !== stored) return { error: 'checksum mismatch' };
  return { payload };
}

/** What 's/meta' holds: the snapshot's metadata plus how its data is laid out. */
interface SnapMetaRecord {
  index: number;
  term: number;
  voters: string[];
  learners: string[];
  /** Total data bytes and number of 's/data/<n>' chunks. */
  size: number;
  chunks: number;
}

function isSnapMetaRecord(v: unknown): v is SnapMetaRecord {
  const r = v as SnapMetaRecord;
  const isStrings = (a: unknown) => Array.isArray(a) && a.every((s) => typeof s === 'string');
  return typeof r === 'object' && r !== null &&
    Number.isSafeInteger(r.index) && r.index >= 0 && Number.isSafeInteger(r.term) && r.term >= 0 &&
    isStrings(r.voters) && isStrings(r.learners) &&
    Number.isSafeInteger(r.size) && r.size >= 0 &&
    r.chunks === Math.ceil(r.size / SNAPSHOT_CHUNK_BYTES);
}

// ---- the storage -----------------------------------------------------------

export interface StorageOptions {
  /** Defaults to a pino logger on stderr at level 'warn'. */
  logger?: Logger;
}

export interface LoadedLog {
  hardState: HardState;
  /** The cluster ID stored by setClusterId, if any. */
  clusterId?: string;
  snapshot?: Snapshot;
  /** Entries after the snapshot, contiguous and in order. */
  entries: Entry[];
}

/**
 * What load() had to repair: `truncated` damaged records removed from the
 * tail, starting at index `from`; the member may not vote until its log
 * reaches `noVoteUntil` again (the hard state records it).
 */
export interface RecoveryReport {
  truncated: number;
  from?: number;
  noVoteUntil?: number;
}

/** What the driver persists from a Ready (see Ready in types.ts). */
export interface SaveRequest {
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  /**
   * fsync before resolving (default true). Ready.mustSync is false when only
   * the commit index moved: losing that in a crash is harmless (it is learned
   * again from the leader), so it need not cost a disk flush.
   */
  sync?: boolean;
}

type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

const EMPTY_HARD_STATE: HardState = { term: 0, vote: '', commit: 0 };

export class RaftStorage {
  /** Set by load(). */
  lastRecovery: RecoveryReport = { truncated: 0 };

  // In-memory view of what is on disk, so the hot path (save) needs no reads.
  // Invariant after load(): entries firstIndex..lastIndex exist, contiguous;
  // firstIndex = snapIndex + 1 (lastIndex = snapIndex when the log is empty).
  private snapIndex = 0;
  private snapTerm = 0;
  private snapChunks = 0;
  private first = 1;
  private last = 0;

  private loaded = false;
  private closed = false;
  /** Mutations run one at a time, in call order: each computes its batch from the state the previous left. */
  private tail: Promise<unknown> = Promise.resolve();
  /** After a failed write the disk state is unknown (fsync errors may lose pages): refuse further writes. */
  private failed?: Error;

  private constructor(
    readonly dir: string,
    private readonly db: Level<Uint8Array, Uint8Array>,
    private readonly log: Logger,
  ) {}

  static async open(dir: string, opts: StorageOptions = {}): Promise<RaftStorage> {
    const log = (opts.logger ?? pino({ name: 'raft-storage', level: 'warn' }, pino.destination(2)))
      .child({ dir });
    const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    try {
      await db.open();
    } catch (e) {
      // classic-level puts LevelDB's own reason ("IO error: lock ...",
      // "Corruption: ...") in `cause`; the operator needs it and the directory.
      const cause = (e as Error & { cause?: Error }).cause;
      const reason = cause?.message ?? (e as Error).message;
      const msg = `cannot open raft log database in ${dir}: ${reason}`;
      if (/corruption/i.test(reason)) {
        throw new RaftError('corrupt', `${msg}; refusing to start: restore this member from a snapshot or remove and re-add it`);
      }
      throw new Error(msg, { cause: e });
    }
    return new RaftStorage(dir, db, log);
  }

  get firstIndex(): number { return this.first; }
  get lastIndex(): number { return this.last; }
  get snapshotIndex(): number { return this.snapIndex; }

  /**
   * Reads and verifies everything. A damaged tail (bad records with no good
   * record after them) is deleted, and the hard state records that the member
   * lost entries up to the last of them (HardState.noVoteUntil: no voting or
   * campaigning until a leader restores them); any other damage throws
   * RaftError('corrupt').
   *
   * Every Ready is one atomic, synced batch, so a bad tail record is damage,
   * not a torn write: the member may have acknowledged those entries to a
   * leader, which may have counted them toward a commit. Dropping them is
   * only safe because the member then stays out of elections until its log
   * is back (else its shorter log could help elect a leader that lacks a
   * committed entry).
   */
  async load(): Promise<LoadedLog> {
    this.checkOpen();
    return this.serialize(async () => {
      let hardState = await this.loadHardState();
      const clusterId = await this.loadClusterId();
      const snapshot = await this.loadSnapshot();
      const snapIndex = snapshot?.meta.index ?? 0;
      const snapTerm = snapshot?.meta.term ?? 0;

      const entries: Entry[] = [];
      const stale: Uint8Array[] = [];
      let badFrom: { index: number; reason: string } | undefined;
      const bad: Uint8Array[] = [];
      let badTo = -1;
      let prevIndex = snapIndex;
      let prevTerm = snapTerm;

      for await (const [key, value] of this.db.iterator(ENTRY_RANGE)) {
        const index = entryIndexOf(key);
        if (index >= 0 && index <= snapIndex) {
          // Covered by the snapshot. Compaction deletes these in the same
          // batch that stores the snapshot, so this is only a leftover.
          stale.push(key);
          continue;
        }
        const checked = this.checkEntry(key, index, value);
        if ('error' in checked) {
          badFrom ??= { index, reason: checked.error };
          bad.push(key);
          badTo = Math.max(badTo, index);
          continue;
        }
        const e = checked.entry;
        if (badFrom) {
          // A good record after a bad one: not a torn write but damage in the
          // middle of the log. Dropping the good suffix could lose committed
          // entries this member acknowledged, so stop here.
          throw this.corrupt(`raft log entry ${badFrom.index}`, badFrom.reason);
        }
        if (e.index !== prevIndex + 1) {
          throw this.corrupt(`raft log entry ${prevIndex + 1}`, `missing (next stored entry is ${e.index})`);
        }
        if (e.term < prevTerm) {
          throw this.corrupt(`raft log entry ${e.index}`, `term ${e.term} is lower than the previous term ${prevTerm}`);
        }
        entries.push(e);
        prevIndex = e.index;
        prevTerm = e.term;
      }

      const ops: BatchOp[] = [...bad, ...stale].map((key): BatchOp => ({ type: 'del', key }));
      if (badFrom) {
        // In the same batch as the deletions: a crash cannot leave the log
        // short without the marker. Entries up to the highest lost index
        // (at least the first bad one) may have been acknowledged.
        const lostTo = Math.max(badTo, badFrom.index, prevIndex + 1);
        // No entry has a term above the persisted term (it is written with or before them).
        hardState = {
          ...hardState,
          commit: Math.min(hardState.commit, prevIndex),
          noVoteUntil: Math.max(hardState.noVoteUntil ?? 0, lostTo),
          noVoteTerm: Math.max(hardState.noVoteTerm ?? 0, hardState.term),
        };
        ops.push({ type: 'put', key: HARD_STATE_KEY, value: sealRecord(encodeHardState(hardState)) });
      }
      if (ops.length) await this.db.batch(ops, { sync: true });
      this.lastRecovery = badFrom
        ? { truncated: bad.length, from: badFrom.index, noVoteUntil: hardState.noVoteUntil }
        : { truncated: 0 };
      if (badFrom) {
        this.log.error({ truncated: bad.length, from: badFrom.index, reason: badFrom.reason, noVoteUntil: hardState.noVoteUntil },
          'raft log: truncated a damaged tail; this member will not vote or campaign until a leader restores its log');
      }

      this.snapIndex = snapIndex;
      this.snapTerm = snapTerm;
      this.first = snapIndex + 1;
      this.last = prevIndex;
      this.loaded = true;
      const out: LoadedLog = { hardState, entries };
      if (snapshot) out.snapshot = snapshot;
      if (clusterId) out.clusterId = clusterId;
      return out;
    });
  }

  private checkEntry(key: Uint8Array, index: number, value: Uint8Array): { entry: Entry } | { error: string } {
    if (index < 0) return { error: `malformed key ${Buffer.from(key).toString('hex')}` };
    const rec = openRecord(value);
    if ('error' in rec) return rec;
    let entry: Entry;
    try {
      entry = decodeEntry(rec.payload);
    } catch (e) {
      return { error: (e as Error).message };
    }
    if (entry.index !== index) return { error: `stored under index ${index} but holds index ${entry.index}` };
    return { entry };
  }

  private async loadClusterId(): Promise<string | undefined> {
    const value = await this.db.get(CLUSTER_ID_KEY);
    if (value === undefined) return undefined;
    const rec = openRecord(value);
    if ('error' in rec) throw this.corrupt('raft cluster ID', rec.error);
    return Buffer.from(rec.payload).toString('utf8');
  }

  /** Stores the cluster ID (one synced write, ordered with the other writes). */
  async setClusterId(id: string): Promise<void> {
    this.checkWritable();
    return this.serialize(async () => {
      if (this.failed) throw this.failed;
      await this.db.put(CLUSTER_ID_KEY, sealRecord(Buffer.from(id, 'utf8')), { sync: true });
    });
  }

  private async loadHardState(): Promise<HardState> {
    const value = await this.db.get(HARD_STATE_KEY);
    if (value === undefined) return { ...EMPTY_HARD_STATE };
    const rec = openRecord(value);
    if ('error' in rec) throw this.corrupt('raft hard state', rec.error);
    try {
      return decodeHardState(rec.payload);
    } catch (e) {
      throw this.corrupt('raft hard state', (e as Error).message);
    }
  }

  private async loadSnapshot(): Promise<Snapshot | undefined> {
    const value = await this.db.get(SNAP_META_KEY);
    if (value === undefined) return undefined;
    const rec = openRecord(value);
    if ('error' in rec) throw this.corrupt('raft snapshot metadata', rec.error);
    let meta: unknown;
    try {
      meta = unpack(rec.payload);
    } catch (e) {
      throw this.corrupt('raft snapshot metadata', (e as Error).message);
    }
    if (!isSnapMetaRecord(meta)) throw this.corrupt('raft snapshot metadata', 'unexpected shape');

    const data = new Uint8Array(meta.size);
    let offset = 0;
    for (let n = 0; n < meta.chunks; n++) {
      const what = `raft snapshot ${meta.index} chunk ${n}`;
      const chunk = await this.db.get(snapChunkKey(n));
      if (chunk === undefined) throw this.corrupt(what, 'missing');
      const c = openRecord(chunk);
      if ('error' in c) throw this.corrupt(what, c.error);
      if (offset + c.payload.length > meta.size) throw this.corrupt(what, 'longer than the snapshot');
      data.set(c.payload, offset);
      offset += c.payload.length;
    }
    if (offset !== meta.size) throw this.corrupt(`raft snapshot ${meta.index}`, `${offset} of ${meta.size} bytes present`);
    this.snapChunks = meta.chunks;
    return {
      meta: { index: meta.index, term: meta.term, conf: { voters: meta.voters, learners: meta.learners } },
      data,
    };
  }

  private corrupt(what: string, reason: string): RaftError {
    return new RaftError('corrupt',
      `corrupt ${what} in ${this.dir} (${reason}); refusing to start: ` +
      'restore this member from a snapshot or remove and re-add it');
  }

  /**
   * Persists a Ready in one synced batch: the snapshot first (it replaces the
   * log prefix, or the whole log if the log disagrees with it), then the
   * entries (overwriting from their first index and deleting any old suffix
   * beyond them), then the hard state.
   */
  async save(rd: SaveRequest): Promise<void> {
    this.checkWritable();
    return this.serialize(() => this.write(rd));
  }

  /** The application made a snapshot: store it and drop the log entries it covers, in one synced batch. */
  async saveSnapshot(snap: Snapshot): Promise<void> {
    this.checkWritable();
    return this.serialize(() => this.write({ entries: [], snapshot: snap }));
  }

  /** Same as saveSnapshot: compaction = storing a snapshot and dropping the prefix it covers. */
  async compact(snap: Snapshot): Promise<void> {
    return this.saveSnapshot(snap);
  }

  private async write(rd: SaveRequest): Promise<void> {
    if (this.failed) throw this.failed;
    const ops: BatchOp[] = [];
    let { first, last, snapIndex, snapTerm, snapChunks } = this;

    const snap = rd.snapshot;
    if (snap && snap.meta.index > snapIndex) {
      const { index, term } = snap.meta;
      // Keep the suffix after the snapshot only if the log holds the
      // snapshot's own entry (same index and term): then everything up to it
      // is identical (Log Matching). Otherwise the log is stale or divergent
      // and the snapshot replaces all of it.
      const keepSuffix = index <= last && (await this.termAt(index)) === term;
      const delTo = keepSuffix ? index : last;
      for (let i = first; i <= delTo; i++) ops.push({ type: 'del', key: entryKey(i) });
      snapChunks = this.snapshotOps(ops, snap, snapChunks);
      snapIndex = index;
      snapTerm = term;
      first = index + 1;
      if (!keepSuffix) last = index;
    } else if (snap) {
      this.log.debug({ index: snap.meta.index, have: snapIndex }, 'ignoring a snapshot older than the stored one');
    }

    let entries = rd.entries;
    if (entries.length && entries[0]!.index <= snapIndex) {
      // Entries the snapshot already covers (e.g. re-sent after compaction).
      entries = entries.filter((e) => e.index > snapIndex);
    }
    if (entries.length) {
      const k = entries[0]!.index;
      if (k > last + 1) {
        throw new Error(`raft storage: entries start at ${k} but the log ends at ${last} (gap)`);
      }
      for (let j = 0; j < entries.length; j++) {
        const e = entries[j]!;
        if (e.index !== k + j) throw new Error(`raft storage: entries not contiguous at ${e.index} (expected ${k + j})`);
        ops.push({ type: 'put', key: entryKey(e.index), value: sealRecord(encodeEntry(e)) });
      }
      const m = k + entries.length - 1;
      // New entries starting at k replace the old log from k on: whatever the
      // old log held beyond them was a conflicting suffix.
      for (let i = m + 1; i <= last; i++) ops.push({ type: 'del', key: entryKey(i) });
      last = m;
    }

    if (rd.hardState) ops.push({ type: 'put', key: HARD_STATE_KEY, value: sealRecord(encodeHardState(rd.hardState)) });

    if (ops.length === 0) return;
    try {
      await this.db.batch(ops, { sync: rd.sync !== false || rd.entries.length > 0 || rd.snapshot !== undefined });
    } catch (e) {
      this.failed = new Error(`raft log write failed in ${this.dir}: ${(e as Error).message}; ` +
        'the member must restart', { cause: e });
      this.log.error({ err: e }, 'raft log write failed; refusing further writes');
      throw this.failed;
    }
    this.first = first;
    this.last = last;
    this.snapIndex = snapIndex;
    this.snapTerm = snapTerm;
    this.snapChunks = snapChunks;
  }

  /** Adds the ops that store `snap` (replacing the old one); returns its chunk count. */
  private snapshotOps(ops: BatchOp[], snap: Snapshot, oldChunks: number): number {
    const { data, meta } = snap;
    const chunks = Math.ceil(data.length / SNAPSHOT_CHUNK_BYTES);
    for (let n = 0; n < chunks; n++) {
      const part = data.subarray(n * SNAPSHOT_CHUNK_BYTES, (n + 1) * SNAPSHOT_CHUNK_BYTES);
      ops.push({ type: 'put', key: snapChunkKey(n), value: sealRecord(part) });
    }
    for (let n = chunks; n < oldChunks; n++) ops.push({ type: 'del', key: snapChunkKey(n) });
    const rec: SnapMetaRecord = {
      index: meta.index, term: meta.term, voters: meta.conf.voters, learners: meta.conf.learners,
      size: data.length, chunks,
    };
    ops.push({ type: 'put', key: SNAP_META_KEY, value: sealRecord(pack(rec)) });
    return chunks;
  }

  /** Term of the stored entry at `index`, or undefined. Only used when a snapshot arrives (rare). */
  private async termAt(index: number): Promise<number | undefined> {
    if (index === this.snapIndex) return this.snapTerm;
    if (index < this.first || index > this.last) return undefined;
    const value = await this.db.get(entryKey(index));
    if (value === undefined) return undefined;
    const rec = openRecord(value);
    if ('error' in rec) throw this.corrupt(`raft log entry ${index}`, rec.error);
    return decodeEntry(rec.payload).term;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail.catch(() => {});
    await this.db.close();
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => {});
    return run;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`raft storage in ${this.dir} is closed`);
  }

  private checkWritable(): void {
    this.checkOpen();
    if (!this.loaded) throw new Error(`raft storage in ${this.dir}: call load() before writing`);
  }
}
