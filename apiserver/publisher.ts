// The leader's event publisher: every committed API write, exactly once and
// in Raft index order, onto the JetStream stream EVENTS.
//
// Exactly once and in order through failovers and NATS outages rests on
// JetStream's own fencing, not on our bookkeeping:
// - each message carries Nats-Msg-Id = its Raft index (deduplication), and
// - Nats-Expected-Last-Sequence = the stream sequence it must follow, so a
//   message is stored only directly after its predecessor. A deposed leader
//   still publishing, or a publish racing a resync, is rejected instead of
//   being interleaved; the publisher then reads the stream's last message and
//   resumes after it. (Sequence rather than Nats-Expected-Last-Msg-Id: the
//   last msg-id is not restored when nats-server 2.9 restarts.)
// Publishes are pipelined (a window of acks in flight): one round trip per
// event does not cap throughput. Events still to publish live in the store's
// replicated outbox (see ObjectStore), trimmed by a replicated watermark the
// leader proposes, so a new leader, a restart or a log compaction never
// loses one.
import { type JetStreamClient, type JetStreamManager, type NatsConnection, type StoredMsg, StorageType, connect, headers, nanos } from 'nats';
import type { Logger } from 'pino';
import client from 'prom-client';
import type { RaftNode } from '../raft/node.ts';
import { Role } from '../raft/types.ts';
import { encodeCommand } from './command.ts';
import { type ApiEvent, PREV_INDEX_HEADER, STREAM, SUBJECT_PREFIX, checkEventMessage, encodeEvent, subjectFor } from '../api/events.ts';
import { KINDS } from '../api/kinds/index.ts';
import { SECRETS_RES, secretMetadataOnly } from './encryption.ts';
import type { ObjectStore, StoreEvent } from './store.ts';
import { natsServerOptions } from '../api/nats-url.ts';

export interface PublisherOptions {
  servers: string[];
  /** Stream limits. */
  maxAgeMs: number;
  maxBytes: number;
  duplicateWindowMs: number;
  /** Acks in flight at once. */
  window?: number;
}

const MARK_EVERY_MS = 500;

export class EventPublisher {
  private nc?: NatsConnection;
  private js?: JetStreamClient;
  private jsm?: JetStreamManager;
  private running = false;
  private stopped = false;
  /** Index of the last event known to be on the stream (-1: unknown, resync). */
  lastPublished = -1;
  /** The stream's last sequence as of our last successful publish (the fence for the next one). */
  private lastSeq = 0;
  private lastMarked = 0;
  private wake?: () => void;
  private readonly published: client.Counter;
  private readonly errorsTotal: client.Counter;

  constructor(
    private readonly node: RaftNode,
    private readonly store: ObjectStore,
    private readonly o: PublisherOptions,
    private readonly log: Logger,
    metrics: client.Registry,
  ) {
    store.keepOutbox = true;
    this.published = new client.Counter({ name: 'flotilla_events_published_total', help: 'Events published to the EVENTS stream by this server', registers: [metrics] });
    this.errorsTotal = new client.Counter({ name: 'flotilla_events_publish_errors_total', help: 'Failed or rejected publishes (each followed by a resync)', registers: [metrics] });
    const self = this;
    new client.Gauge({
      name: 'flotilla_events_publish_lag', help: 'Committed writes not yet on the event stream', registers: [metrics],
      collect() { this.set(self.lag().events); },
    });
    new client.Gauge({
      name: 'flotilla_events_publish_lag_seconds', help: 'Age of the oldest committed write not yet on the event stream', registers: [metrics],
      collect() { this.set(self.lag().seconds); },
    });
    new client.Gauge({
      name: 'flotilla_events_last_published_index', help: 'Raft index of the last event on the stream, as known here', registers: [metrics],
      collect() { this.set(self.knownPublished()); },
    });
    store.on('event', () => this.wake?.());
    node.on('role', ({ role }: { role: Role }) => {
      if (role === Role.Leader) void this.run();
    });
  }

  /** What this member knows to be published: live on the leader, the replicated watermark elsewhere. */
  knownPublished(): number {
    return Math.max(this.lastPublished, this.store.publishedIndex);
  }

  lag(): { events: number; seconds: number } {
    const { count, oldest } = this.store.pendingAfter(this.knownPublished());
    return { events: count, seconds: oldest ? (performance.now() - oldest.at) / 1000 : 0 };
  }

  status(): Record<string, unknown> {
    const l = this.lag();
    return { servers: natsServerOptions(this.o.servers).servers, connected: !!this.nc && !this.nc.isClosed(), lastPublishedIndex: this.knownPublished(), lagEvents: l.events, lagSeconds: Number(l.seconds.toFixed(3)) };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.nc?.close().catch(() => {});
  }

  private async connectNats(): Promise<void> {
    if (this.nc && !this.nc.isClosed()) return;
    this.nc = await connect({
      ...natsServerOptions(this.o.servers), name: `flotilla-publisher-${this.node.id}`,
      reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250, waitOnFirstConnect: true, timeout: 2000,
    });
    this.jsm = await this.nc.jetstreamManager();
    this.js = this.nc.jetstream({ timeout: 5000 });
    const config = {
      name: STREAM, subjects: [`${SUBJECT_PREFIX}.>`], storage: StorageType.File,
      num_replicas: Math.min(3, this.o.servers.length),
      duplicate_window: nanos(this.o.duplicateWindowMs), max_age: nanos(this.o.maxAgeMs), max_bytes: this.o.maxBytes,
    };
    try {
      const info = await this.jsm.streams.info(STREAM);
      const c = info.config;
      if (c.max_age !== config.max_age || c.max_bytes !== config.max_bytes || c.duplicate_window !== config.duplicate_window) {
        await this.jsm.streams.update(STREAM, { ...c, max_age: config.max_age, max_bytes: config.max_bytes, duplicate_window: config.duplicate_window });
      }
    } catch (e) {
      if (!/stream not found/i.test((e as Error).message)) throw e;
      await this.jsm.streams.add(config);
      this.log.info({ replicas: config.num_replicas }, 'created JetStream stream EVENTS');
    }
  }

  /**
   * Where the stream stands: its last sequence, and the Raft index of the
   * last event of ours on it. Only a message that is a Flotilla event
   * (checkEventMessage: payload, Nats-Msg-Id, subject, Flotilla-Prev-Index)
   * and that this member can vouch for counts:
   * - an index below the replicated watermark cannot be the newest of ours
   *   (the event at the watermark was stored after it), so resuming there
   *   would publish events a second time;
   * - an index above it must be an event still in the outbox, with the same
   *   kind, namespace, name and uid; anything else (an index this member has
   *   no event for, or has not even applied) would make it skip events.
   * Everything else is stepped over, so a stray publish to events.> can
   * neither stall the publisher nor make it skip or repeat events.
   */
  private async streamPosition(): Promise<{ lastSeq: number; lastIndex: number }> {
    const info = await this.jsm!.streams.info(STREAM);
    const lastSeq = info.state.last_seq;
    const watermark = this.store.publishedIndex;
    if (!info.state.messages) return { lastSeq, lastIndex: watermark };
    const first = info.state.first_seq;
    let foreign = 0;
    for (let seq = lastSeq; seq >= first && seq > lastSeq - 1000; seq--) {
      let m;
      try {
        m = await this.jsm!.streams.getMessage(STREAM, { seq });
      } catch {
        continue; // removed meanwhile
      }
      const v = this.vouch(m);
      if ('index' in v) {
        if (foreign) this.log.warn({ lastSeq, foreign }, 'stepped over foreign messages at the end of the event stream');
        return { lastSeq, lastIndex: v.index };
      }
      foreign++;
      this.log.debug({ seq, subject: m.subject, why: v.why }, 'not an event of ours');
    }
    // No event of ours among the last messages: go by the replicated watermark.
    this.log.warn({ lastSeq, foreign }, 'no Flotilla event among the last messages of the stream; resuming after the replicated watermark');
    return { lastSeq, lastIndex: watermark };
  }

  /** The index of a stored message that is the newest event of ours, or why it cannot be. */
  private vouch(m: StoredMsg): { index: number } | { why: string } {
    const c = checkEventMessage(m);
    if (!c.ok) return { why: c.reason };
    const watermark = this.store.publishedIndex;
    if (c.index < watermark) return { why: `index ${c.index} is below the replicated watermark ${watermark}` };
    if (c.index === watermark) return { index: c.index };
    if (c.index > this.store.revision) return { why: `index ${c.index} is past this member's revision ${this.store.revision}` };
    const [e] = this.store.unpublishedSince(c.index - 1, 1);
    if (!e || e.index !== c.index) return { why: `no event ${c.index} in this member's outbox` };
    const ev = this.toEvent(e);
    const same = ev.group === c.event.group && ev.resource === c.event.resource && ev.namespace === c.event.namespace
      && ev.name === c.event.name && ev.uid === c.event.uid && ev.type === c.event.type;
    return same ? { index: c.index } : { why: `event ${c.index} in this member's outbox is another write` };
  }

  private toEvent(e: StoreEvent): ApiEvent {
    const slash = e.res.indexOf('/');
    const group = e.res.slice(0, slash);
    const resource = e.res.slice(slash + 1);
    const kind = KINDS.find((k) => k.group === group && k.plural === resource);
    return {
      index: e.index, term: e.term, type: e.type, group, version: kind?.version ?? '', kind: kind?.kind ?? '', resource,
      // A Secret's event carries its metadata only: its data never goes on the stream (encryption.ts).
      namespace: e.ns, name: e.name, uid: e.uid, object: e.res === SECRETS_RES ? secretMetadataOnly(e.json) : e.json, user: e.user, verb: e.verb, timestamp: e.ts,
      groups: e.groups ?? [], sourceIPs: e.src ?? [], userAgent: e.ua ?? '',
    };
  }

  /** The leader's loop: resync, publish pipelined, repeat; ends when leadership is lost. */
  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    let backoff = 50;
    this.lastPublished = -1;
    try {
      while (!this.stopped && this.node.role === Role.Leader) {
        try {
          await this.connectNats();
          if (this.lastPublished < 0) {
            const pos = await this.streamPosition();
            this.lastPublished = pos.lastIndex;
            this.lastSeq = pos.lastSeq;
            const floor = this.store.outboxFloor;
            if (floor && this.lastPublished < floor - 1 && this.lastPublished < this.store.publishedIndex) {
              this.log.error({ streamLast: this.lastPublished, outboxFloor: floor }, 'the event stream lost messages that were already published; continuing after them');
            }
            this.log.info({ lastPublished: this.lastPublished }, 'event publisher resynchronised with the stream');
          }
          const batch = this.store.unpublishedSince(this.lastPublished, 4096);
          if (!batch.length) {
            void this.maybeMark(); // off the publish path: a Raft round trip must not delay events
            await this.idle();
            continue;
          }
          await this.publishBatch(batch);
          backoff = 50;
          void this.maybeMark(); // off the publish path: a Raft round trip must not delay events
        } catch (e) {
          this.errorsTotal.inc();
          this.log.warn({ err: (e as Error).message, lastPublished: this.lastPublished }, 'event publishing failed; resynchronising');
          this.lastPublished = -1;
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(2000, backoff * 2);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async publishBatch(batch: StoreEvent[]): Promise<void> {
    const window = this.o.window ?? 256;
    // Fencing by stream sequence: message k of this batch is stored only if
    // the stream's last sequence is exactly the one before it, so nothing
    // can be interleaved (a deposed leader's publish is refused).
    let expectSeq = this.lastSeq;
    let prevIndex = this.lastPublished;
    let inflight: Promise<unknown>[] = [];
    let failure: Error | undefined;
    for (const e of batch) {
      if (failure || this.node.role !== Role.Leader) break;
      const expect = { lastSequence: expectSeq++ };
      const subject = subjectFor(e.res.slice(0, e.res.indexOf('/')), e.res.slice(e.res.indexOf('/') + 1), e.ns, e.name);
      // Consumers' gap checks read the index of the event stored before this one.
      const h = headers();
      h.set(PREV_INDEX_HEADER, String(prevIndex));
      prevIndex = e.index;
      const p = this.js!.publish(subject, encodeEvent(this.toEvent(e)), { msgID: String(e.index), expect, headers: h }).then(
        (ack) => {
          if (ack.duplicate) {
            // Already stored (a retry within the duplicate window): the
            // sequence did not move, so the fences after it are off; resync.
            failure ??= new Error(`event ${e.index} was already on the stream`);
            return;
          }
          if (!failure && e.index > this.lastPublished) {
            this.lastPublished = e.index;
            this.lastSeq = ack.seq;
            this.published.inc();
          }
        },
        (err: Error) => {
          failure ??= err;
        },
      );
      inflight.push(p);
      if (inflight.length >= window) {
        await inflight[0];
        inflight = inflight.slice(1);
      }
    }
    await Promise.all(inflight);
    if (failure) throw failure;
  }

  /** Proposes the replicated watermark so that every member can trim its outbox. */
  private async maybeMark(): Promise<void> {
    if (this.marking || this.lastPublished <= this.lastMarked || performance.now() - this.markedAt < MARK_EVERY_MS) return;
    this.marking = true;
    const published = this.lastPublished;
    this.markedAt = performance.now();
    try {
      await this.node.propose(encodeCommand({ op: 'mark', published, res: '', ns: '', name: '', user: 'system:publisher', verb: 'system', ts: '' }), 5000);
      this.lastMarked = published;
    } catch {
      /* retried next round */
    } finally {
      this.marking = false;
    }
  }

  private markedAt = 0;
  private marking = false;

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, MARK_EVERY_MS);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }
}
