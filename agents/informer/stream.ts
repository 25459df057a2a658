// Reading the EVENTS stream from a Raft index on, without ever skipping an
// event silently. Shared by the informer and `flotilla events`.
//
// What the publisher guarantees (apiserver/publisher.ts): messages are stored
// in Raft index order, Nats-Msg-Id = the index, and each carries
// Flotilla-Prev-Index = the index of the message stored just before it. Indexes are not contiguous (failed writes,
// publisher watermarks and other Raft entries take indexes too), so a missing
// event cannot be seen from indexes alone; what can be seen is:
//
// - where a given index is: stream sequence and index grow together, so a
//   binary search over getMessage(seq) finds the first message after index X
//   in O(log n) requests, without replaying the stream;
// - whether messages we had not read yet were removed (limits, purge): the
//   stream's first sequence moved past our position, and the first retained
//   message's predecessor (Flotilla-Prev-Index) is after the index we
//   know the state at;
// - whether our consumer lost messages: its delivery sequence skipped, it was
//   deleted, heartbeats stopped, or the connection was re-established. Then
//   the reader recreates its consumer right after the last message it read
//   (like nats.js's ordered consumer), after checking the point is still there.
//
// When the point is gone the reader throws StreamGapError, and the informer
// re-lists; it never carries on as if nothing happened.
import {
  AckPolicy, ConsumerEvents, DeliverPolicy, type ConsumerMessages, type JetStreamManager, type JsMsg, type MsgHdrs,
  type NatsConnection, type StreamInfo, nanos, nuid,
} from 'nats';
import { type EventCheck, MSG_ID_HEADER, PREV_INDEX_HEADER, STREAM, checkEventMessage } from '../../api/events.ts';

export { MSG_ID_HEADER, checkEventMessage, type EventCheck };
/** The index of the event the publisher stored just before a message. */
export const EXPECTED_LAST_MSG_ID_HEADER = PREV_INDEX_HEADER;

/** A logger with pino's call shape (pino loggers fit). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Events the reader had not read yet are no longer in the stream (or the stream was replaced). */
export class StreamGapError extends Error {
  override name = 'StreamGapError';
}

/** A positive integer header value (a Raft index), else undefined. */
export function headerIndex(h: MsgHdrs | undefined, name: string = MSG_ID_HEADER): number | undefined {
  const v = h?.get(name);
  if (!v || !/^[1-9]\d*$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A stored message's place: stream sequence, Raft index and the index of the message stored before it. */
export interface IndexedMessage {
  seq: number;
  index: number;
  /** Flotilla-Prev-Index: the index of the event stored before it (0 for the first one; every event carries it). */
  prev?: number;
}

function notFound(e: unknown): boolean {
  const err = e as { api_error?: { err_code?: number; code?: number }; message?: string };
  return err?.api_error?.err_code === 10037 || err?.api_error?.code === 404 || /no message found/i.test(err?.message ?? '');
}

/**
 * The first message at or after `seq` (and at or before `lastSeq`) that is a
 * Flotilla event (checkEventMessage), skipping deleted sequences and foreign
 * messages, whatever Nats-Msg-Id they claim; undefined when there is none.
 */
export async function indexedMessageAt(
  jsm: JetStreamManager,
  seq: number,
  opts: { stream?: string; lastSeq?: number; maxSkip?: number } = {},
): Promise<IndexedMessage | undefined> {
  const stream = opts.stream ?? STREAM;
  let s = Math.max(1, seq);
  for (let skipped = 0; skipped <= (opts.maxSkip ?? 10_000); skipped++) {
    if (opts.lastSeq !== undefined && s > opts.lastSeq) return undefined;
    let m;
    try {
      // next_by_subj: the first message at or after `s`, so deleted sequences cost nothing.
      m = await jsm.streams.getMessage(stream, { seq: s, next_by_subj: '>' } as unknown as { seq: number });
    } catch (e) {
      if (notFound(e)) return undefined;
      throw e;
    }
    if (opts.lastSeq !== undefined && m.seq > opts.lastSeq) return undefined;
    const c = checkEventMessage(m);
    if (c.ok) return { seq: m.seq, index: c.index, prev: c.prev };
    s = m.seq + 1;
  }
  return undefined;
}

/**
 * The stream sequence of the first message with an index greater than
 * `afterIndex`, searched in [lo, hi); `hi` (by default the stream's last
 * sequence + 1) when there is none yet. A binary search over getMessage.
 */
export async function seqAfterIndex(
  jsm: JetStreamManager,
  afterIndex: number,
  opts: { stream?: string; lo?: number; hi?: number } = {},
): Promise<number> {
  const stream = opts.stream ?? STREAM;
  let lo: number;
  let hi: number;
  if (opts.lo === undefined || opts.hi === undefined) {
    const info = await jsm.streams.info(stream);
    lo = opts.lo ?? info.state.first_seq;
    hi = opts.hi ?? info.state.last_seq + 1;
  } else {
    lo = opts.lo;
    hi = opts.hi;
  }
  lo = Math.max(1, lo);
  while (lo < hi) {
    const mid: number = lo + Math.floor((hi - lo) / 2);
    const m = await indexedMessageAt(jsm, mid, { stream, lastSeq: hi - 1 });
    if (!m) hi = mid;
    else if (m.index <= afterIndex) lo = m.seq + 1;
    else hi = mid;
  }
  return lo;
}

/** What a reader knows: every event on its subjects up to `index` is accounted for, and so is every message up to `seq`. */
export interface ReadPosition {
  /** Raft index through which the reader's view is complete (a LIST's revision, or the last event read). */
  index: number;
  /** Stream sequence through which every message on the reader's subjects was read (0: none known). */
  seq: number;
  /** The stream's creation time when `seq` was taken (a recreated stream renumbers). */
  created?: string;
}

/**
 * Where to resume reading so that nothing after `pos.index` is missed: the
 * first sequence after pos.seq holding an index > pos.index. Throws
 * StreamGapError when messages that may hold such events were removed.
 */
export async function resumeSeq(jsm: JetStreamManager, pos: ReadPosition, stream = STREAM): Promise<{ seq: number; info: StreamInfo }> {
  const info = await jsm.streams.info(stream);
  const { first_seq: first, last_seq: last, messages } = info.state;
  if (pos.created && info.created !== pos.created) {
    throw new StreamGapError(`stream ${stream} was recreated (created ${info.created}, was ${pos.created})`);
  }
  if (last < pos.seq) throw new StreamGapError(`stream ${stream} went back from sequence ${pos.seq} to ${last}`);
  if (first > pos.seq + 1) {
    // Messages after our position were removed before we read them. Harmless
    // only if they all came before the index we know the state at.
    if (messages === 0) {
      throw new StreamGapError(`stream ${stream} is empty from sequence ${first} on: events after index ${pos.index} (sequence ${pos.seq}) may have been removed`);
    }
    const m = await indexedMessageAt(jsm, first, { stream, lastSeq: last });
    if (!m) throw new StreamGapError(`stream ${stream} holds no event at or after sequence ${first}: events after index ${pos.index} may have been removed`);
    const harmless = m.index <= pos.index + 1 || (m.prev !== undefined && m.prev <= pos.index);
    if (!harmless) {
      throw new StreamGapError(`stream ${stream} now starts at sequence ${first} (index ${m.index}, after index ${m.prev ?? '?'}): events after index ${pos.index} were removed before they were read`);
    }
  }
  const seq = await seqAfterIndex(jsm, pos.index, { stream, lo: Math.max(first, pos.seq + 1), hi: last + 1 });
  return { seq, info };
}

export type ReaderStart =
  /** Everything after a position (resumeSeq decides where; a gap throws StreamGapError). */
  | { after: ReadPosition }
  /** Deliver from this time on (no gap check before the first message). */
  | { time: Date }
  /** Deliver from the stream's first message. */
  | { all: true };

export interface EventReaderOptions {
  nc: NatsConnection;
  stream?: string;
  /** One subject filter (filterSubject() of api/events.ts). */
  filterSubject: string;
  start: ReaderStart;
  /**
   * Each message in stream order, once, with the verdict of checkEventMessage
   * (decoded once here). Only messages that are Flotilla events move the
   * reader's index. Synchronous: the next message waits for it.
   */
  onMessage(m: JsMsg, check: EventCheck): void;
  /**
   * A hint that nothing more is pending right now: the last message reported
   * no more pending, or an idle check found every delivered message handed
   * over. For flushing output; never a reason to assume completeness (the
   * server's pending counts are not exact for filtered consumers).
   */
  onCaughtUp?(): void;
  /**
   * Stop by itself once every message up to this stream sequence has been
   * read (to print "what is there now"). Judged from the sequences read and
   * the consumer's scan position, not from pending counts.
   */
  until?: number;
  /**
   * When set, called instead of throwing StreamGapError: the reader then
   * continues from the first message still stored (for display tools; an
   * informer must re-list instead).
   */
  onGap?(err: StreamGapError): void;
  logger?: Logger;
  /** Consumer name prefix (for `nats consumer ls`). */
  namePrefix?: string;
  /** Messages per pull (default 256). */
  batch?: number;
  /** Pull expiry (default 10 s); idle heartbeats are half of it. */
  expiresMs?: number;
  /**
   * How often the reader confirms its position with the server: the
   * consumer's scan position tells how far the stream is accounted for even
   * when the messages there are not ours (default 30 s; 250 ms with `until`
   * or onCaughtUp, which need it to notice the end).
   */
  checkpointMs?: number;
}

export interface EventReaderStats {
  /** Consumers created (1 + resets). */
  consumers: number;
  /** Consumer resets: delivery gaps, deleted consumers, missed heartbeats, reconnects. */
  resets: number;
  messages: number;
}

/**
 * An ordered, ephemeral, filtered pull consumer over EVENTS that knows its
 * position (stream sequence and Raft index) and refuses to lose messages.
 * run() reads until stop(); it rejects with StreamGapError when it cannot
 * continue without a gap, and with other errors it could not recover from.
 */
export class EventReader {
  readonly stats: EventReaderStats = { consumers: 0, resets: 0, messages: 0 };
  private readonly o: Required<Pick<EventReaderOptions, 'stream' | 'namePrefix' | 'batch' | 'expiresMs' | 'checkpointMs'>> & EventReaderOptions;
  private readonly log: Logger;
  private pos: ReadPosition;
  private start: ReaderStart;
  private stopped = false;
  private current?: { name: string; msgs?: ConsumerMessages; status?: { stop?: () => void }; dseq: number; reason?: string };
  private statusIter?: AsyncIterable<unknown> & { stop?: () => void };
  private wakeStopped?: () => void;
  private checking = false;

  constructor(opts: EventReaderOptions) {
    const eager = opts.until !== undefined || !!opts.onCaughtUp;
    this.o = { stream: STREAM, namePrefix: 'flotilla-reader', batch: 256, expiresMs: 10_000, checkpointMs: eager ? 250 : 30_000, ...opts };
    this.log = opts.logger ?? silentLogger;
    this.start = opts.start;
    this.pos = 'after' in opts.start ? { ...opts.start.after } : { index: 0, seq: 0 };
  }

  /** The reader's current position (what it has read through). */
  position(): ReadPosition {
    return { ...this.pos };
  }

  async run(): Promise<void> {
    const jsm = await this.o.nc.jetstreamManager();
    const js = this.o.nc.jetstream();
    this.watchConnection();
    const checkpoint = setInterval(() => void this.checkpoint(jsm), this.o.checkpointMs);
    checkpoint.unref?.();
    let backoff = 100;
    try {
      while (!this.stopped) {
        if (this.o.nc.isClosed()) throw new Error('the NATS connection is closed');
        const name = `${this.o.namePrefix}-${nuid.next()}`;
        try {
          // Where to (re)start: the position, re-checked against the stream every time.
          let config: Record<string, unknown>;
          if ('after' in this.start) {
            let resume;
            try {
              resume = await resumeSeq(jsm, this.pos, this.o.stream);
            } catch (e) {
              if (!(e instanceof StreamGapError) || !this.o.onGap) throw e;
              this.o.onGap(e);
              const info = await jsm.streams.info(this.o.stream);
              resume = { seq: info.state.first_seq, info };
            }
            this.pos.created ??= resume.info.created;
            this.pos.seq = Math.max(this.pos.seq, resume.seq - 1);
            config = { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: resume.seq };
            if (this.o.until !== undefined && resume.seq > this.o.until) {
              this.stopped = true;
              break;
            }
          } else if ('time' in this.start) {
            config = { deliver_policy: DeliverPolicy.StartTime, opt_start_time: this.start.time.toISOString() };
          } else {
            config = { deliver_policy: DeliverPolicy.All };
          }
          if (this.stopped) break;
          const ci = await jsm.consumers.add(this.o.stream, {
            ...config, name, filter_subject: this.o.filterSubject, ack_policy: AckPolicy.None, max_deliver: 1,
            mem_storage: true, num_replicas: 1, inactive_threshold: nanos(Math.max(30_000, this.o.expiresMs * 3)),
          });
          this.current = { name, dseq: 0 };
          this.stats.consumers++;
          if (ci.num_pending === 0) this.o.onCaughtUp?.();
          const consumer = await js.consumers.get(this.o.stream, name);
          if (this.stopped) break;
          const msgs = await consumer.consume({ max_messages: this.o.batch, expires: this.o.expiresMs });
          this.current.msgs = msgs;
          // stop() or reset() while consume() was starting could not stop msgs yet.
          if (this.stopped || this.current.reason) msgs.stop();
          void this.watchConsumer(msgs, this.current);
          backoff = 100;
          await this.consume(msgs);
          if (!this.stopped && !this.current.reason) this.current.reason = 'the consumer\'s message iterator ended';
        } catch (e) {
          if (this.stopped) break;
          if (e instanceof StreamGapError) throw e;
          this.log.warn({ err: (e as Error).message, stream: this.o.stream, filter: this.o.filterSubject }, 'event stream consumer failed; recreating it');
          await this.sleep(backoff);
          backoff = Math.min(backoff * 2, 5_000);
        } finally {
          const cur = this.current;
          this.current = undefined;
          if (cur) {
            // Stopping: record how far the stream is accounted for, so a
            // restart does not mistake removed foreign messages for a loss.
            if (this.stopped && !cur.reason) await this.checkpoint(jsm, cur);
            // stop(), not close(): close() waits for the iterator to be drained
            // up to its end marker, which never happens once we stopped reading.
            cur.msgs?.stop();
            cur.status?.stop?.();
            // Best effort: an ephemeral consumer also goes away by itself after inactive_threshold.
            await jsm.consumers.delete(this.o.stream, cur.name).catch(() => {});
            if (!this.stopped && cur.reason) {
              this.stats.resets++;
              this.log.info({ reason: cur.reason, seq: this.pos.seq, index: this.pos.index }, 'event stream consumer reset');
            }
          }
        }
        // Once anything was read, restart strictly after it and check it is still there.
        if (!('after' in this.start) && this.pos.seq > 0) this.start = { after: this.pos };
      }
    } finally {
      clearInterval(checkpoint);
      this.statusIter?.stop?.();
    }
  }

  /** Ends run(); the consumer is deleted. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.current?.msgs?.stop();
    this.statusIter?.stop?.();
    this.wakeStopped?.();
  }

  private async consume(msgs: ConsumerMessages): Promise<void> {
    const cur = this.current!;
    for await (const m of msgs) {
      if (this.stopped || cur.reason) break;
      const dseq = m.info.deliverySequence;
      if (dseq !== cur.dseq + 1) {
        this.reset(`delivery sequence jumped from ${cur.dseq} to ${dseq}`);
        break;
      }
      cur.dseq = dseq;
      if (m.seq <= this.pos.seq) continue; // already read (cannot happen with a fresh consumer, but cheap to guard)
      if (this.o.until !== undefined && m.seq > this.o.until) {
        this.stop();
        break;
      }
      this.stats.messages++;
      // Position first: a message that fails in onMessage is still read (the caller counts it).
      this.pos.seq = m.seq;
      // The index only from a Flotilla event: a foreign message claiming a
      // large Nats-Msg-Id must not make a resume skip events never read.
      const check = checkEventMessage(m);
      if (check.ok && check.index > this.pos.index) this.pos.index = check.index;
      this.o.onMessage(m, check);
      if (this.o.until !== undefined && m.seq >= this.o.until) {
        this.stop();
        break;
      }
      if (m.info.pending === 0) this.o.onCaughtUp?.();
    }
  }

  /** Abandons the current consumer; run() creates the next one after the last message read. */
  private reset(reason: string, cur = this.current): void {
    if (!cur || cur !== this.current || cur.reason || this.stopped) return;
    cur.reason = reason;
    cur.msgs?.stop();
  }

  private async watchConsumer(msgs: ConsumerMessages, cur: NonNullable<EventReader['current']>): Promise<void> {
    try {
      const status = await msgs.status();
      cur.status = status as { stop?: () => void };
      for await (const s of status) {
        switch (s.type) {
          case ConsumerEvents.HeartbeatsMissed:
            if (Number(s.data) >= 2) this.reset(`${String(s.data)} heartbeats missed`, cur);
            break;
          case ConsumerEvents.ConsumerDeleted:
          case ConsumerEvents.ConsumerNotFound:
          case ConsumerEvents.StreamNotFound:
          case ConsumerEvents.NoResponders:
            this.reset(String(s.type), cur);
            break;
          default:
            break;
        }
      }
    } catch {
      /* the iterator ends with the consumer */
    }
  }

  /** A reconnected client may have lost pull requests or its (memory-stored) consumer: start a fresh one. */
  private watchConnection(): void {
    const it = this.o.nc.status() as AsyncIterable<{ type: string }> & { stop?: () => void };
    this.statusIter = it;
    void (async () => {
      try {
        for await (const s of it) {
          if (this.stopped) break;
          if (s.type === 'reconnect') this.reset('reconnected to NATS');
        }
      } catch {
        /* connection closed */
      }
    })();
  }

  /**
   * Confirms the position with the server. The consumer's delivered
   * stream_seq is how far it has scanned the stream, past messages that do
   * not match its filter; once it has handed us everything it delivered,
   * every message of ours up to there has been read. That lets pos.seq move
   * past foreign messages (so their removal by retention is not mistaken for
   * a loss), and lets `until` notice the end when the last messages are not ours.
   */
  private async checkpoint(jsm: JetStreamManager, cur = this.current): Promise<void> {
    if (!cur || cur.reason || this.checking) return;
    this.checking = true;
    try {
      const ci = await jsm.consumers.info(this.o.stream, cur.name);
      if (cur.reason || ci.delivered.consumer_seq !== cur.dseq) return;
      if (ci.delivered.stream_seq > this.pos.seq) this.pos.seq = ci.delivered.stream_seq;
      if (this.stopped || cur !== this.current) return;
      if (this.o.until !== undefined && this.pos.seq >= this.o.until) {
        this.stop();
        return;
      }
      this.o.onCaughtUp?.();
    } catch {
      /* next time */
    } finally {
      this.checking = false;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.wakeStopped = undefined;
        resolve();
      }
      this.wakeStopped = done;
    });
  }
}
