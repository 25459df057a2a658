// The informer: a local, always-converging copy of one kind's objects, for
// every consumer of the API (controllers, the scheduler, node agents, user
// code) — client-go's shared informer, fed by the EVENTS stream instead of a
// watch:
//
//   1. LIST the kind through the API (pages of `pageSize`, all at one
//      revision R = the list's resourceVersion) and fill the cache;
//   2. read the kind's subject of the JetStream stream from the first event
//      whose Raft index (Nats-Msg-Id) is > R, found by binary search;
//   3. apply each event with an index above the last applied one (so
//      redeliveries and the overlap with the LIST are harmless), calling the
//      handlers; an undecodable message is counted and skipped;
//   4. when events may have been lost — the start point or the position was
//      removed by the stream's limits, the stream was recreated — LIST again
//      and reconcile the cache with it (adds, updates and deletes delivered
//      as usual). Consumer hiccups (delivery gaps, a deleted consumer, missed
//      heartbeats, a reconnect) recreate the consumer right after the last
//      event read, after checking that event is still there.
//
// Handlers run synchronously in stream order and should be quick: the usual
// handler puts the object's key on a WorkQueue for workers to reconcile.
import type { JsMsg, NatsConnection } from 'nats';
import pino from 'pino';
import { type ApiEvent, type EventCheck, STREAM, filterSubject } from '../../api/events.ts';
import type { KindDef, KubeObject } from '../../api/schema/types.ts';
import { type LabelRequirement, matchesLabels, parseLabelSelector } from '../../api/selectors.ts';
import { type ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import { connectNats } from './nats.ts';
import { EventReader, type Logger, type ReadPosition, StreamGapError } from './stream.ts';

export type { Logger };

/** The built-in index of objects by namespace (value: the namespace; "" for cluster-scoped kinds). */
export const NAMESPACE_INDEX = 'namespace';
/** The built-in index of objects by label (value: "key=value", one per label). */
export const LABEL_INDEX = 'label';
/** The built-in index of objects by node (value: spec.nodeName, when set). */
export const NODE_INDEX = 'node';

/** Values an object is indexed under; undefined or [] for none. */
export type IndexFunc<T> = (obj: T) => string | readonly string[] | undefined;

export interface EventHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

export interface InformerOptions {
  /** The API client used for LISTs. */
  client: ApiClient;
  /**
   * A NATS connection (shared, not closed by the informer), a function that
   * provides the shared one when the informer starts (SharedInformerFactory),
   * or the URL(s) to connect to (comma-separated or a list).
   */
  nats?: NatsConnection | string | readonly string[] | (() => Promise<NatsConnection>);
  /**
   * Where events come from: 'stream' (default) reads the JetStream EVENTS
   * stream, which carries every object of the kind; 'watch' LISTs and
   * WATCHes through the API, so a field selector applies and the consumer
   * sees only what the server lets it see (the node agent: its own pods).
   */
  source?: 'stream' | 'watch';
  /** Only objects matching this field selector ("spec.nodeName=n1"); needs source 'watch'. */
  fieldSelector?: string;
  /**
   * Keeps only the objects this accepts (applied on the client, after the
   * server's selectors): for a set no selector can express, such as the pods
   * of any of a process's hollow nodes. An object that stops passing leaves
   * the cache as a delete. Watch source only.
   */
  filter?: (obj: KubeObject) => boolean;
  /** Watch source: ask the server to end each watch after this many seconds (then watch again); default 300. */
  watchTimeoutSeconds?: number;
  /** The kind to follow (kindByName('pods'), …, from api/kinds/index.ts). */
  kind: KindDef;
  /** Only this namespace (namespaced kinds); default: all. */
  namespace?: string;
  /** Only objects matching this label selector ("app=web,tier!=db"). */
  labelSelector?: string;
  /** Re-deliver onUpdate(obj, obj) for every cached object this often (ms); 0 or unset: never. */
  resyncMs?: number;
  /** Defaults to a pino logger on stderr at $FLOTILLA_LOG_LEVEL (default warn). */
  logger?: Logger;
  /** LIST page size (default 500). */
  pageSize?: number;
  /** Stream name (default EVENTS). */
  stream?: string;
  /** A name for logs and consumer names (default: the kind's plural). */
  name?: string;
}

export interface InformerStats {
  /** LISTs completed (the first one and every re-list). */
  lists: number;
  /** Re-lists forced by a possible loss of events (start point or position removed, stream recreated). */
  relists: number;
  /** Events applied to the cache. */
  events: number;
  /** Events at or below the last applied index (redeliveries, the overlap with a LIST). */
  skipped: number;
  /** Messages that did not decode or did not belong here; logged and skipped. */
  badMessages: number;
  /** Consumers recreated after a delivery gap, deletion, missed heartbeats or a reconnect. */
  consumerResets: number;
  /** Exceptions thrown by event handlers (logged; the informer goes on). */
  handlerErrors: number;
  /** Resync rounds. */
  resyncs: number;
  /** The Raft index the cache reflects (for this kind). */
  lastIndex: number;
  /** The last stream sequence read. */
  streamSeq: number;
  objects: number;
}

/** client-go's MetaNamespaceKeyFunc: "namespace/name", or "name" for cluster-scoped objects. */
export function keyOf(obj: KubeObject): string {
  const m = obj.metadata ?? {};
  return objectKey(m.namespace ?? '', m.name ?? '');
}

export function objectKey(namespace: string, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

/** The reverse of objectKey. */
export function splitKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { namespace: '', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

function defaultLogger(name: string): Logger {
  return pino({ name: `informer/${name}`, level: process.env.FLOTILLA_LOG_LEVEL ?? 'warn' }, pino.destination(2));
}

interface Waiter {
  index: number;
  resolve(): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
}

export class Informer<T extends KubeObject = KubeObject> {
  readonly kind: KindDef;
  readonly namespace?: string;
  readonly name: string;
  private readonly client: ApiClient;
  private readonly log: Logger;
  private readonly o: InformerOptions;
  private readonly selector?: LabelRequirement[];
  private readonly subject: string;
  private readonly stream: string;
  private nc?: NatsConnection;
  private readonly ownsNats: boolean;

  private readonly items = new Map<string, T>();
  private readonly indexers = new Map<string, IndexFunc<T>>();
  /** index name → value → keys. */
  private readonly indices = new Map<string, Map<string, Set<string>>>();
  /** key → index name → the values it is filed under (to unfile it). */
  private readonly filed = new Map<string, Map<string, readonly string[]>>();
  private readonly handlers = new Set<EventHandlers<T>>();

  private readonly counters = { lists: 0, relists: 0, events: 0, skipped: 0, badMessages: 0, consumerResets: 0, handlerErrors: 0, resyncs: 0 };
  private lastIndex = 0;
  private synced = false;
  private running = false;
  private stopping = false;
  private loop?: Promise<void>;
  private reader?: EventReader;
  /** Where the stream reading stands; undefined: LIST first. */
  private position?: ReadPosition;
  private resyncTimer?: NodeJS.Timeout;
  private syncWaiters: Waiter[] = [];
  private indexWaiters: Waiter[] = [];
  private wake?: () => void;
  /** Watch source: aborts the watch in flight. */
  private watchAbort?: AbortController;

  constructor(opts: InformerOptions) {
    if (!opts.kind) throw new Error('Informer needs a kind');
    if (opts.namespace && !opts.kind.namespaced) throw new Error(`${opts.kind.plural} are cluster-scoped: no namespace applies`);
    // The stream has no field to filter on; silently ignoring the selector would hand out objects the caller excluded.
    if (opts.fieldSelector && opts.source !== 'watch') throw new Error('a field selector needs the watch source');
    if (opts.filter && opts.source !== 'watch') throw new Error('a filter needs the watch source');
    if (opts.source !== 'watch' && !opts.nats) throw new Error('the stream source needs a NATS connection');
    this.o = opts;
    this.kind = opts.kind;
    this.namespace = opts.namespace || undefined;
    this.client = opts.client;
    this.name = opts.name ?? (opts.kind.group ? `${opts.kind.plural}.${opts.kind.group}` : opts.kind.plural);
    this.log = opts.logger ?? defaultLogger(this.name);
    this.selector = opts.labelSelector ? parseLabelSelector(opts.labelSelector) : undefined;
    this.stream = opts.stream ?? STREAM;
    this.subject = filterSubject(opts.kind.group, opts.kind.plural, this.namespace);
    this.ownsNats = typeof opts.nats === 'string' || Array.isArray(opts.nats);
    if (!this.ownsNats && typeof opts.nats !== 'function') this.nc = opts.nats as NatsConnection;
    this.addIndexer(NAMESPACE_INDEX, (o) => o.metadata?.namespace ?? '');
    this.addIndexer(LABEL_INDEX, (o) => Object.entries(o.metadata?.labels ?? {}).map(([k, v]) => `${k}=${v}`));
    this.addIndexer(NODE_INDEX, (o) => {
      const n = (o as { spec?: { nodeName?: unknown } }).spec?.nodeName;
      return typeof n === 'string' && n ? n : undefined;
    });
  }

  // ------------------------------------------------------------ lifecycle

  /**
   * Starts listing and following the stream; resolves once the cache holds
   * the first LIST (hasSynced). After stop(), start() resumes right after the
   * last event applied, or re-lists if that point is gone.
   */
  async start(): Promise<void> {
    if (!this.running) {
      this.running = true;
      this.stopping = false;
      if (this.ownsNats && (!this.nc || this.nc.isClosed())) {
        const nc = await connectNats(this.o.nats as string | readonly string[], `flotilla-informer-${this.name}`);
        if (this.stopping) {
          // stop() was called while connecting.
          await nc.close();
          throw new Error(`informer ${this.name} stopped`);
        }
        this.nc = nc;
      }
      if (typeof this.o.nats === 'function' && !this.nc && this.o.source !== 'watch') this.nc = await this.o.nats();
      this.loop = this.o.source === 'watch' ? this.runWatch() : this.run();
      if (this.o.resyncMs && this.o.resyncMs > 0) {
        this.resyncTimer = setInterval(() => this.resync(), this.o.resyncMs);
        this.resyncTimer.unref?.();
      }
    }
    await this.waitForSync();
  }

  /** Stops following the stream; the cache stays readable. Pending waits reject. */
  async stop(): Promise<void> {
    if (!this.running) return;
    // Still connecting (no loop yet): start() sees `stopping` and gives up.
    this.stopping = true;
    this.reader?.stop();
    this.watchAbort?.abort();
    this.wake?.();
    clearInterval(this.resyncTimer);
    this.resyncTimer = undefined;
    await this.loop;
    this.loop = undefined;
    this.running = false;
    const err = new Error(`informer ${this.name} stopped`);
    for (const w of [...this.syncWaiters, ...this.indexWaiters]) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.syncWaiters = [];
    this.indexWaiters = [];
    if (this.ownsNats) await this.nc?.close().catch(() => {});
  }

  /** Whether the cache holds a complete LIST (and every handler has seen its objects). */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once hasSynced(); rejects after timeoutMs (if given) or when the informer stops. */
  waitForSync(timeoutMs?: number): Promise<void> {
    if (this.synced) return Promise.resolve();
    return this.addWaiter(this.syncWaiters, 0, timeoutMs, 'sync');
  }

  /**
   * Resolves once the cache reflects at least this resourceVersion of this
   * kind (for example a write the caller just made); rejects after timeoutMs.
   */
  waitForResourceVersion(rv: string | number, timeoutMs = 30_000): Promise<void> {
    const index = Number(rv);
    if (!Number.isSafeInteger(index) || index < 0) return Promise.reject(new Error(`invalid resourceVersion "${String(rv)}"`));
    if (this.synced && this.lastIndex >= index) return Promise.resolve();
    return this.addWaiter(this.indexWaiters, index, timeoutMs, `resourceVersion ${index}`);
  }

  /** The Raft index (resourceVersion) the cache reflects, as client-go names it. */
  get lastSyncResourceVersion(): string {
    return String(this.lastIndex);
  }

  get stats(): InformerStats {
    const r = this.reader?.stats;
    return {
      ...this.counters,
      consumerResets: this.counters.consumerResets + (r?.resets ?? 0),
      lastIndex: this.lastIndex,
      streamSeq: this.reader?.position().seq ?? this.position?.seq ?? 0,
      objects: this.items.size,
    };
  }

  // ------------------------------------------------------------ cache

  get(namespace: string, name: string): T | undefined {
    return this.items.get(objectKey(this.kind.namespaced ? namespace : '', name));
  }

  getByKey(key: string): T | undefined {
    return this.items.get(key);
  }

  /** Every cached object (or those of one namespace). */
  list(namespace?: string): T[] {
    if (namespace !== undefined) return this.byIndex(NAMESPACE_INDEX, namespace);
    return [...this.items.values()];
  }

  keys(): string[] {
    return [...this.items.keys()];
  }

  get size(): number {
    return this.items.size;
  }

  /**
   * Adds an index: `fn` names the values an object is filed under. Existing
   * objects are indexed at once. Built in: NAMESPACE_INDEX, LABEL_INDEX ("k=v"), NODE_INDEX.
   */
  addIndexer(name: string, fn: IndexFunc<T>): void {
    if (this.indexers.has(name)) throw new Error(`index "${name}" already exists`);
    this.indexers.set(name, fn);
    this.indices.set(name, new Map());
    for (const [key, obj] of this.items) this.file(key, name, fn, obj);
  }

  /** Whether index `name` exists (shared informers: the first controller that needs an index adds it). */
  hasIndexer(name: string): boolean {
    return this.indexers.has(name);
  }

  /** Objects filed under `value` in index `name`. */
  byIndex(name: string, value: string): T[] {
    return this.indexKeys(name, value).map((k) => this.items.get(k)!).filter(Boolean);
  }

  /** Keys filed under `value` in index `name`. */
  indexKeys(name: string, value: string): string[] {
    const idx = this.indices.get(name);
    if (!idx) throw new Error(`no index "${name}"`);
    return [...(idx.get(value) ?? [])];
  }

  /** The values index `name` currently holds. */
  indexValues(name: string): string[] {
    const idx = this.indices.get(name);
    if (!idx) throw new Error(`no index "${name}"`);
    return [...idx.keys()];
  }

  byLabel(key: string, value: string): T[] {
    return this.byIndex(LABEL_INDEX, `${key}=${value}`);
  }

  byNode(nodeName: string): T[] {
    return this.byIndex(NODE_INDEX, nodeName);
  }

  byNamespace(namespace: string): T[] {
    return this.byIndex(NAMESPACE_INDEX, namespace);
  }

  // ------------------------------------------------------------ handlers

  /**
   * Registers handlers; returns a function that removes them. Registered on
   * an informer that already has objects, onAdd is called for each of them
   * first (as client-go does), so a late handler misses nothing.
   */
  addEventHandler(h: EventHandlers<T>): () => void {
    this.handlers.add(h);
    if (h.onAdd) for (const obj of this.items.values()) this.call(() => h.onAdd!(obj));
    return () => void this.handlers.delete(h);
  }

  onAdd(fn: (obj: T) => void): () => void {
    return this.addEventHandler({ onAdd: fn });
  }

  onUpdate(fn: (oldObj: T, newObj: T) => void): () => void {
    return this.addEventHandler({ onUpdate: fn });
  }

  onDelete(fn: (obj: T) => void): () => void {
    return this.addEventHandler({ onDelete: fn });
  }

  // ------------------------------------------------------------ internals

  private async run(): Promise<void> {
    let backoff = 200;
    while (!this.stopping) {
      try {
        if (!this.position) await this.relist();
        if (this.stopping) break;
        const reader = new EventReader({
          nc: this.nc!, stream: this.stream, filterSubject: this.subject, start: { after: this.position! },
          onMessage: (m, check) => this.onMessage(m, check), logger: this.log, namePrefix: `flotilla-informer-${this.kind.plural}`,
        });
        this.reader = reader;
        try {
          await reader.run();
        } finally {
          this.position = reader.position();
          this.counters.consumerResets += reader.stats.resets;
          this.reader = undefined;
        }
        backoff = 200;
      } catch (e) {
        if (this.stopping) break;
        if (e instanceof StreamGapError) {
          this.counters.relists++;
          this.log.warn({ err: e.message, lastIndex: this.lastIndex }, 'events may have been lost; re-listing');
          this.position = undefined;
          continue;
        }
        this.log.warn({ err: (e as Error).message, retryInMs: backoff }, 'informer failed; retrying');
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  /** LIST at a revision R and reconcile the cache with it; the stream is then read after R. */
  private async relist(): Promise<void> {
    const jsm = await this.nc!.jetstreamManager();
    // Taken before the LIST: every message up to this sequence is at or below R.
    const info = await jsm.streams.info(this.stream);
    const rv = await this.listAndReplace();
    if (rv === undefined) return;
    this.position = { index: rv, seq: info.state.last_seq, created: info.created };
    this.log.debug({ resourceVersion: rv, seq: info.state.last_seq }, 'listed');
  }

  /** LIST (all pages at one revision), make the cache equal to it; its revision, or undefined when stopping. */
  private async listAndReplace(): Promise<number | undefined> {
    const list = await this.client.list<T>(resourcePath(this.kind, this.namespace), {
      limit: this.o.pageSize ?? 500, labelSelector: this.o.labelSelector || undefined, fieldSelector: this.o.fieldSelector || undefined,
    });
    const rv = Number(list.metadata.resourceVersion);
    if (!Number.isSafeInteger(rv) || rv < 0) throw new Error(`LIST ${this.name} returned no usable resourceVersion (${String(list.metadata.resourceVersion)})`);
    if (this.stopping) return undefined;
    this.counters.lists++;
    const keep = this.o.filter;
    this.replace(keep ? list.items.filter((o) => keep(o)) : list.items, rv);
    this.markSynced();
    return rv;
  }

  private markSynced(): void {
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) {
        clearTimeout(w.timer);
        w.resolve();
      }
    }
    this.releaseIndexWaiters();
  }

  /**
   * The watch source, client-go's reflector: LIST at R, WATCH from R with
   * bookmarks; a watch that ends (timeout, a server going away) resumes from
   * the last resourceVersion seen; 410 Gone (the server no longer has the
   * history after it) re-lists.
   */
  private async runWatch(): Promise<void> {
    let backoff = 200;
    // After stop() and start(), resume after the last event applied (410 if it is gone: re-list).
    let from: number | undefined = this.synced ? this.lastIndex : undefined;
    while (!this.stopping) {
      try {
        if (from === undefined) {
          from = await this.listAndReplace();
          if (from === undefined) break;
        }
        const abort = new AbortController();
        this.watchAbort = abort;
        await this.client.watch<T>(resourcePath(this.kind, this.namespace), {
          resourceVersion: String(from), allowWatchBookmarks: true, timeoutSeconds: this.o.watchTimeoutSeconds ?? 300,
          labelSelector: this.o.labelSelector || undefined, fieldSelector: this.o.fieldSelector || undefined,
        }, (e) => {
          const rv = Number(e.object?.metadata?.resourceVersion);
          if (!Number.isSafeInteger(rv)) return;
          this.applyWatchEvent(e.type, e.object, rv);
          from = Math.max(from ?? 0, rv);
        }, abort.signal);
        this.watchAbort = undefined;
        backoff = 200;
      } catch (e) {
        this.watchAbort = undefined;
        if (this.stopping) break;
        if (e instanceof ApiClientError && e.code === 410) {
          this.counters.relists++;
          this.log.warn({ err: e.message, lastIndex: this.lastIndex }, 'watch history expired; re-listing');
          from = undefined;
          continue;
        }
        this.log.warn({ err: (e as Error).message, retryInMs: backoff }, 'watch failed; retrying');
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  /** One watch event into the cache (the watch already applied the selectors server-side). */
  private applyWatchEvent(type: string, obj: T, rv: number): void {
    if (rv <= this.lastIndex && type !== 'BOOKMARK') {
      this.counters.skipped++;
      return;
    }
    this.lastIndex = Math.max(this.lastIndex, rv);
    if (type !== 'BOOKMARK') {
      this.counters.events++;
      const key = keyOf(obj);
      const old = this.items.get(key);
      if (type === 'DELETED' || (this.o.filter && !this.o.filter(obj))) {
        if (old) {
          this.remove(key);
          this.notify((h) => h.onDelete?.(type === 'DELETED' ? obj : old));
        }
      } else {
        this.store(key, obj);
        if (old) this.notify((h) => h.onUpdate?.(old, obj));
        else this.notify((h) => h.onAdd?.(obj));
      }
    }
    this.releaseIndexWaiters();
  }

  /** Makes the cache equal to a LIST at `rv`, telling handlers what changed. */
  private replace(objs: T[], rv: number): void {
    const fresh = new Map<string, T>();
    for (const o of objs) fresh.set(keyOf(o), o);
    const gone: T[] = [];
    for (const [key, old] of this.items) if (!fresh.has(key)) gone.push(old);
    this.lastIndex = rv;
    for (const [key, obj] of fresh) {
      const old = this.items.get(key);
      if (old && old.metadata?.resourceVersion === obj.metadata?.resourceVersion && old.metadata?.uid === obj.metadata?.uid) continue;
      this.store(key, obj);
      if (old) this.notify((h) => h.onUpdate?.(old, obj));
      else this.notify((h) => h.onAdd?.(obj));
    }
    for (const old of gone) {
      this.remove(keyOf(old));
      this.notify((h) => h.onDelete?.(old));
    }
  }

  private onMessage(m: JsMsg, check: EventCheck): void {
    // Not a Flotilla event (payload, Nats-Msg-Id, subject, Flotilla-Prev-Index): the reader did not move its index either.
    if (!check.ok) return this.bad(m, check.reason);
    const ev: ApiEvent = check.event;
    const sameKind = ev.group === this.kind.group && (ev.resource ? ev.resource === this.kind.plural : ev.kind === this.kind.kind);
    if (!sameKind) return this.bad(m, `an event for ${ev.resource || ev.kind}.${ev.group || 'core'} on this kind's subject`);
    if (this.namespace && ev.namespace !== this.namespace) return this.bad(m, `an event for namespace "${ev.namespace}" on the subject of "${this.namespace}"`);
    if (ev.index <= this.lastIndex) {
      this.counters.skipped++;
      return;
    }
    let obj: T;
    try {
      obj = JSON.parse(ev.object) as T;
      if (!obj || typeof obj !== 'object' || obj.metadata?.name !== ev.name) throw new Error(`its object is not ${ev.name}`);
    } catch (e) {
      return this.bad(m, `object: ${(e as Error).message}`);
    }
    this.lastIndex = ev.index;
    this.counters.events++;
    const key = objectKey(this.kind.namespaced ? ev.namespace : '', ev.name);
    const old = this.items.get(key);
    const selected = !this.selector || matchesLabels(this.selector, obj.metadata?.labels ?? {});
    if (ev.type === 'DELETED' || !selected) {
      // An object that stops matching the selector leaves the cache as a delete, as in a filtered watch.
      if (old) {
        this.remove(key);
        this.notify((h) => h.onDelete?.(ev.type === 'DELETED' ? obj : old));
      }
    } else {
      this.store(key, obj);
      if (old) this.notify((h) => h.onUpdate?.(old, obj));
      else this.notify((h) => h.onAdd?.(obj));
    }
    this.releaseIndexWaiters();
  }

  private bad(m: JsMsg, why: string): void {
    this.counters.badMessages++;
    this.log.warn({ subject: m.subject, seq: m.seq, msgId: m.headers?.get('Nats-Msg-Id') || undefined, err: why }, 'skipping a message that is not a valid event');
  }

  private resync(): void {
    if (!this.synced || this.stopping) return;
    this.counters.resyncs++;
    for (const obj of [...this.items.values()]) this.notify((h) => h.onUpdate?.(obj, obj));
  }

  private store(key: string, obj: T): void {
    this.items.set(key, obj);
    for (const [name, fn] of this.indexers) this.file(key, name, fn, obj);
  }

  private remove(key: string): void {
    this.items.delete(key);
    const byName = this.filed.get(key);
    if (byName) for (const name of byName.keys()) this.unfile(key, name);
    this.filed.delete(key);
  }

  private file(key: string, name: string, fn: IndexFunc<T>, obj: T): void {
    this.unfile(key, name);
    let values: readonly string[];
    try {
      const v = fn(obj);
      values = v === undefined ? [] : typeof v === 'string' ? [v] : v;
    } catch (e) {
      this.counters.handlerErrors++;
      this.log.error({ index: name, key, err: (e as Error).message }, 'index function failed');
      values = [];
    }
    if (!values.length) return;
    const idx = this.indices.get(name)!;
    for (const v of values) {
      let keys = idx.get(v);
      if (!keys) idx.set(v, (keys = new Set()));
      keys.add(key);
    }
    let byName = this.filed.get(key);
    if (!byName) this.filed.set(key, (byName = new Map()));
    byName.set(name, values);
  }

  private unfile(key: string, name: string): void {
    const values = this.filed.get(key)?.get(name);
    if (!values) return;
    const idx = this.indices.get(name)!;
    for (const v of values) {
      const keys = idx.get(v);
      keys?.delete(key);
      if (keys && !keys.size) idx.delete(v);
    }
    this.filed.get(key)!.delete(name);
  }

  private notify(fn: (h: EventHandlers<T>) => void): void {
    for (const h of this.handlers) this.call(() => fn(h));
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.counters.handlerErrors++;
      this.log.error({ err: (e as Error)?.message ?? String(e) }, 'event handler failed');
    }
  }

  private addWaiter(list: Waiter[], index: number, timeoutMs: number | undefined, what: string): Promise<void> {
    if (!this.running && list === this.indexWaiters) return Promise.reject(new Error(`informer ${this.name} is not running`));
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { index, resolve, reject };
      if (timeoutMs !== undefined) {
        w.timer = setTimeout(() => {
          const i = list.indexOf(w);
          if (i >= 0) list.splice(i, 1);
          reject(new Error(`informer ${this.name}: timed out after ${timeoutMs} ms waiting for ${what} (at ${this.lastIndex})`));
        }, timeoutMs);
      }
      list.push(w);
    });
  }

  private releaseIndexWaiters(): void {
    if (!this.indexWaiters.length) return;
    const keep: Waiter[] = [];
    for (const w of this.indexWaiters) {
      if (this.lastIndex >= w.index) {
        clearTimeout(w.timer);
        w.resolve();
      } else {
        keep.push(w);
      }
    }
    this.indexWaiters = keep;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.wake = undefined;
        resolve();
      }
      this.wake = done;
    });
  }
}
