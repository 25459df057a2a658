// `npm run bench -- api-paths`: the CPU cost of the API server's hot paths in
// one process, no cluster, each next to the way it was done before issue 14,
// run alternately (A, B, A, B, ...) so that both see the same machine load:
// encoding a LIST of 10,000 pods and selecting them (sort vs ordered index),
// fanning watch events out to 100
// watchers, and applying 10,000 creates to the store (resourceVersion
// stamped into the text vs the object serialized again).
import { encodeCommand } from '../apiserver/command.ts';
import { encodeJsonParts } from '../apiserver/http/io.ts';
import { eventFrame } from '../apiserver/http/watch.ts';
import { ObjectStore, encodeObject } from '../apiserver/store.ts';
import { percentile } from './load.ts';
import type { Section } from './report.ts';

const PODS = Number(process.env.BENCH_LIST_PODS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const WATCHERS = Number(process.env.BENCH_WATCHERS ?? 100);

/** A pod as the API server stores it (about 1.6 KB, like the api benchmark's). */
function storedPod(i: number): Record<string, unknown> {
  const name = `p-${i}`;
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: {
      name, namespace: 'pods', uid: `7c0d6b3e-1f2a-4c5d-9e8f-${String(i).padStart(12, '0')}`, resourceVersion: String(1000 + i), generation: 1,
      creationTimestamp: '2026-12-06T03:00:00Z', labels: { app: 'bench' },
      managedFields: [{ manager: 'undici', operation: 'Update', apiVersion: 'v1', time: '2026-12-06T03:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } }, 'f:spec': { 'f:containers': { 'k:{"name":"c"}': { '.': {}, 'f:command': {}, 'f:image': {}, 'f:name': {} } } } } }],
    },
    spec: {
      containers: [{ name: 'c', image: 'busybox:1.36', command: ['sleep', '3600'], imagePullPolicy: 'IfNotPresent', terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', resources: {} }],
      restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst', schedulerName: 'default-scheduler', priority: 0, enableServiceLinks: true, preemptionPolicy: 'PreemptLowerPriority',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      securityContext: {},
    },
    status: { phase: 'Pending', qosClass: 'BestEffort' },
  };
}

/** Milliseconds of `fn`, median over rounds, A and B alternating. */
function ab(a: () => void, b: () => void): { a: number; b: number } {
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < 3; i++) (a(), b()); // warm up both
  for (let i = 0; i < ROUNDS; i++) {
    let t0 = performance.now();
    a();
    ta.push(performance.now() - t0);
    t0 = performance.now();
    b();
    tb.push(performance.now() - t0);
  }
  ta.sort((x, y) => x - y);
  tb.sort((x, y) => x - y);
  return { a: percentile(ta, 50), b: percentile(tb, 50) };
}

let sink = 0;

export async function benchApiPaths(): Promise<Section> {
  const rows: string[] = [];
  const row = (what: string, r: { a: number; b: number }, unit = 'ms') => {
    const line = `| ${what} | ${r.a.toFixed(2)} ${unit} | ${r.b.toFixed(2)} ${unit} | ${(r.b / r.a).toFixed(2)}× |`;
    console.log(line);
    rows.push(line);
  };

  // LIST: the body of 10,000 stored pods.
  const items = Array.from({ length: PODS }, (_, i) => JSON.stringify(storedPod(i)));
  const head = '{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"99999"},"items":[';
  row(`LIST body of ${PODS.toLocaleString('en-US')} pods (${(items.reduce((n, x) => n + x.length, 0) / 2 ** 20).toFixed(1)} MiB): joined string, byteLength, encoded by end() / encoded straight into buffers`, ab(
    () => {
      const body = `${head}${items.join(',')}]}`;
      sink += Buffer.byteLength(body);
      sink += Buffer.from(body).length;
    },
    () => {
      sink += encodeJsonParts(head, items, ']}').total;
    },
  ));

  // Watch: one event to many watchers.
  const events = items.slice(0, 200);
  row(`watch: 200 events to ${WATCHERS} watchers: a frame string and its encoding per watcher / one Buffer per event`, ab(
    () => {
      for (const json of events) for (let w = 0; w < WATCHERS; w++) sink += Buffer.from(`{"type":"MODIFIED","object":${json}}\n`).length;
    },
    () => {
      for (const json of events) for (let w = 0; w < WATCHERS; w++) sink += eventFrame('MODIFIED', json, () => json).length;
    },
  ));

  // Store: creates applied; the proposed text either laid out for stamping or not (then serialized again, as before).
  const objs = Array.from({ length: PODS }, (_, i) => {
    const o = storedPod(i) as { metadata: Record<string, unknown> };
    delete o.metadata.resourceVersion;
    return o;
  });
  const laidOut = objs.map((o) => encodeCommand({ op: 'create', res: '/pods', ns: 'pods', name: String(o.metadata.name), user: 'u', verb: 'create', ts: '2026-12-06T03:00:00Z', obj: encodeObject(o) }));
  const otherOrder = objs.map((o) => {
    const { apiVersion, kind, ...rest } = o as Record<string, unknown>;
    return encodeCommand({ op: 'create', res: '/pods', ns: 'pods', name: String(o.metadata.name), user: 'u', verb: 'create', ts: '2026-12-06T03:00:00Z', obj: JSON.stringify({ ...rest, apiVersion, kind }) });
  });
  const applyAll = (cmds: Uint8Array[]) => {
    const s = new ObjectStore();
    for (let i = 0; i < cmds.length; i++) s.apply({ index: i + 1, term: 1, data: cmds[i] });
    sink += s.objectCount;
  };
  row(`store: ${PODS.toLocaleString('en-US')} pod creates applied: object serialized again / resourceVersion written into the text`, ab(() => applyAll(otherOrder), () => applyAll(laidOut)));

  // LIST's object selection: scan, filter by namespace and sort on every LIST (as before) / the ordered index's range.
  const store = new ObjectStore();
  laidOut.forEach((cmd, i) => store.apply({ index: i + 1, term: 1, data: cmd }));
  const byKey = new Map(store.list('/pods', undefined).map(({ key, obj }) => [key, obj]));
  // Other namespaces around "pods", as a cluster has them.
  for (const other of ['kube-system', 'default', 'pods-2', 'zz']) for (let i = 0; i < 1000; i++) byKey.set(`${other}/x-${i}`, byKey.get('pods/p-0')!);
  for (const other of ['kube-system', 'default', 'pods-2', 'zz']) {
    for (let i = 0; i < 1000; i++) store.apply({ index: PODS + 1 + i, term: 1, data: encodeCommand({ op: 'create', res: '/pods', ns: other, name: `x-${i}`, user: 'u', verb: 'create', ts: '2026-12-06T03:00:00Z', obj: encodeObject({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `x-${i}`, namespace: other } }) }) });
  }
  row(`LIST selection: ${PODS.toLocaleString('en-US')} pods of one namespace among ${byKey.size.toLocaleString('en-US')}: scan and sort / ordered index`, ab(
    () => {
      const out: { key: string; obj: unknown }[] = [];
      for (const [k, o] of byKey) if (k.startsWith('pods/')) out.push({ key: k, obj: o });
      out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      sink += out.length;
    },
    () => {
      sink += store.list('/pods', 'pods').length;
    },
  ));

  if (sink < 0) console.log(sink);
  return {
    name: 'api-paths',
    title: 'API server hot paths, in one process (issue 14)',
    body: [
      `Median of ${ROUNDS} alternating rounds (before, after, before, ...), so both see the same machine load; elapsed time on one thread, no sockets.`,
      '',
      '| path | before | after | after/before |',
      '|---|---|---|---|',
      ...rows,
    ].join('\n'),
  };
}
