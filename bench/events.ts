// `npm run bench -- events`: the event stream. Commit-to-consumer lag at
// 1,000 writes/s, the publisher's throughput (draining a backlog built while
// NATS was down), and how fast a consumer replays 100,000 stored events into
// a cache (the informer's catch-up path).
import { connect } from 'nats';
import { Pool, request } from 'undici';
import { EventReader } from '../agents/informer/stream.ts';
import { STREAM, decodeEvent, filterSubject } from '../api/events.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { percentile } from './load.ts';
import { type Section, fmt } from './report.ts';

const LAG_WRITES = Number(process.env.BENCH_LAG_WRITES ?? 10_000);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 20_000);
const REPLAY = Number(process.env.BENCH_REPLAY_EVENTS ?? 100_000);

const cm = (ns: string, name: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data: { v: name } });

async function createMany(c: FlotillaCluster, ns: string, n: number, prefix: string): Promise<void> {
  const pools = c.urls.map((u) => new Pool(u, { connections: 32 }));
  let next = 0;
  await Promise.all(Array.from({ length: 96 }, async (_, w) => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      for (let attempt = 0; ; attempt++) {
        const r = await pools[w % pools.length].request({ path: `/api/v1/namespaces/${ns}/configmaps`, method: 'POST', body: cm(ns, `${prefix}-${i}`), headers: { 'content-type': 'application/json' }, headersTimeout: 60_000 });
        await r.body.dump();
        if (r.statusCode === 201 || r.statusCode === 409) break;
        if (attempt > 5) throw new Error(`create ${prefix}-${i}: ${r.statusCode}`);
      }
    }
  }));
  await Promise.all(pools.map((p) => p.close()));
}

async function namespace(url: string, name: string): Promise<void> {
  const r = await request(`${url}/api/v1/namespaces`, { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }), headers: { 'content-type': 'application/json' } });
  await r.body.dump();
}

async function publisherLag(c: FlotillaCluster): Promise<number> {
  for (const m of c.members) {
    const s = (await (await request(`${m.url}/cluster/status`)).body.json()) as { role: string; events?: { lagEvents: number } };
    if (s.role === 'leader') return s.events?.lagEvents ?? -1;
  }
  return -1;
}

export async function benchEvents(): Promise<Section> {
  const nats = await NatsServers.start(1);
  const c = await FlotillaCluster.start(3, { args: ['--nats', nats.url] });
  const nc = await connect({ servers: nats.urls });
  const lines: string[] = [];
  try {
    const u = c.urls[0];
    for (const ns of ['lag', 'backlog', 'bulk']) await namespace(u, ns);

    // 1. Commit-to-consumer lag at 1,000 writes/s.
    const sent = new Map<string, number>();
    const acked = new Map<string, number>();
    const fromSend: number[] = [];
    const fromAck: number[] = [];
    let received = 0;
    const reader = new EventReader({
      nc, filterSubject: filterSubject('', 'configmaps', 'lag'), start: { time: new Date() },
      onMessage: (m) => {
        const now = performance.now();
        const e = decodeEvent(m.data);
        const t0 = sent.get(e.name);
        if (t0 !== undefined) fromSend.push(now - t0);
        const ta = acked.get(e.name);
        if (ta !== undefined) fromAck.push(Math.max(0, now - ta));
        received++;
      },
    });
    const running = reader.run();
    await new Promise((r) => setTimeout(r, 500));
    const pools = c.urls.map((x) => new Pool(x, { connections: 16 }));
    const t0 = performance.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < LAG_WRITES; i++) {
      const wait = t0 + i - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const name = `lag-${i}`;
      sent.set(name, performance.now());
      inflight.push(pools[i % pools.length].request({ path: '/api/v1/namespaces/lag/configmaps', method: 'POST', body: cm('lag', name), headers: { 'content-type': 'application/json' } })
        .then(async (r) => {
          await r.body.dump();
          acked.set(name, performance.now());
        }));
    }
    await Promise.all(inflight);
    const rate = LAG_WRITES / ((performance.now() - t0) / 1000);
    const deadline = performance.now() + 30_000;
    while (received < LAG_WRITES && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    reader.stop();
    await running.catch(() => {});
    await Promise.all(pools.map((p) => p.close()));
    fromSend.sort((a, b) => a - b);
    fromAck.sort((a, b) => a - b);
    console.log(`lag at ${fmt(rate)} writes/s: write→consumer p50 ${percentile(fromSend, 50).toFixed(1)} ms p99 ${percentile(fromSend, 99).toFixed(1)} ms; ack→consumer p50 ${percentile(fromAck, 50).toFixed(1)} p99 ${percentile(fromAck, 99).toFixed(1)}; ${received}/${LAG_WRITES} received`);

    // 2. Publisher throughput: NATS down while BACKLOG writes commit, then time the drain.
    await nats.kill('n1');
    await createMany(c, 'backlog', BACKLOG, 'b');
    const lagBefore = await publisherLag(c);
    nats.startMember('n1');
    await nats.waitUp();
    const d0 = performance.now();
    while ((await publisherLag(c)) !== 0 && performance.now() - d0 < 120_000) await new Promise((r) => setTimeout(r, 20));
    const drainS = (performance.now() - d0) / 1000;
    console.log(`publisher drained a backlog of ${lagBefore} events in ${drainS.toFixed(2)} s (${fmt(lagBefore / drainS)} events/s, including NATS reconnect)`);

    // 3. Replay: a consumer reads every stored event from the start into a cache.
    const have = (await (await nc.jetstreamManager()).streams.info(STREAM)).state.messages;
    if (have < REPLAY) await createMany(c, 'bulk', REPLAY - have, 'x');
    while ((await publisherLag(c)) !== 0) await new Promise((r) => setTimeout(r, 50));
    const total = (await (await nc.jetstreamManager()).streams.info(STREAM)).state.messages;
    const cache = new Map<string, string>();
    let n = 0;
    let caughtUp!: () => void;
    const done = new Promise<void>((r) => (caughtUp = r));
    const r0 = performance.now();
    const replay = new EventReader({
      nc, filterSubject: 'events.>', start: { all: true }, batch: 1024,
      onMessage: (m) => {
        const e = decodeEvent(m.data);
        if (e.type === 'DELETED') cache.delete(`${e.resource}/${e.namespace}/${e.name}`);
        else cache.set(`${e.resource}/${e.namespace}/${e.name}`, e.object);
        if (++n >= total) caughtUp();
      },
    });
    const replaying = replay.run();
    await done;
    const replayS = (performance.now() - r0) / 1000;
    replay.stop();
    await replaying.catch(() => {});
    console.log(`replayed ${fmt(n)} events into a cache of ${fmt(cache.size)} objects in ${replayS.toFixed(2)} s: ${fmt(n / replayS)} events/s`);

    lines.push(
      'One nats-server -js, three `flotilla server` processes; events decoded from protobuf by the consumer. Latency in ms.',
      '',
      '| measurement | result | goal |',
      '|---|---|---|',
      `| commit-to-consumer lag at ${fmt(rate)} writes/s (write issued → event at a JetStream consumer) | p50 ${percentile(fromSend, 50).toFixed(1)}, p99 ${percentile(fromSend, 99).toFixed(1)} | p99 ≤ 20 |`,
      `| same, from the API's acknowledgement | p50 ${percentile(fromAck, 50).toFixed(1)}, p99 ${percentile(fromAck, 99).toFixed(1)} | |`,
      `| publisher throughput: backlog of ${fmt(lagBefore)} events drained after a NATS outage | ${fmt(lagBefore / drainS)} events/s (${drainS.toFixed(2)} s incl. reconnect) | |`,
      `| replay of ${fmt(n)} stored events into a cache (EventReader, the informer's path) | ${fmt(n / replayS)} events/s | ≥ 100,000/s |`,
    );
  } finally {
    await nc.close();
    await c.stop();
    await nats.stop();
  }
  return { name: 'events', title: 'Event stream: lag, publisher throughput, replay', body: lines.join('\n') };
}
