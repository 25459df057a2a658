// `npm run bench -- api`: the API server on 3 real `flotilla server`
// processes: mutating throughput and latency through all servers, LIST of
// 10,000 pods, watch delivery lag to 100 watchers, and server RSS with
// 100,000 objects.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { Pool, request } from 'undici';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { type Target, percentile, runLoad, runRate } from './load.ts';
import { type Section, fmt } from './report.ts';
import { EtcdCluster, ensureEtcd } from './etcd.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5) * 1000;
const LIST_PODS = Number(process.env.BENCH_LIST_PODS ?? 10_000);
const RSS_OBJECTS = Number(process.env.BENCH_RSS_OBJECTS ?? 100_000);
const WATCHERS = Number(process.env.BENCH_WATCHERS ?? 100);
const WATCH_WRITES = Number(process.env.BENCH_WATCH_WRITES ?? 10_000);

const pod = (name: string) => JSON.stringify({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'bench' } },
  spec: { containers: [{ name: 'c', image: 'busybox:1.36', command: ['sleep', '3600'] }] },
});
const cm = (name: string, v: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v } });

function createTargets(c: FlotillaCluster, ns: string, body: (name: string) => string, prefix: string, plural = 'configmaps'): Target[] {
  return c.urls.map((origin, s) => ({
    origin,
    async send(pool: Pool, w: number, i: number) {
      const r = await pool.request({ path: `/api/v1/namespaces/${ns}/${plural}`, method: 'POST', body: body(`${prefix}-${s}-${w}-${i}`), headers: { 'content-type': 'application/json' }, headersTimeout: 30_000 });
      await r.body.dump();
      if (r.statusCode !== 201) throw new Error(String(r.statusCode));
    },
  }));
}

function updateTargets(c: FlotillaCluster, ns: string, names: string[]): Target[] {
  return c.urls.map((origin) => ({
    origin,
    async send(pool: Pool, w: number, i: number) {
      const name = names[(w * 7919 + i) % names.length];
      const r = await pool.request({
        path: `/api/v1/namespaces/${ns}/configmaps/${name}`, method: 'PATCH', body: JSON.stringify({ data: { v: String(i) } }),
        headers: { 'content-type': 'application/merge-patch+json' }, headersTimeout: 30_000,
      });
      await r.body.dump();
      if (r.statusCode !== 200) throw new Error(String(r.statusCode));
    },
  }));
}

async function createMany(c: FlotillaCluster, ns: string, n: number, body: (name: string) => string, prefix: string, plural: string): Promise<number> {
  const t0 = performance.now();
  const pools = c.urls.map((u) => new Pool(u, { connections: 32 }));
  let next = 0;
  await Promise.all(Array.from({ length: 96 }, async (_, w) => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const pool = pools[w % pools.length];
      for (let attempt = 0; ; attempt++) {
        const r = await pool.request({ path: `/api/v1/namespaces/${ns}/${plural}`, method: 'POST', body: body(`${prefix}-${i}`), headers: { 'content-type': 'application/json' }, headersTimeout: 60_000 });
        await r.body.dump();
        if (r.statusCode === 201 || r.statusCode === 409) break;
        if (attempt > 5) throw new Error(`create ${prefix}-${i}: ${r.statusCode}`);
      }
    }
  }));
  await Promise.all(pools.map((p) => p.close()));
  return (performance.now() - t0) / 1000;
}

async function ensureNamespace(url: string, name: string): Promise<void> {
  const r = await request(`${url}/api/v1/namespaces`, { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }), headers: { 'content-type': 'application/json' } });
  await r.body.dump();
}

async function timeList(url: string, path: string, runs = 10): Promise<{ p50: number; max: number; bytes: number }> {
  const lat: number[] = [];
  let bytes = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = await request(`${url}${path}`, { headersTimeout: 60_000, bodyTimeout: 60_000 });
    const b = await r.body.arrayBuffer();
    lat.push(performance.now() - t0);
    bytes = b.byteLength;
  }
  lat.sort((a, b) => a - b);
  return { p50: percentile(lat, 50), max: lat[lat.length - 1], bytes };
}

/**
 * The yardstick for LIST: the same objects (the pods' stored JSON, under
 * Kubernetes' keys /registry/pods/<ns>/<name>) in a 3-member etcd, read back
 * with `etcdctl get --prefix` (linearizable, as our LIST), timed from the
 * start of the etcdctl process to the end of its output. Undefined without etcd.
 */
async function etcdctlList(items: string[], ns: string, runs = 10): Promise<{ p50: number; bytes: number } | undefined> {
  const bin = ensureEtcd();
  if (!bin || !existsSync('/usr/bin/etcdctl')) return undefined;
  const e = await EtcdCluster.start(bin);
  try {
    const m = e.members[0];
    let next = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        const name = (JSON.parse(items[i]) as { metadata: { name: string } }).metadata.name;
        await e.put(e.members[i % e.members.length], `/registry/pods/${ns}/${name}`, Buffer.from(items[i]), 30_000);
      }
    }));
    const lat: number[] = [];
    let bytes = 0;
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      bytes = await new Promise<number>((resolve, reject) => {
        const p = spawn('/usr/bin/etcdctl', ['--endpoints', `http://${m.client}`, 'get', '--prefix', `/registry/pods/${ns}/`], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'inherit'] });
        let n = 0;
        p.stdout.on('data', (c: Buffer) => (n += c.length));
        p.on('error', reject);
        p.on('close', (code) => (code === 0 ? resolve(n) : reject(new Error(`etcdctl exited ${code}`))));
      });
      lat.push(performance.now() - t0);
    }
    lat.sort((a, b) => a - b);
    return { p50: percentile(lat, 50), bytes };
  } finally {
    await e.stop();
  }
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Opens `n` watches spread over the servers; each records the arrival time of every event by object name. */
async function watchLag(c: FlotillaCluster, ns: string, n: number, writes: number): Promise<{ p50: number; p99: number; delivered: number; expected: number }> {
  const startRv = await (async () => {
    const r = await request(`${c.urls[0]}/api/v1/namespaces/${ns}/configmaps?limit=1`);
    return ((await r.body.json()) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
  })();
  const sent = new Map<string, number>();
  const lags: number[] = [];
  let delivered = 0;
  const controllers: AbortController[] = [];
  const streams = Array.from({ length: n }, async (_, i) => {
    const ac = new AbortController();
    controllers.push(ac);
    const url = c.urls[i % c.urls.length];
    try {
      const r = await request(`${url}/api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=${startRv}`, { signal: ac.signal, bodyTimeout: 0 });
      let buf = '';
      for await (const chunk of r.body) {
        const now = performance.now();
        buf += chunk.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          // The name is all we need: skip a full JSON parse per line.
          const m = /"name":"(lag-\d+)"/.exec(line);
          const t0 = m ? sent.get(m[1]) : undefined;
          if (t0 !== undefined) {
            lags.push(now - t0);
            delivered++;
          }
        }
      }
    } catch {
      /* aborted */
    }
  });
  await new Promise((r) => setTimeout(r, 500));
  const pools = c.urls.map((u) => new Pool(u, { connections: 16 }));
  const rate = 1000;
  const t0 = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < writes; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const name = `lag-${i}`;
    sent.set(name, performance.now());
    inflight.push(pools[i % pools.length].request({ path: `/api/v1/namespaces/${ns}/configmaps`, method: 'POST', body: cm(name, 'x'), headers: { 'content-type': 'application/json' } }).then((r) => r.body.dump()));
  }
  await Promise.all(inflight);
  const expected = writes * n;
  const deadline = performance.now() + 30_000;
  while (delivered < expected && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const ac of controllers) ac.abort();
  await Promise.all(streams);
  await Promise.all(pools.map((p) => p.close()));
  lags.sort((a, b) => a - b);
  return { p50: percentile(lags, 50), p99: percentile(lags, 99), delivered, expected };
}

export async function benchApi(): Promise<Section> {
  console.log('api: starting 3 servers');
  // BENCH_SERVER_ARGS: extra `flotilla server` flags (e.g. "--gc-heap-growth-percent 0").
  const c = await FlotillaCluster.start(3, { args: (process.env.BENCH_SERVER_ARGS ?? '').split(/\s+/).filter(Boolean) });
  const lines: string[] = [];
  try {
    const u = c.urls[0];
    await ensureNamespace(u, 'bench');
    await ensureNamespace(u, 'pods');
    await ensureNamespace(u, 'lag');
    await ensureNamespace(u, 'rss');

    const create = await runLoad(createTargets(c, 'bench', (n) => cm(n, 'v'), 'c'), 64, SECONDS);
    console.log(`create c=64: ${fmt(create.throughput)}/s p50 ${create.p50.toFixed(1)} ms p99 ${create.p99.toFixed(1)} ms errors ${create.errors}`);
    const names = Array.from({ length: 2000 }, (_, i) => `u-${i}`);
    await createMany(c, 'bench', names.length, (n) => cm(n, '0'), 'u', 'configmaps');
    const update = await runLoad(updateTargets(c, 'bench', names), 64, SECONDS);
    console.log(`update c=64: ${fmt(update.throughput)}/s p50 ${update.p50.toFixed(1)} ms p99 ${update.p99.toFixed(1)} ms errors ${update.errors}`);
    const at1k = await runRate(createTargets(c, 'bench', (n) => cm(n, 'v'), 'r'), 1000, SECONDS);
    console.log(`create at 1000/s: ${fmt(at1k.throughput)}/s p50 ${at1k.p50.toFixed(1)} ms p99 ${at1k.p99.toFixed(1)} ms errors ${at1k.errors}`);

    const podSecs = await createMany(c, 'pods', LIST_PODS, pod, 'p', 'pods');
    console.log(`created ${LIST_PODS} pods in ${podSecs.toFixed(1)} s`);
    const listAll = await timeList(u, '/api/v1/namespaces/pods/pods');
    const listStale = await timeList(u, '/api/v1/namespaces/pods/pods?resourceVersion=0');
    const listPage = await timeList(u, '/api/v1/namespaces/pods/pods?limit=500');
    console.log(`LIST ${LIST_PODS} pods: p50 ${listAll.p50.toFixed(1)} ms (${(listAll.bytes / 2 ** 20).toFixed(1)} MiB); rv=0 ${listStale.p50.toFixed(1)} ms; limit=500 ${listPage.p50.toFixed(1)} ms`);
    // BENCH_ETCD_LIST=0 skips the etcd yardstick.
    const podItems = process.env.BENCH_ETCD_LIST === '0' ? [] : ((await (await request(`${u}/api/v1/namespaces/pods/pods`, { bodyTimeout: 60_000 })).body.json()) as { items: unknown[] }).items.map((o) => JSON.stringify(o));
    const etcdList = podItems.length ? await etcdctlList(podItems, 'pods') : undefined;
    // Our LIST again right after, so that both figures share the machine's load of the moment.
    const listAgain = etcdList ? await timeList(u, '/api/v1/namespaces/pods/pods') : undefined;
    if (etcdList && listAgain) console.log(`etcdctl get --prefix (same ${podItems.length} objects): p50 ${etcdList.p50.toFixed(1)} ms (${(etcdList.bytes / 2 ** 20).toFixed(1)} MiB); our LIST just after: p50 ${listAgain.p50.toFixed(1)} ms = ${(listAgain.p50 / etcdList.p50).toFixed(2)}×`);

    const lag = await watchLag(c, 'lag', WATCHERS, WATCH_WRITES);
    console.log(`watch lag (${WATCHERS} watchers, ${WATCH_WRITES} writes at 1000/s): p50 ${lag.p50.toFixed(1)} ms p99 ${lag.p99.toFixed(1)} ms, delivered ${lag.delivered}/${lag.expected}`);

    const before = c.members.map((m) => rssMiB(m.proc!.pid));
    const already = LIST_PODS + 2000 + create.ops + at1k.ops + WATCH_WRITES;
    const more = Math.max(0, RSS_OBJECTS - already);
    const rssSecs = await createMany(c, 'rss', more, (n) => cm(n, 'value'), 'o', 'configmaps');
    const st = await (await request(`${u}/metrics`)).body.text();
    const objects = Number(/apiserver_storage_objects (\d+)/.exec(st)?.[1] ?? 0);
    const after = c.members.map((m) => rssMiB(m.proc!.pid));
    console.log(`RSS with ${objects} objects: ${after.map((x) => x.toFixed(0)).join(' / ')} MiB (before the last ${more} creates: ${before.map((x) => x.toFixed(0)).join(' / ')}; created in ${rssSecs.toFixed(1)} s)`);

    lines.push(
      'Three `flotilla server` processes with durable Raft writes; clients spread over all three servers. Latency in ms.',
      '',
      '| measurement | result | goal |',
      '|---|---|---|',
      `| create ConfigMap, 64 concurrent clients | ${fmt(create.throughput)}/s, p50 ${create.p50.toFixed(1)}, p99 ${create.p99.toFixed(1)} | |`,
      `| update (merge patch) ConfigMap, 64 concurrent clients | ${fmt(update.throughput)}/s, p50 ${update.p50.toFixed(1)}, p99 ${update.p99.toFixed(1)} | |`,
      `| create at a fixed 1,000 writes/s | ${fmt(at1k.throughput)}/s done, p50 ${at1k.p50.toFixed(1)}, p99 ${at1k.p99.toFixed(1)} | p99 ≤ 50 |`,
      `| LIST ${fmt(LIST_PODS)} pods (linearizable) | p50 ${listAll.p50.toFixed(1)}, max ${listAll.max.toFixed(1)} (${(listAll.bytes / 2 ** 20).toFixed(1)} MiB) | ≤ 200 |`,
      `| LIST ${fmt(LIST_PODS)} pods, resourceVersion=0 | p50 ${listStale.p50.toFixed(1)} | |`,
      ...(etcdList && listAgain ? [`| the same objects from a 3-member etcd: \`etcdctl get --prefix\` / our LIST measured just after | p50 ${etcdList.p50.toFixed(1)} / ${listAgain.p50.toFixed(1)} = ${(listAgain.p50 / etcdList.p50).toFixed(2)}× | ≤ 0.5× |`] : []),
      `| LIST pods, limit=500 (first page) | p50 ${listPage.p50.toFixed(1)} | |`,
      `| watch delivery lag, ${WATCHERS} watchers × ${fmt(WATCH_WRITES)} writes at 1,000/s | p50 ${lag.p50.toFixed(1)}, p99 ${lag.p99.toFixed(1)}; ${lag.delivered}/${lag.expected} delivered | |`,
      `| server RSS with ${fmt(objects)} objects | ${after.map((x) => x.toFixed(0)).join(' / ')} MiB | ≤ 300 MB |`,
    );
  } finally {
    await c.stop();
  }
  return { name: 'api', title: 'API server: 3 servers, writes through all of them', body: lines.join('\n') };
}
