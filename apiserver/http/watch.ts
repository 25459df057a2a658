// WATCH as client-go expects it: newline-delimited JSON events; no
// resourceVersion (or "0") starts with synthetic ADDED events for the current
// state, resourceVersion=N sends only changes after N (410 Gone inside an
// ERROR event when N is older than the history kept), BOOKMARKs when asked,
// timeoutSeconds honoured. Objects that start or stop matching a selector
// arrive as ADDED or DELETED, as from Kubernetes' watch cache.
import type { ServerResponse } from 'node:http';
import { resourceKey } from '../command.ts';
import { ApiError, errors } from '../errors.ts';
import { SECRETS_RES } from '../encryption.ts';
import type { Registry } from '../registry.ts';
import { matchesFields, matchesLabels } from '../../api/selectors.ts';
import type { KindDef, KubeObject } from '../../api/schema/types.ts';
import type { StoreEvent, StoredObject } from '../store.ts';
import { apiVersionOf } from './admission.ts';
import type { RequestContext } from './handlers.ts';
import type { ResourceRequest } from './info.ts';
import { listOptionsOf } from './list.ts';
import { queryBool } from './query.ts';
import { tableFor, wantsTable } from './table.ts';

/** A watcher that falls this far behind is cut off; it re-lists and watches again. */
const MAX_BUFFERED_BYTES = 32 * 1024 * 1024;

export class WatchHub {
  active = 0;
  bookmarkIntervalMs = 1000;

  constructor(private readonly reg: Registry) {}

  async serve(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    const { query, res } = ctx;
    const opts = listOptionsOf(query);
    if (r.name) {
      opts.fields = [...(opts.fields ?? []), { path: 'metadata.name', op: '=', value: r.name }];
    }
    const kind = r.kind;
    const resKey = resourceKey(kind.group, kind.plural);
    /** Secrets are stored sealed: each object is opened on the way out (encryption.ts). */
    const sealed = resKey === SECRETS_RES;
    const ns = r.namespace;
    const bookmarks = queryBool(query, 'allowWatchBookmarks');
    const timeoutS = query.get('timeoutSeconds') ? Number(query.get('timeoutSeconds')) : 1800;
    const asTable = wantsTable(ctx.req);
    const rvParam = query.get('resourceVersion');
    const sendInitial = queryBool(query, 'sendInitialEvents');

    let fromRv: number;
    let initial: StoredObject[] = [];
    if (rvParam === null || rvParam === '' || rvParam === '0' || sendInitial) {
      const rev = rvParam === '0' ? this.reg.store.revision : await this.reg.sync({ kind: 'linearizable' }, ctx.timeoutMs);
      fromRv = rev;
      initial = this.reg.store.list(resKey, ns || undefined).map((x) => x.obj);
    } else {
      fromRv = Number(rvParam);
      if (!Number.isInteger(fromRv) || fromRv < 0) throw errors.badRequest(`invalid resourceVersion "${rvParam}"`);
    }

    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache' });
    res.flushHeaders?.();
    this.active++;

    let sentColumns = false;
    let lastRv = fromRv;
    let lastBookmark = -1;
    let closed = false;
    // Frames written in one synchronous burst (a Ready applies many entries
    // at once) leave in one socket write: corked at the first, uncorked on the next tick.
    let corked = false;
    const uncork = () => {
      if (!corked) return;
      corked = false;
      res.uncork();
    };
    const send = (frame: Buffer | string) => {
      if (!corked) {
        corked = true;
        res.cork();
        process.nextTick(uncork);
      }
      res.write(frame);
    };
    /** The object as this client sees it: a Secret opened (throws ApiError when it does not open). */
    const shown = (json: string, rv: number) => (sealed ? this.reg.reveal(resKey, { json, rv, uid: '' }).json : json);
    const write = (type: string, json: string, rv: number) => {
      if (closed) return;
      let frame: Buffer | string;
      try {
        if (type === 'ERROR' || type === 'BOOKMARK') {
          frame = `{"type":"${type}","object":${json}}\n`;
        } else if (!asTable) {
          // The same bytes for every watcher of this event (a Secret opened once too).
          frame = eventFrame(type, json, () => shown(json, rv));
        } else {
          const t = tableFor(kind, [JSON.parse(shown(json, rv)) as KubeObject], query, { resourceVersion: String(rv) });
          if (sentColumns) t.columnDefinitions = [];
          sentColumns = true;
          frame = `{"type":"${type}","object":${JSON.stringify(t)}}\n`;
        }
      } catch (e) {
        // A Secret that does not open ends the watch with the error naming it; the server goes on.
        if (!(e instanceof ApiError)) throw e;
        send(`{"type":"ERROR","object":${JSON.stringify(e.toStatus())}}\n`);
        finish();
        return;
      }
      lastRv = Math.max(lastRv, rv);
      send(frame);
      if (res.writableLength > MAX_BUFFERED_BYTES) finish();
    };
    const matches = (json: string | undefined, labels: Record<string, string> | undefined): boolean => {
      if (json === undefined) return false;
      if (opts.labels && !matchesLabels(opts.labels, labels ?? {})) return false;
      if (opts.fields && !matchesFields(opts.fields, parsedOnce(json))) return false;
      return true;
    };
    const onEvent = (e: StoreEvent) => {
      if (e.res !== resKey || (ns && e.ns !== ns) || e.index <= fromRv) return;
      const now = matches(e.json, e.labels);
      if (e.type === 'ADDED') {
        if (now) write('ADDED', e.json, e.index);
      } else if (e.type === 'DELETED') {
        if (matches(e.prev?.json ?? e.json, e.prev?.labels ?? e.labels)) write('DELETED', e.json, e.index);
      } else {
        const before = matches(e.prev?.json, e.prev?.labels);
        if (now && before) write('MODIFIED', e.json, e.index);
        else if (now) write('ADDED', e.json, e.index);
        else if (before) write('DELETED', e.json, e.index);
      }
    };
    const onRestored = () => {
      // The store was replaced by a snapshot: the changes in between were never seen here.
      write('ERROR', JSON.stringify(errors.gone('the watch history was reset by a snapshot; re-list and watch again').toStatus()), lastRv);
      finish();
    };

    let timer: NodeJS.Timeout | undefined;
    let bookmarkTimer: NodeJS.Timeout | undefined;
    const store = this.reg.store;
    const finish = () => {
      if (closed) return;
      closed = true;
      this.active--;
      store.off('event', onEvent);
      store.off('restored', onRestored);
      if (timer) clearTimeout(timer);
      if (bookmarkTimer) clearInterval(bookmarkTimer);
      uncork();
      res.end();
    };
    res.on('close', finish);

    // Catch up and subscribe in one synchronous step, so no event falls in between.
    try {
      if (initial.length || rvParam === null || rvParam === '' || rvParam === '0' || sendInitial) {
        for (const o of initial) if (matches(o.json, o.labels)) write('ADDED', o.json, fromRv);
        if (sendInitial && bookmarks) {
          write('BOOKMARK', bookmarkObject(kind, fromRv, true), fromRv);
        }
      } else {
        for (const e of store.eventsSince(fromRv)) onEvent(e);
      }
    } catch (e) {
      if (e instanceof ApiError && e.code === 410) {
        write('ERROR', JSON.stringify(e.toStatus()), fromRv);
        finish();
        return;
      }
      finish();
      throw e;
    }
    store.on('event', onEvent);
    store.on('restored', onRestored);
    timer = setTimeout(finish, Math.max(0, timeoutS) * 1000);
    if (bookmarks) {
      bookmarkTimer = setInterval(() => {
        // A bookmark whenever the revision moved since the last one: the
        // client may resume from it without replaying what it has seen.
        const rev = store.revision;
        if (rev > lastBookmark && rev >= lastRv) {
          lastBookmark = rev;
          write('BOOKMARK', bookmarkObject(kind, rev, false), rev);
        }
      }, this.bookmarkIntervalMs);
    }
  }
}

/**
 * Field selectors need the parsed object. Each event goes to every watcher
 * in turn, synchronously, so a few recently parsed objects (the event's and
 * its previous version) serve them all: one parse per event, not one per
 * watcher. Selectors only read the object.
 */
const PARSED_SLOTS = 4;
const parsedJson: (string | undefined)[] = new Array(PARSED_SLOTS);
const parsedObj: (KubeObject | undefined)[] = new Array(PARSED_SLOTS);
let parsedNext = 0;

export function parsedOnce(json: string): KubeObject {
  for (let i = 0; i < PARSED_SLOTS; i++) if (parsedJson[i] === json) return parsedObj[i]!;
  const o = JSON.parse(json) as KubeObject;
  parsedJson[parsedNext] = json;
  parsedObj[parsedNext] = o;
  parsedNext = (parsedNext + 1) % PARSED_SLOTS;
  return o;
}

/**
 * A watch event as written (one JSON line), encoded once for all watchers:
 * each event goes to every watcher in turn, synchronously, so the last few
 * frames made (keyed by the event type and the stored object's text) serve
 * them all, and every watcher is handed the same bytes. `text` gives the
 * object as clients see it (a Secret opened), called only on a miss; a throw
 * from it leaves nothing cached.
 */
const FRAME_SLOTS = 4;
const frameType: (string | undefined)[] = new Array(FRAME_SLOTS);
const frameJson: (string | undefined)[] = new Array(FRAME_SLOTS);
const frameBytes: (Buffer | undefined)[] = new Array(FRAME_SLOTS);
let frameNext = 0;

export function eventFrame(type: string, json: string, text: () => string): Buffer {
  for (let i = 0; i < FRAME_SLOTS; i++) if (frameJson[i] === json && frameType[i] === type) return frameBytes[i]!;
  const bytes = Buffer.from(`{"type":"${type}","object":${text()}}\n`);
  frameType[frameNext] = type;
  frameJson[frameNext] = json;
  frameBytes[frameNext] = bytes;
  frameNext = (frameNext + 1) % FRAME_SLOTS;
  return bytes;
}

function bookmarkObject(kind: KindDef, rv: number, initialEnd: boolean): string {
  const metadata: Record<string, unknown> = { resourceVersion: String(rv) };
  if (initialEnd) metadata.annotations = { 'k8s.io/initial-events-end': 'true' };
  return JSON.stringify({ kind: kind.kind, apiVersion: apiVersionOf(kind), metadata });
}

export type { ServerResponse };
