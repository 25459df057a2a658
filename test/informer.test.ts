// The informer against a real nats-server and three real servers: its cache
// converges to what a fresh LIST says through bursts of concurrent writes,
// for every flavour (all namespaces, one namespace, a label selector, started
// mid-burst), through a stop and restart mid-stream, through a NATS restart
// (the consumer is lost), and past undecodable messages on its subject.
import { headers } from 'nats';
import t, { type Test } from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { type ConfigMap, Informer, type InformerOptions, connectNats, keyOf, silentLogger } from '../agents/informer/index.ts';
import { encodeEvent } from '../api/events.ts';
import { kindByName } from '../api/kinds/index.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { sleep, waitFor } from '../harness/procs.ts';

const CM = kindByName('configmaps')!;
const NAMESPACES = ['default', 'team-b'];

type Snapshot = Map<string, string>;

function cacheSnapshot(inf: Informer<ConfigMap>): Snapshot {
  return new Map(inf.list().map((o) => [keyOf(o), o.metadata.resourceVersion ?? '']));
}

async function listSnapshot(c: ApiClient, namespace?: string, labelSelector?: string): Promise<Snapshot> {
  const l = await c.list<ConfigMap>(resourcePath(CM, namespace), { labelSelector, limit: 50 });
  return new Map(l.items.map((o) => [keyOf(o), o.metadata.resourceVersion ?? '']));
}

const sorted = (m: Snapshot) => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** Waits until the informer's cache equals a fresh LIST (same keys, same resourceVersions), then asserts it. */
async function assertConverges(t: Test, c: ApiClient, inf: Informer<ConfigMap>, what: string, namespace?: string, labelSelector?: string): Promise<void> {
  let want: Snapshot = new Map();
  try {
    await waitFor(`${what} to converge`, async () => {
      want = await listSnapshot(c, namespace, labelSelector);
      return JSON.stringify(sorted(want)) === JSON.stringify(sorted(cacheSnapshot(inf)));
    }, 15_000, 100);
  } catch {
    /* reported by the assertion below */
  }
  t.same(sorted(cacheSnapshot(inf)), sorted(want), `${what}: cache equals a fresh LIST (${want.size} objects)`);
}

/** Mirrors the handler calls into a map, checking they make sense (update/delete of known keys). */
function mirror(inf: Informer<ConfigMap>): { map: Map<string, string>; problems: string[] } {
  const map = new Map<string, string>();
  const problems: string[] = [];
  inf.addEventHandler({
    onAdd(o) {
      if (map.has(keyOf(o))) problems.push(`add of a known ${keyOf(o)}`);
      map.set(keyOf(o), o.metadata.resourceVersion!);
    },
    onUpdate(old, o) {
      if (!map.has(keyOf(old))) problems.push(`update of an unknown ${keyOf(old)}`);
      if (Number(o.metadata.resourceVersion) < Number(old.metadata.resourceVersion)) problems.push(`update of ${keyOf(o)} went back in time`);
      map.set(keyOf(o), o.metadata.resourceVersion!);
    },
    onDelete(o) {
      if (!map.delete(keyOf(o))) problems.push(`delete of an unknown ${keyOf(o)}`);
    },
  });
  return { map, problems };
}

const ignore = (reasons: string[]) => (e: unknown) => {
  if (e instanceof ApiClientError && reasons.includes(e.reason)) return undefined;
  throw e;
};

/** Random creates, label/data updates and deletes over a pool of names, `workers` at a time. */
async function burst(c: ApiClient, ops: number, workers = 8, pool = 40): Promise<void> {
  let left = ops;
  const worker = async () => {
    while (left-- > 0) {
      const ns = NAMESPACES[Math.floor(Math.random() * NAMESPACES.length)];
      const name = `cm-${Math.floor(Math.random() * pool)}`;
      const path = resourcePath(CM, ns);
      const color = Math.random() < 0.5 ? 'red' : 'blue';
      const r = Math.random();
      if (r < 0.45) {
        await c.create(path, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels: { color } }, data: { v: String(r) } }).catch(ignore(['AlreadyExists']));
      } else if (r < 0.8) {
        await c.patch(`${path}/${name}`, { metadata: { labels: { color } }, data: { v: String(r) } }, 'application/merge-patch+json').catch(ignore(['NotFound']));
      } else {
        await c.delete(`${path}/${name}`).catch(ignore(['NotFound']));
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
}

t.test('informer against 3 servers and nats-server', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  // A short duplicate window lets the garbage test below put foreign messages
  // on the stream without breaking the publisher's chain (see that test).
  const cluster = await FlotillaCluster.start(3, { args: ['--nats', nats.url, '--events-duplicate-window', '300ms'] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  await c.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-b' } });
  const nc = await connectNats(nats.url, 'informer-test');
  t.teardown(() => nc.close());
  const informers: Informer<ConfigMap>[] = [];
  t.teardown(() => Promise.all(informers.map((i) => i.stop())));
  const make = (o: Partial<InformerOptions> = {}) => {
    const inf = new Informer<ConfigMap>({ client: c, nats: nc, kind: CM, logger: silentLogger, pageSize: 7, ...o });
    informers.push(inf);
    return inf;
  };

  await t.test('caches equal fresh LISTs after a burst of concurrent creates, updates and deletes', async (t) => {
    const all = make();
    const inNs = make({ namespace: 'team-b' });
    const red = make({ labelSelector: 'color=red' });
    const seen = mirror(all);
    const seenRed = mirror(red);
    await Promise.all([all.start(), inNs.start(), red.start()]);
    t.ok(all.hasSynced());
    const first = burst(c, 400);
    await sleep(300);
    // One more informer LISTs while the writes go on (pages of 7 at one revision).
    const late = make();
    await late.start();
    await first;
    await assertConverges(t, c, all, 'all namespaces');
    await assertConverges(t, c, late, 'started mid-burst');
    await assertConverges(t, c, inNs, 'namespace team-b', 'team-b');
    await assertConverges(t, c, red, 'labelSelector color=red', undefined, 'color=red');
    t.same(seen.problems, [], 'handler calls are consistent');
    t.same(sorted(seen.map), sorted(cacheSnapshot(all)), 'handlers saw exactly what the cache holds');
    t.same(sorted(seenRed.map), sorted(cacheSnapshot(red)), 'objects leaving the selection were delivered as deletes');
    t.ok(inNs.list().every((o) => o.metadata.namespace === 'team-b'));
    t.ok(red.list().every((o) => o.metadata.labels?.color === 'red'));
    for (const inf of [all, late, inNs, red]) {
      t.equal(inf.stats.relists, 0, `${inf.name}: no re-list`);
      t.equal(inf.stats.badMessages, 0);
    }
    t.ok(all.stats.events > 100, `events applied (${all.stats.events})`);
    // Indexes follow the cache.
    const byLabel = all.byLabel('color', 'blue').map(keyOf).sort();
    t.same(byLabel, all.list().filter((o) => o.metadata.labels?.color === 'blue').map(keyOf).sort(), 'label index');
    t.same(all.byNamespace('team-b').map(keyOf).sort(), inNs.keys().sort(), 'namespace index');
    all.addIndexer('by-v-prefix', (o) => o.data?.v?.slice(0, 3));
    const some = all.list()[0];
    t.ok(all.byIndex('by-v-prefix', some.data!.v!.slice(0, 3)).some((o) => keyOf(o) === keyOf(some)), 'custom index over existing objects');
    // A write the caller just made is visible once waitForResourceVersion resolves.
    const made = await c.create<ConfigMap>(resourcePath(CM, 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'read-your-write' } });
    await all.waitForResourceVersion(made.metadata.resourceVersion!, 10_000);
    t.equal(all.get('default', 'read-your-write')?.metadata.uid, made.metadata.uid);
    t.equal(all.lastSyncResourceVersion >= made.metadata.resourceVersion!, true);
  });

  await t.test('an informer stopped and restarted mid-stream resumes and ends equal to a fresh LIST', async (t) => {
    const inf = make();
    const seen = mirror(inf);
    await inf.start();
    const writes = burst(c, 400, 6);
    await sleep(400);
    await inf.stop();
    const at = inf.stats.lastIndex;
    await sleep(600); // writes go on while it is stopped
    await inf.start();
    await writes;
    await assertConverges(t, c, inf, 'restarted informer');
    t.equal(inf.stats.lists, 1, 'resumed from the stream without a second LIST');
    t.equal(inf.stats.relists, 0);
    t.ok(inf.stats.lastIndex > at, 'it applied events written while it was stopped');
    t.same(seen.problems, []);
    t.same(sorted(seen.map), sorted(cacheSnapshot(inf)));
  });

  await t.test('resync re-delivers every object as an update', async (t) => {
    const inf = make({ resyncMs: 150 });
    await inf.start();
    let same = 0;
    inf.onUpdate((a, b) => {
      if (a === b) same++;
    });
    await waitFor('two resyncs', () => inf.stats.resyncs >= 2, 5000);
    t.ok(same >= inf.size, `onUpdate(obj, obj) for the cached objects (${same} calls, ${inf.size} objects)`);
  });

  await t.test('a garbage message on the kind\'s subject is counted, logged and skipped', async (t) => {
    const warnings: string[] = [];
    const inf = make({ logger: { ...silentLogger, warn: (o: object, m?: string) => warnings.push(`${m} ${JSON.stringify(o)}`) } });
    await inf.start();
    const before = await c.create<ConfigMap>(resourcePath(CM, 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'before-garbage' } });
    await inf.waitForResourceVersion(before.metadata.resourceVersion!);
    const js = nc.jetstream();
    // Foreign messages on the kind's subject: not protobuf, not an Event, an
    // Event whose object is not JSON, and one claiming a far-future index.
    // The publisher steps over them; the informer counts and skips them.
    const garbage: [Uint8Array, string | undefined][] = [
      [new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02]), undefined],
      [new TextEncoder().encode('{"not":"an event"}'), undefined],
      [encodeEvent({ index: 1, term: 1, type: 'ADDED', group: '', version: 'v1', kind: 'ConfigMap', resource: 'configmaps', namespace: 'default', name: 'x', uid: 'u', object: '{nope', user: 'mallory', verb: 'create', timestamp: '' }), '1'],
      [new TextEncoder().encode('future'), '1000000'],
    ];
    for (const [data, id] of garbage) {
      const h = headers();
      if (id) h.set('Nats-Msg-Id', id);
      await js.publish('events.core.configmaps.default.x', data, { headers: h });
    }
    const after = await c.create<ConfigMap>(resourcePath(CM, 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'after-garbage' } });
    await inf.waitForResourceVersion(after.metadata.resourceVersion!, 10_000);
    // Even the one that decodes as an Event is not one the publisher wrote (no Flotilla-Prev-Index).
    t.equal(inf.stats.badMessages, 4, 'each garbage message counted once');
    t.ok(warnings.filter((w) => w.includes('not a valid event')).length >= 4, 'and logged');
    t.ok(inf.get('default', 'after-garbage'), 'events after the garbage are applied');
    t.notOk(inf.get('default', 'x'));
    // A fresh informer finds its start point with the garbage in the stream.
    const fresh = make();
    await fresh.start();
    await assertConverges(t, c, fresh, 'fresh informer past garbage');
    await assertConverges(t, c, inf, 'informer that read the garbage');
    t.equal(inf.stats.relists, 0);
  });

  await t.test('foreign messages claiming large indexes do not move the position: a restart misses nothing', async (t) => {
    const inf = make();
    const seen = mirror(inf);
    await inf.start();
    const js = nc.jetstream();
    const base = Number(inf.lastSyncResourceVersion);
    const forge = (index: number, o: { subject?: string; prev?: string; data?: Uint8Array } = {}) => {
      const h = headers();
      h.set('Nats-Msg-Id', String(index));
      if (o.prev !== undefined) h.set('Flotilla-Prev-Index', o.prev);
      const data = o.data ?? encodeEvent({
        index, term: 1, type: 'ADDED', group: '', version: 'v1', kind: 'ConfigMap', resource: 'configmaps', namespace: 'default',
        name: 'forged', uid: 'u', object: JSON.stringify({ metadata: { name: 'forged', namespace: 'default' } }), user: 'mallory', verb: 'create', timestamp: '',
      });
      return js.publish(o.subject ?? 'events.core.configmaps.default.forged', data, { headers: h });
    };
    const bad0 = inf.stats.badMessages;
    // Each fails one check of a Flotilla event, and each claims an index far past anything written.
    await forge(base + 1_000_000, { data: new TextEncoder().encode('not an event'), prev: String(base) }); // payload
    await forge(base + 1_000_001, { subject: 'events.core.configmaps.default.other', prev: String(base) }); // subject
    await forge(base + 1_000_002); // no Flotilla-Prev-Index
    const { seq } = await forge(base + 1_000_003, { prev: String(base + 2_000_000) }); // a predecessor after itself
    await waitFor('the informer to read past the forged messages', () => inf.stats.streamSeq >= seq, 15_000);
    t.equal(inf.stats.badMessages, bad0 + 4, 'each forged message is counted as bad');
    await inf.stop();
    t.ok(inf.stats.lastIndex < base + 1_000_000, 'the cache did not take a forged index');
    // Writes while it is stopped: a resume from a forged index would skip them.
    const path = resourcePath(CM, 'default');
    const made: ConfigMap[] = [];
    for (let i = 0; i < 5; i++) made.push(await c.create<ConfigMap>(path, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `while-stopped-${i}` }, data: { v: '1' } }));
    await c.patch(`${path}/while-stopped-0`, { data: { v: '2' } }, 'application/merge-patch+json');
    await c.delete(`${path}/while-stopped-1`);
    await inf.start();
    const last = await c.create<ConfigMap>(path, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'after-restart' } });
    await inf.waitForResourceVersion(last.metadata.resourceVersion!, 15_000);
    for (const m of made.slice(2)) t.equal(inf.get('default', m.metadata.name)?.metadata.uid, m.metadata.uid, `${m.metadata.name}, written while stopped, is cached`);
    t.equal(inf.get('default', 'while-stopped-0')?.data?.v, '2', 'an update made while stopped is applied');
    t.notOk(inf.get('default', 'while-stopped-1'), 'a delete made while stopped is applied');
    t.notOk(inf.get('default', 'forged'), 'nothing forged is cached');
    t.same(sorted(cacheSnapshot(inf)), sorted(await listSnapshot(c)), 'the cache equals a fresh LIST');
    t.equal(inf.stats.lists, 1, 'resumed from the stream, without a re-list');
    t.same(seen.problems, []);
  });

  await t.test('a deleted consumer is recreated after the last event read, without loss', async (t) => {
    const inf = make();
    const seen = mirror(inf);
    await inf.start();
    const writes = burst(c, 200, 4);
    const jsm = await nc.jetstreamManager();
    for (let i = 0; i < 3; i++) {
      await sleep(150);
      for await (const ci of jsm.consumers.list('EVENTS')) {
        if (ci.name.startsWith('flotilla-informer-configmaps')) await jsm.consumers.delete('EVENTS', ci.name).catch(() => {});
      }
    }
    await writes;
    await assertConverges(t, c, inf, 'after consumer deletions');
    t.ok(inf.stats.consumerResets >= 1, `consumer resets (${inf.stats.consumerResets})`);
    t.equal(inf.stats.relists, 0, 'nothing was lost from the stream: no re-list');
    t.same(seen.problems, []);
    t.same(sorted(seen.map), sorted(cacheSnapshot(inf)));
  });

  await t.test('a NATS restart (memory consumer lost, client reconnects) resets the consumer without loss', async (t) => {
    const inf = make();
    const seen = mirror(inf);
    await inf.start();
    const writes = burst(c, 200, 4);
    await sleep(200);
    await nats.kill('n1', 'SIGTERM');
    await sleep(300);
    nats.startMember('n1');
    await nats.waitUp();
    await writes;
    await burst(c, 20, 2);
    await assertConverges(t, c, inf, 'after a NATS restart');
    t.ok(inf.stats.consumerResets >= 1, `consumer reset (${inf.stats.consumerResets})`);
    t.equal(inf.stats.relists, 0, 'the stream kept its messages: no re-list needed');
    t.same(seen.problems, []);
    t.same(sorted(seen.map), sorted(cacheSnapshot(inf)));
  });
});
