// The replicated object store: the Raft state machine of the API server.
// Objects are kept as their JSON text (compact, and a LIST can be written out
// without re-serializing), keyed by resource, namespace and name. Every
// decision that depends on state is made here, at apply time, from the log
// alone, so that all members agree. A bounded history of changes serves
// watches from a resourceVersion and paginated lists at a fixed revision.
import { EventEmitter } from 'node:events';
import { pack, unpack, unpackMultiple } from 'msgpackr';
import type { StateMachine } from '../raft/node.ts';
import { type AuditVerb, type Command, decodeCommand } from './command.ts';
import { finalizersForDelete } from './deletion.ts';
import { ApiError, errors } from './errors.ts';
import { ServiceAllocations } from './service-allocation.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredObject {
  /** The whole object as JSON, resourceVersion included. */
  json: string;
  rv: number;
  uid: string;
  labels?: Record<string, string>;
}

export interface StoreEvent {
  index: number;
  term: number;
  type: WatchEventType;
  res: string;
  ns: string;
  name: string;
  uid: string;
  /** The object after the change; for DELETED its last state. */
  json: string;
  labels?: Record<string, string>;
  /** The object before the change (undefined when created). */
  prev?: StoredObject;
  user: string;
  verb: AuditVerb;
  /** The requester's groups, source addresses and user agent; undefined when unknown (older entries, the server's own writes). */
  groups?: string[];
  src?: string[];
  ua?: string;
  ts: string;
  /** Monotonic local time the event was applied, whole ms (watch-history retention; a small integer is not boxed). */
  at: number;
}

export type ApplyResult = { ok: true; object: StoredObject; event?: StoreEvent; deleted?: boolean } | { ok: false; error: ApiError };

export interface HistoryLimits {
  /**
   * Byte budget of the watch history (the JSON text of each event's object and
   * of its previous version, plus a fixed overhead per event). The oldest
   * events go first; a watch or paged list from before what is kept gets 410
   * Expired, as from Kubernetes' watch cache. Memory follows this budget, not
   * the number of writes.
   */
  maxBytes: number;
  /** Cap on the number of events kept. */
  maxEvents: number;
  /** Cap on the age of the events kept (ms since they were applied here). */
  maxAgeMs: number;
  /** @deprecated older name of maxEvents (once a minimum, now a cap). */
  minEvents?: number;
  /** @deprecated older name of maxAgeMs (once a minimum, now a cap). */
  minAgeMs?: number;
}

/** Default byte budget of the watch history (`--watch-history-bytes`). */
export const DEFAULT_WATCH_HISTORY_BYTES = 64 * 1024 * 1024;

/** What one history event is charged beyond its JSON text: the event record, its strings and indexes. */
export const EVENT_OVERHEAD_BYTES = 256;

/**
 * The bytes an event is charged against the history budget. Its previous
 * version is charged too, although it is usually the same string as an
 * earlier event's object: an over-estimate (at most twice), never an under-estimate.
 */
export function eventBytes(e: StoreEvent): number {
  return EVENT_OVERHEAD_BYTES + e.json.length + (e.prev ? e.prev.json.length : 0);
}

const SEP = '\u0000';

/** The resource key of core/v1 Services, whose cluster IPs and node ports are allocated at apply time. */
const SERVICES = '/services';

/** Objects per snapshot batch, by bytes of JSON (see snapshotParts). */
const SNAPSHOT_BATCH_BYTES = 256 * 1024;

function objKey(ns: string, name: string): string {
  return ns ? `${ns}/${name}` : name;
}

function splitRes(res: string): { group: string; plural: string } {
  const i = res.indexOf('/');
  return { group: res.slice(0, i), plural: res.slice(i + 1) };
}

interface Meta {
  resourceVersion?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  finalizers?: string[];
  labels?: Record<string, string>;
  uid?: string;
}

export class ObjectStore extends EventEmitter implements StateMachine {
  /** res → "ns/name" → object. */
  private readonly data = new Map<string, Map<string, StoredObject>>();
  /** res → its keys in order, while no key was added or removed since (see sortedKeys). */
  private readonly sorted = new Map<string, string[]>();
  /** Index of the last applied API command (the store's revision). */
  revision = 0;
  /** Committed entries that were not an API command this store could apply: no-ops (see refuse). */
  rejectedEntries = 0;
  private count = 0;
  private history: StoreEvent[] = [];
  private historyHead = 0;
  /** Watches and paged lists can start from any revision >= this. */
  private historyFloor = 0;
  private readonly limits: HistoryLimits;
  /** Bytes charged for the events in the history (see eventBytes). */
  private historyBytesUsed = 0;
  /**
   * Events not yet on the NATS stream (index > publishedIndex), in order. Part
   * of the replicated state: snapshots carry them, so compacting the log never
   * loses an event still to publish.
   */
  private outbox: StoreEvent[] = [];
  private outboxHead = 0;
  /** Replicated watermark: events up to here are on the stream. */
  publishedIndex = 0;
  /** Keep the outbox only when an event stream is configured. */
  keepOutbox = false;

  /** Cluster IPs and node ports the stored Services hold (derived from them). */
  readonly serviceAllocations = new ServiceAllocations();
  private readonly interned = new Map<string, string>();
  private readonly internedLists = new Map<string, string[]>();
  private lastTs = '';

  /** One shared, flat copy of a string that repeats across events (resource, namespace, user, verb). */
  private intern(v: string): string {
    const have = this.interned.get(v);
    if (have !== undefined) return have;
    if (this.interned.size >= 10_000) this.interned.clear();
    const own = flat(v);
    this.interned.set(own, own);
    return own;
  }

  /**
   * One shared copy of a list of strings (a user's groups repeat across
   * events). Anything but an array of strings - a malformed entry - reads as
   * unknown, so the publisher never meets a value it cannot encode.
   */
  private internList(v: unknown): string[] | undefined {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) return undefined;
    const key = v.join('\u0000');
    const have = this.internedLists.get(key);
    if (have) return have;
    if (this.internedLists.size >= 10_000) this.internedLists.clear();
    const own = v.map((x: string) => this.intern(x));
    this.internedLists.set(key, own);
    return own;
  }

  /** Timestamps have a resolution of seconds: consecutive events mostly share one. */
  private internTs(ts: string): string {
    if (ts !== this.lastTs) this.lastTs = flat(ts);
    return this.lastTs;
  }

  constructor(limits: Partial<HistoryLimits> = {}) {
    super();
    this.setMaxListeners(0);
    const def = (v: number | undefined, d: number) => (v === undefined || !Number.isFinite(v) || v < 0 ? d : v);
    this.limits = {
      maxBytes: def(limits.maxBytes, DEFAULT_WATCH_HISTORY_BYTES),
      maxEvents: def(limits.maxEvents ?? limits.minEvents, 100_000),
      maxAgeMs: def(limits.maxAgeMs ?? limits.minAgeMs, 5 * 60_000),
    };
  }

  /** Events and bytes the watch history holds now. */
  get historyStats(): { events: number; bytes: number; floor: number; limits: HistoryLimits } {
    return { events: this.history.length - this.historyHead, bytes: this.historyBytesUsed, floor: this.historyFloor, limits: { ...this.limits } };
  }

  get objectCount(): number {
    return this.count;
  }

  /** Objects of one resource ("<group>/<plural>"), all namespaces (the request limits size a LIST by it). */
  countOf(res: string): number {
    return this.data.get(res)?.size ?? 0;
  }

  get oldestWatchableRevision(): number {
    return this.historyFloor;
  }

  // ---------------------------------------------------------------- reads

  get(res: string, ns: string, name: string): StoredObject | undefined {
    return this.data.get(res)?.get(objKey(ns, name));
  }

  /** Current objects of a resource (one namespace or all), sorted by namespace/name like etcd keys. */
  list(res: string, ns: string | undefined): { key: string; obj: StoredObject }[] {
    const m = this.data.get(res);
    if (!m) return [];
    const keys = this.sortedKeys(res, m);
    // One namespace is one range of the ordered keys: "ns/" up to "ns0" ('0' follows '/').
    const lo = ns ? lowerBound(keys, `${ns}/`) : 0;
    const hi = ns ? lowerBound(keys, `${ns}0`, lo) : keys.length;
    const out: { key: string; obj: StoredObject }[] = new Array(hi - lo);
    for (let i = lo; i < hi; i++) out[i - lo] = { key: keys[i], obj: m.get(keys[i])! };
    return out;
  }

  /**
   * The keys of a resource in order (the ordered index LISTs are served from).
   * Built on the first LIST after the set of keys changed (a create or a
   * delete drops it; updates keep it), so LISTs between writes do not sort.
   */
  private sortedKeys(res: string, m: Map<string, StoredObject>): string[] {
    let keys = this.sorted.get(res);
    if (!keys) {
      keys = [...m.keys()].sort();
      this.sorted.set(res, keys);
    }
    return keys;
  }

  /**
   * Objects as they were at `revision` (for the pages after the first of a
   * paginated list): current state with every change after `revision` undone
   * from the history. Throws 410 Gone when the history no longer reaches back.
   */
  listAt(res: string, ns: string | undefined, revision: number): { key: string; obj: StoredObject }[] {
    if (revision >= this.revision) return this.list(res, ns);
    if (revision < this.historyFloor) {
      throw errors.gone(`The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.`);
    }
    const m = new Map<string, StoredObject>();
    for (const { key, obj } of this.list(res, ns)) m.set(key, obj);
    const undone = new Set<string>();
    // Only the changes after `revision` matter: start there, not at the oldest event kept.
    for (let i = firstAfter(this.history, this.historyHead, revision); i < this.history.length; i++) {
      const e = this.history[i];
      if (e.res !== res || (ns && e.ns !== ns)) continue;
      const k = objKey(e.ns, e.name);
      if (undone.has(k)) continue; // the earliest change after `revision` holds the state at it
      undone.add(k);
      if (e.prev) m.set(k, e.prev);
      else m.delete(k);
    }
    return [...m].map(([key, obj]) => ({ key, obj })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** History events after `revision` (for a watch). Throws 410 Gone when they are no longer all kept. */
  eventsSince(revision: number): StoreEvent[] {
    if (revision < this.historyFloor) {
      throw errors.gone(`too old resource version: ${revision} (${this.historyFloor})`);
    }
    return this.history.slice(firstAfter(this.history, this.historyHead, revision));
  }

  // ---------------------------------------------------------------- apply

  apply(entry: { index: number; term: number; data: Uint8Array }): ApplyResult {
    let cmd: Command;
    try {
      cmd = decodeCommand(entry.data);
    } catch (e) {
      // A corrupt or foreign entry: every member sees the same bytes and skips it alike.
      return this.refuse(entry.index, `undecodable command: ${(e as Error).message}`);
    }
    if (cmd.op === 'mark') {
      this.markPublished(cmd.published);
      return { ok: true, object: { json: '', rv: 0, uid: '' } };
    }
    let r: ApplyResult;
    try {
      // Throws only on a malformed field (e.g. obj not JSON), before any change: the same on every member.
      r = this.applyCommand(cmd, entry.index, entry.term);
    } catch (e) {
      return this.refuse(entry.index, `malformed ${cmd.op} command: ${(e as Error).message}`);
    }
    this.revision = entry.index;
    if (r.ok && r.event) {
      this.record(r.event);
      if (this.keepOutbox) this.outbox.push(r.event);
      this.emit('event', r.event);
    }
    return r;
  }

  /** A committed entry this store cannot apply: a no-op on every member, counted and reported ('rejected'). */
  private refuse(index: number, reason: string): ApplyResult {
    this.rejectedEntries++;
    this.emit('rejected', { index, reason });
    return { ok: false, error: errors.badRequest(`entry ${index} not applied: ${reason}`) };
  }

  /** Events after `index` still waiting to be published (from the outbox). */
  unpublishedSince(index: number, max = Infinity): StoreEvent[] {
    const lo = firstAfter(this.outbox, this.outboxHead, index);
    return this.outbox.slice(lo, Math.min(this.outbox.length, lo + max));
  }

  /** How many outbox events come after `index`, and the oldest of them. */
  pendingAfter(index: number): { count: number; oldest?: StoreEvent } {
    const lo = firstAfter(this.outbox, this.outboxHead, index);
    return { count: this.outbox.length - lo, oldest: this.outbox[lo] };
  }

  /** The oldest event the outbox still holds (0 when empty). */
  get outboxFloor(): number {
    return this.outboxHead < this.outbox.length ? this.outbox[this.outboxHead].index : 0;
  }

  get outboxSize(): number {
    return this.outbox.length - this.outboxHead;
  }

  private markPublished(published: number): void {
    if (published <= this.publishedIndex) return;
    this.publishedIndex = published;
    while (this.outboxHead < this.outbox.length && this.outbox[this.outboxHead].index <= published) {
      this.outbox[this.outboxHead++] = undefined as unknown as StoreEvent;
    }
    if (this.outboxHead > 1024 && this.outboxHead * 2 > this.outbox.length) {
      this.outbox = this.outbox.slice(this.outboxHead);
      this.outboxHead = 0;
    }
  }

  private applyCommand(cmd: Exclude<Command, { op: 'mark' }>, index: number, term: number): ApplyResult {
    const { group, plural } = splitRes(cmd.res);
    let m = this.data.get(cmd.res);
    const key = objKey(cmd.ns, cmd.name);
    const cur = m?.get(key);
    // The history keeps these for every event: share one copy of the strings
    // that repeat (msgpackr decodes short strings as slices of one larger
    // string, so each would otherwise also keep that alive).
    const event = (type: WatchEventType, obj: StoredObject, prev?: StoredObject): StoreEvent => ({
      index, term, type, res: this.intern(cmd.res), ns: this.intern(cmd.ns), name: flat(cmd.name), uid: obj.uid, json: obj.json,
      labels: obj.labels, prev, user: this.intern(cmd.user), verb: this.intern(cmd.verb) as AuditVerb,
      ...this.auditOf(cmd), ts: this.internTs(cmd.ts), at: Math.round(performance.now()),
    });

    switch (cmd.op) {
      case 'create': {
        if (cur) return { ok: false, error: errors.alreadyExists(group, plural, cmd.name) };
        const parsed = JSON.parse(cmd.obj) as { metadata?: Meta };
        if (cmd.res === SERVICES) {
          const refused = this.serviceAllocations.admit(key, cmd.name, parsed, cmd.svc);
          if (refused) return { ok: false, error: refused };
        }
        // A Service's addresses and ports were just allocated into the parsed object: its text is stale.
        const obj = this.stamp(parsed, index, cmd.res === SERVICES ? undefined : cmd.obj);
        if (!m) this.data.set(this.intern(cmd.res), (m = new Map()));
        m.set(flat(key), obj);
        this.sorted.delete(cmd.res);
        this.count++;
        return { ok: true, object: obj, event: event('ADDED', obj) };
      }
      case 'update': {
        if (!cur) return { ok: false, error: errors.notFound(group, plural, cmd.name) };
        const pre = this.checkPrecondition(cmd.pre, cur, group, plural, cmd.name);
        if (pre) return { ok: false, error: pre };
        const parsed = JSON.parse(cmd.obj) as { metadata?: Meta };
        const curParsed = JSON.parse(cur.json) as { metadata?: Meta };
        const curGrace = curParsed.metadata?.deletionGracePeriodSeconds ?? 0;
        if (parsed.metadata?.deletionTimestamp && !hasPendingFinalizers(cmd.res, parsed) && curGrace === 0) {
          // The last finalizer of an object being deleted is gone: delete it now
          // (a graceful deletion still waits for its confirming DELETE, as in Kubernetes).
          const obj = this.stamp(parsed, index, cmd.obj);
          m!.delete(key);
          this.sorted.delete(cmd.res);
          this.count--;
          if (cmd.res === SERVICES) this.serviceAllocations.release(key);
          return { ok: true, object: obj, event: event('DELETED', obj, cur), deleted: true };
        }
        if (cmd.res === SERVICES) {
          const refused = this.serviceAllocations.admit(key, cmd.name, parsed, cmd.svc);
          if (refused) return { ok: false, error: refused };
        }
        // A write that changes nothing is answered with the stored object: same
        // resourceVersion, no event (as Kubernetes skips the etcd write).
        if (sameObject(parsed, curParsed)) return { ok: true, object: cur };
        const obj = this.stamp(parsed, index, cmd.res === SERVICES ? undefined : cmd.obj);
        m!.set(key, obj);
        return { ok: true, object: obj, event: event('MODIFIED', obj, cur) };
      }
      case 'delete': {
        if (!cur) return { ok: false, error: errors.notFound(group, plural, cmd.name) };
        const pre = this.checkPrecondition(cmd.pre, cur, group, plural, cmd.name);
        if (pre) return { ok: false, error: pre };
        const parsed = JSON.parse(cur.json) as { metadata?: Meta };
        const meta = (parsed.metadata ??= {});
        // The propagation policy adds or removes the orphan/foregroundDeletion finalizers.
        const finalizers = finalizersForDelete(meta.finalizers, cmd.gc);
        const finalizersChanged = finalizers.join('\0') !== (meta.finalizers ?? []).join('\0');
        if (finalizersChanged) {
          if (finalizers.length) meta.finalizers = finalizers;
          else delete meta.finalizers;
        }
        const hasFinalizers = hasPendingFinalizers(cmd.res, parsed);
        const graceful = !cmd.force && cmd.grace > 0;
        if (hasFinalizers || graceful) {
          if (meta.deletionTimestamp) {
            // Already being deleted: a shorter grace period shortens it (the node's
            // final grace-0 DELETE of a pod that finalizers still hold is kept, so
            // the pod goes when they do); another propagation policy changes the finalizers.
            const wanted = graceful ? cmd.grace : 0;
            const shorten = wanted < (meta.deletionGracePeriodSeconds ?? 0);
            if (!shorten && !finalizersChanged) return { ok: true, object: cur }; // nothing changes
            if (shorten) {
              meta.deletionTimestamp = addSeconds(cmd.ts, wanted);
              meta.deletionGracePeriodSeconds = wanted;
            }
            const obj = this.stamp(parsed, index);
            m!.set(key, obj);
            return { ok: true, object: obj, event: event('MODIFIED', obj, cur) };
          }
          const grace = hasFinalizers && !graceful ? 0 : cmd.grace;
          meta.deletionTimestamp = addSeconds(cmd.ts, grace);
          meta.deletionGracePeriodSeconds = grace;
          const obj = this.stamp(parsed, index);
          m!.set(key, obj);
          return { ok: true, object: obj, event: event('MODIFIED', obj, cur) };
        }
        const obj = this.stamp(parsed, index, finalizersChanged ? undefined : cur.json);
        m!.delete(key);
        this.sorted.delete(cmd.res);
        this.count--;
        if (cmd.res === SERVICES) this.serviceAllocations.release(key);
        return { ok: true, object: obj, event: event('DELETED', obj, cur), deleted: true };
      }
    }
  }

  /** The optional audit fields of a command, checked: a wrong type reads as unknown. */
  private auditOf(cmd: Command): Pick<StoreEvent, 'groups' | 'src' | 'ua'> {
    const out: Pick<StoreEvent, 'groups' | 'src' | 'ua'> = {};
    const groups = this.internList(cmd.groups);
    if (groups) out.groups = groups;
    const src = this.internList(cmd.src);
    if (src) out.src = src;
    if (typeof cmd.ua === 'string') out.ua = this.intern(cmd.ua);
    return out;
  }

  private checkPrecondition(pre: { rv?: number; uid?: string }, cur: StoredObject, group: string, plural: string, name: string): ApiError | undefined {
    if (pre.uid && pre.uid !== cur.uid) {
      return errors.conflict(group, plural, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${cur.uid}`);
    }
    if (pre.rv !== undefined && pre.rv !== cur.rv) return errors.conflict(group, plural, name);
    return undefined;
  }

  /**
   * The object with its resourceVersion set to `index`. `text`, when given,
   * is `obj` as JSON text (what was proposed, or the stored text of an object
   * that did not change): the resourceVersion is then written into it
   * (stampText) instead of serializing the whole object again.
   */
  private stamp(obj: { metadata?: Meta }, index: number, text?: string): StoredObject {
    const meta = (obj.metadata ??= {});
    const old = meta.resourceVersion;
    meta.resourceVersion = String(index);
    const json = (text !== undefined && stampText(text, obj as StampHead, old, meta.resourceVersion)) || JSON.stringify(obj);
    return { json, rv: index, uid: meta.uid ?? '', labels: meta.labels };
  }

  private record(e: StoreEvent): void {
    this.history.push(e);
    this.historyBytesUsed += eventBytes(e);
    const { maxEvents, maxAgeMs, maxBytes } = this.limits;
    const now = e.at;
    while (this.historyHead < this.history.length) {
      const oldest = this.history[this.historyHead];
      if (this.history.length - this.historyHead <= maxEvents && this.historyBytesUsed <= maxBytes && now - oldest.at <= maxAgeMs) break;
      this.historyFloor = oldest.index;
      this.historyBytesUsed -= eventBytes(oldest);
      this.history[this.historyHead++] = undefined as unknown as StoreEvent;
    }
    if (this.historyHead > 4096 && this.historyHead * 2 > this.history.length) {
      this.history = this.history.slice(this.historyHead);
      this.historyHead = 0;
    }
  }

  // ---------------------------------------------------------------- snapshots

  snapshot(): Uint8Array {
    return Buffer.concat(this.snapshotParts());
  }

  /**
   * The snapshot as consecutive msgpack values: a header, then the objects
   * in batches of about SNAPSHOT_BATCH_BYTES. Packed in batches, no buffer
   * of the state's size exists before the driver copies the parts into its
   * envelope (msgpackr packs into a shared buffer that grows to twice the
   * largest value and keeps that size).
   */
  snapshotParts(): Uint8Array[] {
    const outbox = this.outbox.slice(this.outboxHead).map((e) => [e.index, e.term, e.type, e.res, e.ns, e.name, e.uid, e.json, e.user, e.verb, e.ts, e.groups, e.src, e.ua]);
    const parts: Uint8Array[] = [pack({ v: 2, revision: this.revision, publishedIndex: this.publishedIndex, outbox, objects: this.count })];
    let batch: [string, string, string][] = [];
    let bytes = 0;
    for (const [res, m] of this.data) {
      for (const [k, o] of m) {
        batch.push([res, k, o.json]);
        bytes += o.json.length + k.length + 16;
        if (bytes >= SNAPSHOT_BATCH_BYTES) {
          parts.push(pack(batch));
          batch = [];
          bytes = 0;
        }
      }
    }
    if (batch.length) parts.push(pack(batch));
    return parts;
  }

  restore(data: Uint8Array, index: number): void {
    // Version 2: a header then batches of rows (snapshotParts); before: one map holding all rows.
    const values = unpackMultiple(data) as unknown[];
    const s = values[0] as {
      v?: number; revision: number; rows?: [string, string, string][]; publishedIndex?: number;
      // The last three (groups, source addresses, user agent) are absent in snapshots taken before they existed.
      outbox?: [number, number, WatchEventType, string, string, string, string, string, string, AuditVerb, string, unknown?, unknown?, unknown?][];
    };
    const batches = s.v === 2 ? (values.slice(1) as [string, string, string][][]) : [s.rows ?? []];
    this.data.clear();
    this.sorted.clear();
    this.serviceAllocations.clear();
    this.count = 0;
    for (const rows of batches) {
      for (const [res, k, json] of rows) {
        let m = this.data.get(res);
        if (!m) this.data.set(this.intern(res), (m = new Map()));
        const parsed = JSON.parse(json) as { metadata?: Meta };
        const meta = parsed.metadata ?? {};
        if (res === SERVICES) this.serviceAllocations.occupy(k, parsed);
        m.set(flat(k), { json, rv: Number(meta.resourceVersion ?? 0), uid: meta.uid ?? '', labels: meta.labels });
        this.count++;
      }
    }
    this.revision = s.revision;
    this.publishedIndex = s.publishedIndex ?? 0;
    this.outbox = (s.outbox ?? []).map(([index, term, type, res, ns, name, uid, json, user, verb, ts, groups, src, ua]) => ({
      index, term, type, res, ns, name, uid, json, user, verb, ts, at: Math.round(performance.now()),
      ...this.auditOf({ groups, src, ua } as Command),
    }));
    this.outboxHead = 0;
    // Changes before the snapshot are not in our history any more.
    this.history = [];
    this.historyHead = 0;
    this.historyBytesUsed = 0;
    this.historyFloor = Math.max(index, s.revision);
    this.emit('restored', index);
  }
}

/**
 * Whether something must still happen before an object being deleted can go:
 * metadata.finalizers, and for a Namespace also spec.finalizers (the
 * namespace controller's "kubernetes"), as Kubernetes' namespace registry decides.
 */
function hasPendingFinalizers(res: string, obj: { metadata?: Meta; spec?: unknown }): boolean {
  if (obj.metadata?.finalizers?.length) return true;
  if (res === '/namespaces') {
    const f = (obj.spec as { finalizers?: unknown } | undefined)?.finalizers;
    return Array.isArray(f) && f.length > 0;
  }
  return false;
}

/** A copy of `s` that does not keep a larger string alive (V8 makes slices of strings share their parent). */
function flat(s: string): string {
  return s.length < 13 ? s : (JSON.parse(JSON.stringify(s)) as string);
}

type StampHead = { apiVersion?: unknown; kind?: unknown };

/**
 * The JSON text `text` of an object with metadata.resourceVersion set to
 * `rv`, without serializing the object again: when the text starts with
 * apiVersion, kind and metadata (as the registry writes objects, see
 * encodeObject) the resourceVersion goes first in metadata - inserted, or
 * replacing the one already there (`old`, which must then come first).
 * Undefined when the text is not laid out so; the caller serializes then.
 * `obj` is `text` parsed: the result parses to `obj` with the new
 * resourceVersion (field order aside), the same on every member.
 */
export function stampText(text: string, obj: StampHead, old: string | undefined, rv: string): string | undefined {
  if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') return undefined;
  const head = `{"apiVersion":${JSON.stringify(obj.apiVersion)},"kind":${JSON.stringify(obj.kind)},"metadata":{`;
  if (!text.startsWith(head)) return undefined;
  let rest = head.length;
  if (old !== undefined) {
    const have = `"resourceVersion":${JSON.stringify(old)}`;
    if (!text.startsWith(have, rest)) return undefined;
    rest += have.length;
    if (text[rest] === ',') rest++;
  }
  const sep = text[rest] === '}' ? '' : ',';
  return `${head}"resourceVersion":${JSON.stringify(rv)}${sep}${text.slice(rest)}`;
}

/**
 * An object as JSON text laid out for stampText: apiVersion, kind and
 * metadata first (Kubernetes' own order), then the rest as they are.
 */
export function encodeObject(obj: object): string {
  const k = Object.keys(obj);
  if (k[0] === 'apiVersion' && k[1] === 'kind' && k[2] === 'metadata') return JSON.stringify(obj);
  const { apiVersion, kind, metadata, ...rest } = obj as Record<string, unknown>;
  return JSON.stringify({ apiVersion, kind, metadata, ...rest });
}

/** Position of the first event after `index` in an index-ordered array (from `head`). */
/** First position in sorted `keys` (from `from`) whose key is not below `k`. */
function lowerBound(keys: string[], k: string, from = 0): number {
  let lo = from;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keys[mid] < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function firstAfter(events: StoreEvent[], head: number, index: number): number {
  let lo = head;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events[mid].index <= index) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Whether an update leaves the object as stored: equal ignoring
 * resourceVersion and the timestamps of managedFields entries (Kubernetes
 * resets those when nothing else changed), and ignoring key order.
 */
function sameObject(next: { metadata?: Meta }, cur: { metadata?: Meta }): boolean {
  const norm = (o: { metadata?: Meta }) => {
    const meta = { ...(o.metadata ?? {}) } as Meta & { managedFields?: { time?: string }[] };
    delete meta.resourceVersion;
    if (Array.isArray(meta.managedFields)) meta.managedFields = meta.managedFields.map(({ time: _t, ...rest }) => rest);
    return { ...o, metadata: meta };
  };
  return deepEqual(norm(next), norm(cur));
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function addSeconds(rfc3339: string, s: number): string {
  const t = Date.parse(rfc3339);
  return new Date((Number.isFinite(t) ? t : 0) + s * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export { SEP };
