// The watch history is bounded by bytes (and capped by count and age): what
// falls out of it answers 410 Expired, for watches and for paged lists.
import t from 'tap';
import { encodeCommand } from '../apiserver/command.ts';
import { ApiError } from '../apiserver/errors.ts';
import { EVENT_OVERHEAD_BYTES, ObjectStore } from '../apiserver/store.ts';
import { parseBytes } from '../raft/peers.ts';

const RES = '/configmaps';
const ts = '2026-01-01T00:00:00Z';

function cm(name: string, v: string): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns', uid: `uid-${name}` }, data: { v } });
}

class Writer {
  index = 0;
  constructor(readonly store: ObjectStore) {}
  create(name: string, v: string): number {
    this.store.apply({ index: ++this.index, term: 1, data: encodeCommand({ op: 'create', res: RES, ns: 'ns', name, user: 'u', verb: 'create', ts, obj: cm(name, v) }) });
    return this.index;
  }
  update(name: string, v: string): number {
    this.store.apply({ index: ++this.index, term: 1, data: encodeCommand({ op: 'update', res: RES, ns: 'ns', name, user: 'u', verb: 'update', ts, obj: cm(name, v), pre: {} }) });
    return this.index;
  }
}

function gone(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (e) {
    return e instanceof ApiError && e.code === 410;
  }
}

t.test('history memory follows the byte budget, not the number of writes', async (t) => {
  const budget = 200 * 1024;
  const store = new ObjectStore({ maxBytes: budget, maxEvents: 1e9, maxAgeMs: 1e12 });
  const w = new Writer(store);
  for (let i = 0; i < 10; i++) w.create(`cm-${i}`, 'x'.repeat(1000));
  let peak = 0;
  for (let i = 0; i < 5000; i++) {
    w.update(`cm-${i % 10}`, `${i}`.padEnd(1000, 'y'));
    peak = Math.max(peak, store.historyStats.bytes);
  }
  const st = store.historyStats;
  t.ok(peak <= budget, `charged bytes stay within the budget (peak ${peak})`);
  // Each update is charged its object and its previous version (~2 KB + overhead).
  const per = 2 * 1000 + 2 * 110 + EVENT_OVERHEAD_BYTES;
  t.ok(st.events > budget / per / 2 && st.events <= budget / 2000, `keeps about budget/event-size events (${st.events})`);
  t.equal(store.oldestWatchableRevision, w.index - st.events, 'the floor is the last evicted event');
});

t.test('a watch or paged list from before the byte-bounded history gets 410; from within it, the changes', async (t) => {
  const store = new ObjectStore({ maxBytes: 50 * 1024 });
  const w = new Writer(store);
  const created = w.create('a', 'v0');
  w.create('b', 'v0');
  const early = w.index;
  for (let i = 1; i <= 200; i++) w.update(i % 2 ? 'a' : 'b', `${i}`.padEnd(500, 'z'));
  const floor = store.oldestWatchableRevision;
  t.ok(floor > early, `history no longer reaches revision ${early} (floor ${floor})`);
  t.ok(gone(() => store.eventsSince(created)), 'watch from the first create: 410');
  t.ok(gone(() => store.listAt(RES, 'ns', early)), 'continue token from before the history: 410');
  t.notOk(gone(() => store.eventsSince(floor)), 'watch from the floor is served');
  const evs = store.eventsSince(floor);
  t.equal(evs[0].index, floor + 1, 'first event right after the floor');
  t.equal(evs[evs.length - 1].index, w.index, 'up to the last write');
  // A paged list at a revision still in the history sees the state then.
  const at = floor + 1;
  const then = store.listAt(RES, 'ns', at).map((x) => JSON.parse(x.obj.json).metadata.resourceVersion as string);
  t.ok(then.every((rv) => Number(rv) <= at), 'list at a kept revision shows objects as they were then');
});

t.test('count and age stay caps', async (t) => {
  const store = new ObjectStore({ maxBytes: 1e12, maxEvents: 10, maxAgeMs: 1e12 });
  const w = new Writer(store);
  w.create('a', 'v');
  for (let i = 0; i < 50; i++) w.update('a', String(i));
  t.equal(store.historyStats.events, 10, 'count cap');
  t.equal(store.oldestWatchableRevision, w.index - 10);
  const aged = new ObjectStore({ maxBytes: 1e12, maxEvents: 1e9, maxAgeMs: 0 });
  const w2 = new Writer(aged);
  w2.create('a', 'v');
  const t0 = performance.now();
  while (performance.now() - t0 < 2) { /* let the monotonic clock move past a whole ms */ }
  w2.update('a', 'w');
  t.ok(aged.historyStats.events <= 1, 'age cap drops events older than maxAgeMs');
  const legacy = new ObjectStore({ minEvents: 7 });
  t.equal(legacy.historyStats.limits.maxEvents, 7, 'the old option name still sets the count');
});

t.test('a restored snapshot resets the history and its byte count', async (t) => {
  const store = new ObjectStore();
  const w = new Writer(store);
  w.create('a', 'x'.repeat(1000));
  w.update('a', 'y'.repeat(1000));
  const snap = store.snapshot();
  const other = new ObjectStore();
  const w2 = new Writer(other);
  w2.create('q', 'x');
  other.restore(snap, w.index);
  t.equal(other.historyStats.bytes, 0);
  t.equal(other.historyStats.events, 0);
  t.equal(other.get(RES, 'ns', 'a')?.rv, w.index);
});

t.test('parseBytes', async (t) => {
  t.equal(parseBytes('64Mi', 'x'), 64 * 1024 * 1024);
  t.equal(parseBytes('1000', 'x'), 1000);
  t.equal(parseBytes('2k', 'x'), 2000);
  t.throws(() => parseBytes('lots', 'x'));
});

t.test('snapshots in batches round-trip, and snapshots of the earlier single-map format still restore', async (t) => {
  const store = new ObjectStore();
  const w = new Writer(store);
  for (let i = 0; i < 300; i++) w.create(`cm-${i}`, `${i}`.padEnd(2000, 'q')); // ~600 KB: several batches
  const parts = store.snapshotParts();
  t.ok(parts.length > 2, `${parts.length} parts`);
  const copy = new ObjectStore();
  copy.restore(Buffer.concat(parts), w.index);
  t.equal(copy.objectCount, 300);
  t.equal(copy.revision, w.index);
  t.equal(copy.get(RES, 'ns', 'cm-299')?.json, store.get(RES, 'ns', 'cm-299')?.json);
  t.equal(copy.get(RES, 'ns', 'cm-7')?.uid, 'uid-cm-7');
  const { pack } = await import('msgpackr');
  const legacy = new ObjectStore();
  const json = store.get(RES, 'ns', 'cm-1')!.json;
  legacy.restore(pack({ revision: 42, rows: [[RES, 'ns/cm-1', json]], publishedIndex: 0, outbox: [] }), 42);
  t.equal(legacy.objectCount, 1);
  t.equal(legacy.get(RES, 'ns', 'cm-1')?.json, json);
  t.equal(legacy.revision, 42);
});
