// Exactly-once, in-order publishing of every committed write to JetStream,
// through leader kills, a nats-server restart, and a NATS cluster losing a
// server. The stream must hold exactly one message per committed write, in
// index order, each decoding to the object the API returned.
import { type NatsConnection, connect, headers } from 'nats';
import t from 'tap';

const tap = t;
import { request } from 'undici';
import { STREAM, decodeEvent, encodeEvent, subjectFor } from '../api/events.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { sleep, waitFor } from '../harness/procs.ts';

const WRITES = Number(process.env.EVENTS_TEST_WRITES ?? 1000);

interface Acked {
  index: number;
  json: string;
}

/** Creates and updates ConfigMaps through random live servers until `n` attempts are made. */
async function writeLoad(c: FlotillaCluster, n: number, during: (done: number) => Promise<void>): Promise<Acked[]> {
  const acked: Acked[] = [];
  let attempts = 0;
  let faults = Promise.resolve();
  let nextFault = 0;
  const marks = [0.25, 0.6];
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    const mine: string[] = [];
    while (attempts < n) {
      const i = attempts++;
      if (nextFault < marks.length && i >= marks[nextFault] * n) {
        nextFault++;
        faults = faults.then(() => during(i));
      }
      const live = c.alive();
      const m = live[(w + i) % live.length];
      const update = i % 3 === 2 && mine.length > 0;
      const name = update ? mine[mine.length - 1] : `e-${w}-${i}`;
      try {
        const r = await request(update ? `${m.url}/api/v1/namespaces/default/configmaps/${name}` : `${m.url}/api/v1/namespaces/default/configmaps`, {
          method: update ? 'PATCH' : 'POST',
          body: JSON.stringify(update ? { data: { v: String(i) } } : { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v: String(i) } }),
          headers: { 'content-type': update ? 'application/merge-patch+json' : 'application/json' },
          headersTimeout: 12_000, bodyTimeout: 12_000,
        });
        const text = await r.body.text();
        if (r.statusCode === 200 || r.statusCode === 201) {
          acked.push({ index: Number(JSON.parse(text).metadata.resourceVersion), json: text });
          if (!update) mine.push(name);
        } else if (r.statusCode === 409 && !update) {
          mine.push(name); // created by an earlier attempt whose answer was lost
        }
      } catch {
        await sleep(20);
      }
    }
  }));
  await faults;
  return acked;
}

/** Every message of the stream but `skip` (sequences), in stream order: (index, decoded event). */
async function readStream(nc: NatsConnection, skip: number[] = []): Promise<{ index: number; object: string; type: string }[]> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(STREAM);
  const out: { index: number; object: string; type: string }[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    if (skip.includes(seq)) continue;
    const m = await jsm.streams.getMessage(STREAM, { seq });
    const e = decodeEvent(m.data);
    if (Number(m.header.get('Nats-Msg-Id')) !== e.index) throw new Error(`seq ${seq}: Nats-Msg-Id ${m.header.get('Nats-Msg-Id')} != index ${e.index}`);
    out.push({ index: e.index, object: e.object, type: e.type });
  }
  return out;
}

/** The authoritative list of committed writes: a surviving server's watch history for every written kind. */
async function committedWrites(url: string): Promise<number[]> {
  const all: number[] = [];
  for (const path of ['/api/v1/namespaces/default/configmaps', '/api/v1/namespaces', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases', '/apis/scheduling.k8s.io/v1/priorityclasses']) {
    const r = await request(`${url}${path}?watch=1&resourceVersion=1&timeoutSeconds=1`, { bodyTimeout: 20_000 });
    const text = await r.body.text();
    for (const line of text.split('\n').filter(Boolean)) {
      const e = JSON.parse(line);
      if (e.type === 'ERROR') throw new Error(`watch history incomplete: ${JSON.stringify(e.object)}`);
      all.push(Number(e.object.metadata.resourceVersion));
    }
  }
  return all.sort((a, b) => a - b);
}

async function checkStream(t: Pick<typeof tap, 'ok' | 'same' | 'equal'>, c: FlotillaCluster, nats: NatsServers, acked: Acked[], neverRestarted: string): Promise<void> {
  const nc = await connect({ servers: nats.urls });
  try {
    // Let the publisher drain its backlog.
    await waitFor('publisher caught up', async () => {
      const r = await request(`${c.member(await c.leader()).url}/cluster/status`);
      const s = (await r.body.json()) as { events?: { lagEvents: number; lastPublishedIndex: number }; revision: number };
      return s.events && s.events.lagEvents === 0 && s.events.lastPublishedIndex >= s.revision - 0;
    }, 60_000, 200);
    const stream = await waitFor('the whole stream read', () => readStream(nc), 60_000, 500);
    const indexes = stream.map((m) => m.index);
    let ordered = true;
    for (let i = 1; i < indexes.length; i++) if (indexes[i] <= indexes[i - 1]) ordered = false;
    t.ok(ordered, `stream of ${indexes.length} messages is in strictly increasing index order (no duplicate, no reordering)`);
    const committed = await committedWrites(c.member(neverRestarted).url);
    const missing = committed.filter((i) => !indexes.includes(i));
    const extra = indexes.filter((i) => !committed.includes(i));
    t.same(missing, [], 'no committed write is missing from the stream (no gap)');
    t.same(extra, [], 'nothing on the stream that was not committed');
    const byIndex = new Map(stream.map((m) => [m.index, m]));
    let mismatched = 0;
    for (const a of acked) if (byIndex.get(a.index)?.object !== a.json) mismatched++;
    t.equal(mismatched, 0, `each of the ${acked.length} acknowledged writes is on the stream with the object the API returned`);
  } finally {
    await nc.close();
  }
}

t.test('leader killed twice during 1,000 writes', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const c = await FlotillaCluster.start(3, { args: ['--nats', nats.url] });
  t.teardown(() => c.stop());
  const killed: string[] = [];
  const acked = await writeLoad(c, WRITES, async () => {
    const leader = await c.leader();
    killed.push(leader);
    await c.kill(leader);
    await sleep(1500);
    c.startMember(leader);
    await c.waitReady([leader]);
  });
  t.equal(killed.length, 2, `leaders killed: ${killed.join(', ')}`);
  t.ok(acked.length > WRITES * 0.8, `${acked.length} of ${WRITES} writes acknowledged`);
  const survivor = c.members.find((m) => !killed.includes(m.id))!.id;
  await checkStream(t, c, nats, acked, survivor);
});

/** Creates ConfigMaps one at a time through live servers; returns their resourceVersions. */
async function createSome(c: FlotillaCluster, prefix: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const text = await waitFor(`create ${prefix}-${i}`, async () => {
      const m = c.alive()[i % c.alive().length];
      const r = await request(`${m.url}/api/v1/namespaces/default/configmaps`, {
        method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${prefix}-${i}` }, data: { v: String(i) } }),
        headers: { 'content-type': 'application/json' }, headersTimeout: 10_000, bodyTimeout: 10_000,
      });
      const body = await r.body.text();
      if (r.statusCode === 201 || r.statusCode === 200) return body;
      if (r.statusCode === 409) throw new Error(`${prefix}-${i} exists (an earlier attempt went through): use another name`);
      return undefined;
    }, 30_000, 200);
    out.push(Number(JSON.parse(text).metadata.resourceVersion));
  }
  return out;
}

// The other cases run two at a time, each on its own nats-server(s) and flotilla cluster: much of
// their time is spent waiting (processes starting, the NATS outages, the publisher catching up).
// Not the leader kills above: an election under that load takes longer and fails more writes.
t.test('NATS outages and the publisher\'s resume position', { jobs: Number(process.env.EVENTS_TEST_JOBS ?? 2) }, async (t) => {
  t.test('nats-server killed and restarted during the writes', async (t) => {
    const nats = await NatsServers.start(1);
    t.teardown(() => nats.stop());
    const c = await FlotillaCluster.start(3, { args: ['--nats', nats.url] });
    t.teardown(() => c.stop());
    let outages = 0;
    const acked = await writeLoad(c, WRITES, async () => {
      outages++;
      await nats.kill('n1');
      await sleep(2000);
      nats.startMember('n1');
      await nats.waitUp();
    });
    t.equal(outages, 2);
    t.ok(acked.length > WRITES * 0.95, `writes kept committing while NATS was down (${acked.length} acknowledged)`);
    await checkStream(t, c, nats, acked, 's1');
  });

  t.test('a 3-server NATS cluster (R3 stream) loses a server during the writes', async (t) => {
    const nats = await NatsServers.start(3);
    t.teardown(() => nats.stop());
    const c = await FlotillaCluster.start(3, { args: ['--nats', nats.url] });
    t.teardown(() => c.stop());
    let step = 0;
    const acked = await writeLoad(c, WRITES, async () => {
      if (step++ === 0) await nats.kill('n2');
      else {
        nats.startMember('n2');
        await nats.waitUp(['n2']);
      }
    });
    t.ok(acked.length > WRITES * 0.95, `${acked.length} acknowledged`);
    const nc = await connect({ servers: nats.urls });
    // A restarted server rejoining can make the JetStream API time out while
    // the NATS cluster re-elects its meta leader: ask until it answers.
    const info = await waitFor('stream info from the NATS cluster', async () => (await nc.jetstreamManager()).streams.info(STREAM), 60_000, 500);
    t.equal(info.config.num_replicas, 3, 'the stream has 3 replicas');
    await nc.close();
    await checkStream(t, c, nats, acked, 's1');
  });

  t.test('a forged event at the end of the stream does not become the publisher\'s resume position', async (t) => {
    const nats = await NatsServers.start(1);
    t.teardown(() => nats.stop());
    // A short duplicate window: the forged Nats-Msg-Id below would otherwise
    // hold back the real event with that index for the whole window.
    const c = await FlotillaCluster.start(3, { args: ['--nats', nats.url, '--events-duplicate-window', '300ms'] });
    t.teardown(() => c.stop());
    const published = await createSome(c, 'pub', 10);
    const lastPublished = published[published.length - 1];
    // Every member's replicated watermark has reached the last event: the stream holds all of them.
    await waitFor('the watermark on every member', async () => {
      for (const m of c.alive()) {
        const s = await c.status(m.id) as { events?: { lastPublishedIndex: number } } | undefined;
        if (!s?.events || s.events.lastPublishedIndex < lastPublished) return false;
      }
      return true;
    }, 30_000, 200);
    // Writes commit while NATS is down: they wait in the outbox.
    await nats.kill('n1');
    const pending = await createSome(c, 'unpublished', 10);
    await c.stop();
    // Someone publishes an event-looking message claiming the last of those
    // indexes: it decodes, its index is its Nats-Msg-Id, and it follows the last
    // real event. Resuming after it would skip the 9 writes before it.
    nats.startMember('n1');
    await nats.waitUp();
    const nc = await connect({ servers: nats.urls });
    t.teardown(() => nc.close());
    const forgedIndex = pending[pending.length - 1];
    const h = headers();
    h.set('Nats-Msg-Id', String(forgedIndex));
    h.set('Flotilla-Prev-Index', String(lastPublished));
    const forged = await waitFor('the forged message stored', () => nc.jetstream().publish(subjectFor('', 'configmaps', 'default', 'forged'), encodeEvent({
      index: forgedIndex, term: 1, type: 'ADDED', group: '', version: 'v1', kind: 'ConfigMap', resource: 'configmaps', namespace: 'default',
      name: 'forged', uid: 'not-a-uid', object: '{"metadata":{"name":"forged","namespace":"default"}}', user: 'mallory', verb: 'create', timestamp: '',
    }), { headers: h }), 30_000, 500);
    t.notOk(forged.duplicate, 'the forged message is on the stream');
    // The servers restart (a new leader resynchronises with the stream), and write on.
    for (const m of c.members) c.startMember(m.id);
    await c.waitReady();
    const after = await createSome(c, 'after', 5);
    const acked = [...published, ...pending, ...after];
    await waitFor('publisher caught up', async () => {
      const s = await c.status(await c.leader()) as { events?: { lagEvents: number; lastPublishedIndex: number } } | undefined;
      return s?.events && s.events.lagEvents === 0 && s.events.lastPublishedIndex >= after[after.length - 1];
    }, 60_000, 200);
    const stream = (await readStream(nc, [forged.seq])).map((m) => m.index);
    let ordered = true;
    for (let i = 1; i < stream.length; i++) if (stream[i] <= stream[i - 1]) ordered = false;
    t.ok(ordered, `the ${stream.length} events besides the forged one are in strictly increasing index order (no duplicate)`);
    t.same(acked.filter((i) => !stream.includes(i)), [], 'every acknowledged write is on the stream, the ones written while NATS was down too');
    t.equal(stream.filter((i) => i === forgedIndex).length, 1, 'the write whose index was forged is on the stream once, published by the server');
  });
});
