// Housekeeping controllers: default/kubernetes (Service and Endpoints listing
// the API servers), the Event TTL, and the pod garbage collector — their pure
// rules as tables, then against a real server with short configured periods.
import t from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { newControllerContext, stopControllerContext } from '../agents/controllers/context.ts';
import { type CoreEvent, EventTTLController, lastWrite } from '../agents/controllers/eventttl/controller.ts';
import { KubernetesServiceController } from '../agents/controllers/kubernetesservice/controller.ts';
import { apiAddresses, desiredServiceSpec, desiredSubsets } from '../agents/controllers/kubernetesservice/desired.ts';
import { PodGCController } from '../agents/controllers/podgc/controller.ts';
import { missingNodes, terminatedOverThreshold } from '../agents/controllers/podgc/select.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';

t.test('default/kubernetes from cluster members', async (t) => {
  const addrs = apiAddresses([
    { id: 's2', api: 'http://127.0.0.1:7102' }, { id: 's1', api: 'http://127.0.0.1:7101' }, { id: 's3', api: '' }, { id: 's4', api: '127.0.0.2:7101' },
  ]);
  t.same(addrs, [{ ip: '127.0.0.1', port: 7101 }, { ip: '127.0.0.1', port: 7102 }, { ip: '127.0.0.2', port: 7101 }], 'parsed and sorted; members without an address skipped');
  t.same(desiredSubsets(addrs), [
    { addresses: [{ ip: '127.0.0.1' }, { ip: '127.0.0.2' }], ports: [{ name: 'https', port: 7101, protocol: 'TCP' }] },
    { addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'https', port: 7102, protocol: 'TCP' }] },
  ], 'one subset per port');
  t.match(desiredServiceSpec(addrs), { type: 'ClusterIP', ports: [{ name: 'https', port: 443, targetPort: 7101 }] });
  t.throws(() => apiAddresses([{ id: 'x', api: 'http://[bad' }]), /member x has an API address that is not a URL/);
});

t.test('event TTL: the last write an Event shows', async (t) => {
  const e = (o: Partial<CoreEvent>) => ({ metadata: { name: 'e', creationTimestamp: '2026-01-01T00:00:00Z' }, ...o }) as CoreEvent;
  t.equal(lastWrite(e({})), Date.parse('2026-01-01T00:00:00Z'), 'creation when nothing else');
  t.equal(lastWrite(e({ lastTimestamp: '2026-01-01T01:00:00Z', firstTimestamp: '2026-01-01T00:00:00Z' })), Date.parse('2026-01-01T01:00:00Z'), 'a repeat moves it');
  t.equal(lastWrite(e({ series: { lastObservedTime: '2026-01-01T02:00:00.123456Z' } })), Date.parse('2026-01-01T02:00:00.123Z'), 'events.k8s.io series');
  t.ok(Number.isNaN(lastWrite({ metadata: { name: 'x' } } as CoreEvent)), 'nothing known');
});

t.test('pod GC selection', async (t) => {
  const pod = (name: string, phase: string, created: string, extra: Record<string, unknown> = {}) =>
    ({ metadata: { name, namespace: 'd', creationTimestamp: created }, spec: { containers: [], ...extra }, status: { phase } }) as unknown as Pod;
  const pods = [
    pod('new-done', 'Succeeded', '2026-01-03T00:00:00Z'), pod('old-done', 'Failed', '2026-01-01T00:00:00Z'),
    pod('running', 'Running', '2025-01-01T00:00:00Z'), pod('mid-done', 'Succeeded', '2026-01-02T00:00:00Z'),
  ];
  t.same(terminatedOverThreshold(pods, 1).map((p) => p.metadata.name), ['old-done', 'mid-done'], 'oldest terminated first, running ones never');
  t.same(terminatedOverThreshold(pods, 3), [], 'under the threshold');
  t.same(terminatedOverThreshold(pods, 0), [], '0 disables');
  const evicted = { ...pod('evicted', 'Failed', '2026-01-04T00:00:00Z'), status: { phase: 'Failed', reason: 'Evicted' } } as Pod;
  t.equal(terminatedOverThreshold([...pods, evicted], 3)[0].metadata.name, 'evicted', 'evicted pods go first');
  t.same([...missingNodes([pod('a', 'Running', '', { nodeName: 'n1' }), pod('b', 'Running', '', { nodeName: 'gone' }), pod('c', 'Pending', '')], (n) => n === 'n1')], ['gone']);
});

t.test('against a real server', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const nodes = new FakeNodes({ client, nats: nats.url, count: 1 });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const ctx = newControllerContext({
    client, nats: nats.url,
    config: { eventTTLMs: 3000, terminatedPodGCThreshold: 2, podGCPeriodMs: 200, podGCQuarantineMs: 600, kubernetesServiceSyncMs: 300 },
  });
  const controllers = [new KubernetesServiceController(ctx), new EventTTLController(ctx), new PodGCController(ctx)];
  const abort = new AbortController();
  await ctx.informers.start();
  const running = controllers.map((c) => c.run(abort.signal));
  t.teardown(async () => {
    abort.abort();
    await Promise.all(running);
    await stopControllerContext(ctx);
  });
  const PODS = resolveKind('pods')!;
  const get = <T = KubeObject>(path: string) => client.get<T>(path).catch((e) => {
    if (e instanceof ApiClientError && e.code === 404) return undefined;
    throw e;
  });

  await t.test('default/kubernetes lists the API server with its real port', async (t) => {
    const port = Number(new URL(cluster.urls[0]).port);
    const ep = await waitFor('Endpoints', () => get<KubeObject & { subsets?: unknown[] }>(resourcePath(resolveKind('endpoints')!, 'default', 'kubernetes')), 15_000, 50);
    t.same(ep.subsets, [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'https', port, protocol: 'TCP' }] }]);
    const svc = await waitFor('Service', () => get<KubeObject & { spec?: { ports?: unknown[]; type?: string; clusterIP?: string } }>(resourcePath(resolveKind('services')!, 'default', 'kubernetes')), 15_000, 50);
    t.match(svc.spec, { type: 'ClusterIP', ports: [{ name: 'https', port: 443, targetPort: port, protocol: 'TCP' }] });
    t.equal(svc.spec?.clusterIP, '127.1.0.1', 'the first address of the service range, as in Kubernetes');
    await client.patch(resourcePath(resolveKind('endpoints')!, 'default', 'kubernetes'), { subsets: [] }, 'application/merge-patch+json');
    await waitFor('Endpoints repaired', async () => JSON.stringify((await get<typeof ep>(resourcePath(resolveKind('endpoints')!, 'default', 'kubernetes')))?.subsets) === JSON.stringify(ep.subsets), 15_000, 50);
    t.pass('a changed Endpoints is put back');
    // An EndpointSlice too: the node proxies route the cluster IP from slices (in-cluster clients use it).
    const SLICES = resolveKind('endpointslices')!;
    const slice = await waitFor('EndpointSlice', () => get<KubeObject & { endpoints?: unknown[]; ports?: unknown[]; addressType?: string }>(resourcePath(SLICES, 'default', 'kubernetes')), 15_000, 50);
    t.match(slice, { addressType: 'IPv4', metadata: { labels: { 'kubernetes.io/service-name': 'kubernetes' } }, endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }], ports: [{ name: 'https', port, protocol: 'TCP' }] });
    await new Promise((r) => setTimeout(r, 1500));
    t.equal((await get<KubeObject>(resourcePath(SLICES, 'default', 'kubernetes')))?.metadata?.resourceVersion, slice.metadata?.resourceVersion, 'and it is not rewritten when nothing changed');
  });

  await t.test('Events are deleted after the TTL, counted from their last update', async (t) => {
    const EVENTS = resolveKind('events')!;
    const ev = (name: string, last: Date) => client.create(resourcePath(EVENTS, 'default'), {
      apiVersion: 'v1', kind: 'Event', metadata: { name }, involvedObject: { kind: 'Pod', namespace: 'default', name: 'x' },
      reason: 'Test', message: 'm', type: 'Normal', firstTimestamp: last.toISOString(), lastTimestamp: last.toISOString(), count: 1, source: { component: 'test' },
    });
    await ev('old', new Date(Date.now() - 3_600_000));
    const started = Date.now();
    await ev('fresh', new Date());
    await waitFor('old event deleted', async () => !(await get(resourcePath(EVENTS, 'default', 'old'))), 10_000, 50);
    const fresh = await get(resourcePath(EVENTS, 'default', 'fresh'));
    // Read well before its TTL (3 s) ends, the fresh one must still be there.
    if (Date.now() - started < 2500) t.ok(fresh, 'the fresh one stays before its TTL');
    await waitFor('fresh event deleted', async () => !(await get(resourcePath(EVENTS, 'default', 'fresh'))), 10_000, 50);
    t.ok(Date.now() - started >= 2500, 'and goes once its TTL has passed');
  });

  await t.test('pod GC: terminated pods over the threshold, pods on nodes that are gone', async (t) => {
    for (let i = 0; i < 4; i++) {
      await client.create(resourcePath(PODS, 'default'), { apiVersion: 'v1', kind: 'Pod', metadata: { name: `done-${i}` }, spec: { containers: [{ name: 'c', image: 'x' }] } });
    }
    await waitFor('pods running', async () => (await client.list<Pod>(resourcePath(PODS, 'default'))).items.filter((p) => p.metadata.name.startsWith('done-') && p.status?.phase === 'Running').length === 4, 15_000, 50);
    for (let i = 0; i < 4; i++) nodes.finish('default', `done-${i}`, 'Succeeded');
    await waitFor('two terminated pods left', async () => {
      const left = (await client.list<Pod>(resourcePath(PODS, 'default'))).items.filter((p) => p.metadata.name.startsWith('done-'));
      return left.length === 2 && left.every((p) => p.status?.phase === 'Succeeded') ? left : undefined;
    }, 15_000, 100);
    t.same((await client.list<Pod>(resourcePath(PODS, 'default'))).items.filter((p) => p.metadata.name.startsWith('done-')).map((p) => p.metadata.name).sort(), ['done-2', 'done-3'],
      'the oldest went (same second: by name)');

    // A node that goes away with a running pod and a terminating one on it.
    const NODES = resolveKind('nodes')!;
    await client.create(resourcePath(NODES), { apiVersion: 'v1', kind: 'Node', metadata: { name: 'doomed' } });
    for (const name of ['on-doomed', 'ending-on-doomed']) {
      await client.create(resourcePath(PODS, 'default'), { apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { nodeName: 'doomed', containers: [{ name: 'c', image: 'x' }] } });
    }
    await client.delete(resourcePath(PODS, 'default', 'ending-on-doomed'));
    t.ok((await get(resourcePath(PODS, 'default', 'ending-on-doomed')))?.metadata?.deletionTimestamp, 'terminating: nobody confirms it');
    await new Promise((r) => setTimeout(r, 1000));
    t.ok(await get(resourcePath(PODS, 'default', 'on-doomed')), 'pods on an existing node are left alone');
    const removed = Date.now();
    await client.delete(resourcePath(NODES, undefined, 'doomed'));
    await waitFor('pods of the deleted node gone', async () => !(await get(resourcePath(PODS, 'default', 'on-doomed'))) && !(await get(resourcePath(PODS, 'default', 'ending-on-doomed'))), 15_000, 50);
    t.ok(Date.now() - removed >= 500, 'after the quarantine');
  });
});

t.test('default/kubernetes on three servers lists each with its own port', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(3, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const ctx = newControllerContext({ client, nats: nats.url, config: { kubernetesServiceSyncMs: 300 } });
  const abort = new AbortController();
  await ctx.informers.start();
  const running = new KubernetesServiceController(ctx).run(abort.signal);
  t.teardown(async () => {
    abort.abort();
    await running;
    await stopControllerContext(ctx);
  });
  const ports = cluster.urls.map((u) => Number(new URL(u).port)).sort((a, b) => a - b);
  const want = ports.map((port) => ({ addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'https', port, protocol: 'TCP' }] }));
  const path = resourcePath(resolveKind('endpoints')!, 'default', 'kubernetes');
  await waitFor('Endpoints of three servers', async () => JSON.stringify((await client.get<KubeObject & { subsets?: unknown[] }>(path).catch(() => undefined))?.subsets) === JSON.stringify(want), 20_000, 100);
  t.pass(`one subset per server port (${ports.join(', ')})`);
});
