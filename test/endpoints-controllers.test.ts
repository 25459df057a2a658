// The Endpoints and EndpointSlice controllers against a real server, NATS and
// fake nodes: addresses follow pods' readiness and deletion within a second,
// named target ports resolve per pod, not-ready addresses, publishNotReadyAddresses,
// selector-less services left alone, and slices split above 100 endpoints.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { newControllerContext, stopControllerContext } from '../agents/controllers/context.ts';
import { EndpointsController } from '../agents/controllers/endpoints/controller.ts';
import { EndpointSliceController } from '../agents/controllers/endpointslice/controller.ts';
import type { EndpointSlice } from '../agents/controllers/endpointslice/reconciler.ts';
import type { Endpoints } from '../agents/informer/types.ts';
import { kindByName } from '../api/kinds/index.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { tempDir, waitFor } from '../harness/procs.ts';

const PODS = kindByName('pods')!;
const SVC = kindByName('services')!;
const EP = kindByName('endpoints')!;
const SLICES = kindByName('endpointslices')!;
const noKubectl = kubectlMissing(t);

t.test('endpoints and endpoint slices', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const nodes = new FakeNodes({ client: c, nats: nats.url, count: 2 });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const ctx = newControllerContext({ client: c, nats: nats.url });
  const abort = new AbortController();
  const runs = [new EndpointsController(ctx), new EndpointSliceController(ctx)].map((ctl) => ctl.run(abort.signal));
  t.teardown(async () => {
    abort.abort();
    await Promise.all(runs);
    await stopControllerContext(ctx);
  });

  const pod = (name: string, labels: Record<string, string>, port = 8080) => c.create(resourcePath(PODS, 'default'), {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, labels },
    spec: { containers: [{ name: 'app', image: 'app:1', ports: [{ name: 'http', containerPort: port }, { name: 'metrics', containerPort: 9100 }] }] },
  });
  const service = (name: string, spec: Record<string, unknown>) => c.create(resourcePath(SVC, 'default'), { apiVersion: 'v1', kind: 'Service', metadata: { name, labels: { tier: 'front' } }, spec });
  const endpoints = async (name: string) => c.get<Endpoints>(resourcePath(EP, 'default', name)).catch(() => undefined);
  const slices = async (svc: string) => (await c.list<EndpointSlice>(resourcePath(SLICES, 'default'), { labelSelector: `kubernetes.io/service-name=${svc}` })).items;
  /** "ip:port" of ready and not-ready addresses, sorted. */
  const addrs = (ep: Endpoints | undefined, key: 'addresses' | 'notReadyAddresses') =>
    (ep?.subsets ?? []).flatMap((s) => (s[key] ?? []).flatMap((a) => (s.ports ?? []).map((p) => `${a.ip}:${p.port}`))).sort();
  const podIP = async (name: string) => (await c.get<{ status?: { podIP?: string } }>(resourcePath(PODS, 'default', name))).status?.podIP ?? '';

  await Promise.all([pod('web-0', { app: 'web' }), pod('web-1', { app: 'web' }), pod('web-2', { app: 'web' }, 9090)]);
  await service('web', { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
  const ips = Object.fromEntries(await Promise.all(['web-0', 'web-1', 'web-2'].map(async (n) => [n, await waitFor(`${n} to get an IP`, () => podIP(n))] as const)));

  await t.test('ready pods with a named target port resolved per pod', async (t) => {
    const want = [`${ips['web-0']}:8080`, `${ips['web-1']}:8080`, `${ips['web-2']}:9090`].sort();
    const ep = await waitFor('endpoints of web', async () => {
      const e = await endpoints('web');
      return addrs(e, 'addresses').join() === want.join() ? e : undefined;
    }, 10_000);
    t.equal(ep.subsets?.length, 2, 'two subsets: pods serving 8080 and the pod serving 9090');
    t.equal(ep.metadata.labels?.tier, 'front', 'the service\'s labels are copied');
    const a = ep.subsets!.flatMap((s) => s.addresses ?? []).find((x) => x.ip === ips['web-0']);
    t.match(a, { nodeName: /^node-/, targetRef: { kind: 'Pod', name: 'web-0', namespace: 'default' } });
    const ss = await waitFor('two slices of web (one per port set)', async () => {
      const s = await slices('web');
      return s.length === 2 && s.every((x) => x.endpoints.length) ? s : undefined;
    }, 10_000);
    for (const s of ss) {
      t.equal(s.metadata.labels?.['endpointslice.kubernetes.io/managed-by'], 'endpointslice-controller.k8s.io');
      t.equal(s.metadata.ownerReferences?.[0]?.kind, 'Service');
      t.equal(s.addressType, 'IPv4');
      t.ok(s.endpoints.every((e) => e.conditions.ready && e.conditions.serving && !e.conditions.terminating), 'all ready');
    }
    t.same(ss.map((s) => s.ports.map((p) => p.port).join()).sort(), ['8080', '9090']);
  });

  await t.test('readiness changes move addresses within a second', async (t) => {
    const start = Date.now();
    nodes.setReady('default', 'web-1', false);
    await waitFor('web-1 not ready in endpoints', async () => addrs(await endpoints('web'), 'notReadyAddresses').join() === `${ips['web-1']}:8080`, 5_000, 20);
    await waitFor('web-1 not ready in its slice', async () => (await slices('web')).some((s) => s.endpoints.some((e) => e.targetRef?.name === 'web-1' && !e.conditions.ready && !e.conditions.serving)), 5_000, 20);
    const took = Date.now() - start;
    t.ok(took < 1500, `pod un-ready → endpoints and slice updated in ${took} ms`);
    t.notOk(addrs(await endpoints('web'), 'addresses').includes(`${ips['web-1']}:8080`));
    nodes.setReady('default', 'web-1', true);
    await waitFor('web-1 ready again', async () => addrs(await endpoints('web'), 'notReadyAddresses').length === 0 && addrs(await endpoints('web'), 'addresses').length === 3, 5_000, 20);
  });

  await t.test('a deleted pod leaves', async (t) => {
    await c.delete(resourcePath(PODS, 'default', 'web-2'));
    await waitFor('web-2 gone from endpoints', async () => !addrs(await endpoints('web'), 'addresses').some((a) => a.startsWith(`${ips['web-2']}:`)), 5_000, 20);
    await waitFor('web-2 gone from slices: the 9090 slice is deleted', async () => {
      const s = await slices('web');
      return s.length === 1 && s[0]!.endpoints.length === 2;
    }, 5_000, 20);
    t.pass('deleted pod removed from Endpoints and EndpointSlices');
  });

  await t.test('kubectl get endpoints,endpointslices', { skip: noKubectl ?? false }, async (t) => {
    const r = spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, '--cache-dir', tempDir('kubectl-cache'), 'get', 'endpoints,endpointslices', '-l', 'tier=front'], { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 0, r.stderr);
    const want = [`${ips['web-0']}:8080`, `${ips['web-1']}:8080`].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    t.match(r.stdout, new RegExp(`endpoints/web\\s+${want.map((w) => w.replace(/\./g, '\\.')).join(',')}\\s`), r.stdout);
    t.match(r.stdout, /endpointslice\.discovery\.k8s\.io\/web-\w+\s+IPv4\s+8080\s+127\./, r.stdout);
  });

  await t.test('not-ready pods and publishNotReadyAddresses', async (t) => {
    await service('pub', { selector: { app: 'web' }, publishNotReadyAddresses: true, ports: [{ name: 'm', port: 91, targetPort: 9100 }] });
    nodes.setReady('default', 'web-0', false);
    await waitFor('pub lists the un-ready pod as an address', async () => {
      const e = await endpoints('pub');
      return addrs(e, 'addresses').join() === [`${ips['web-0']}:9100`, `${ips['web-1']}:9100`].sort().join() && !addrs(e, 'notReadyAddresses').length;
    }, 5_000, 20);
    await waitFor('its slice says ready (published) but not serving', async () => (await slices('pub')).some((s) => s.endpoints.some((e) => e.targetRef?.name === 'web-0' && e.conditions.ready && !e.conditions.serving)), 5_000, 20);
    nodes.setReady('default', 'web-0', true);
    t.pass('publishNotReadyAddresses publishes un-ready pods');
  });

  await t.test('a service without a selector is left alone', async (t) => {
    await service('manual', { ports: [{ port: 5432 }] });
    await c.create(resourcePath(EP, 'default'), { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'manual' }, subsets: [{ addresses: [{ ip: '127.9.9.9' }], ports: [{ port: 5432 }] }] });
    // A later service with a selector proves the controllers have caught up past "manual".
    await service('later', { selector: { app: 'web' }, ports: [{ port: 1, targetPort: 'http' }] });
    await waitFor('later has endpoints', async () => addrs(await endpoints('later'), 'addresses').length === 2, 5_000, 20);
    t.same(addrs(await endpoints('manual'), 'addresses'), ['127.9.9.9:5432'], 'hand-written Endpoints unchanged');
    t.same(await slices('manual'), [], 'no slices for a selector-less service');
  });

  await t.test('more than 100 endpoints split into slices of at most 100', async (t) => {
    const n = 230;
    for (let i = 0; i < n; i += 25) await Promise.all(Array.from({ length: Math.min(25, n - i) }, (_, j) => pod(`big-${i + j}`, { app: 'big' })));
    // All pods running before the service exists, so that its first reconcile sees them all (later arrivals
    // would fill the slices that have room, as in Kubernetes, rather than repack them).
    await waitFor('230 pods with an IP', async () => (await c.list<{ status?: { podIP?: string } }>(resourcePath(PODS, 'default'), { labelSelector: 'app=big' })).items.filter((p) => p.status?.podIP).length === n, 60_000, 200);
    await service('big', { selector: { app: 'big' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] });
    const ss = await waitFor('230 endpoints in slices', async () => {
      const s = await slices('big');
      return s.reduce((k, x) => k + x.endpoints.length, 0) === n ? s : undefined;
    }, 60_000, 200);
    t.same(ss.map((s) => s.endpoints.length).sort((a, b) => b - a), [100, 100, 30], 'packed 100, 100, 30');
    await waitFor('Endpoints lists all 230', async () => addrs(await endpoints('big'), 'addresses').length === n, 30_000, 200);
    // Removing a few pods changes only the slices they were in; the service keeps 3 slices.
    const names = ss.flatMap((s) => s.endpoints.slice(0, 1).map((e) => e.targetRef!.name));
    await Promise.all(names.map((p) => c.delete(resourcePath(PODS, 'default', p))));
    const after = await waitFor('3 fewer endpoints', async () => {
      const s = await slices('big');
      return s.reduce((k, x) => k + x.endpoints.length, 0) === n - 3 ? s : undefined;
    }, 20_000, 100);
    t.same(after.map((s) => s.metadata.name).sort(), ss.map((s) => s.metadata.name).sort(), 'the same three slices, updated in place');
    // The Endpoints object was never over capacity.
    t.notOk((await endpoints('big'))?.metadata.annotations?.['endpoints.kubernetes.io/over-capacity']);
  });

  await t.test('a deleted service takes its endpoints and slices along', async (t) => {
    await c.delete(resourcePath(SVC, 'default', 'pub'));
    await waitFor('pub endpoints gone', async () => !(await endpoints('pub')), 5_000, 20);
    await waitFor('pub slices gone', async () => (await slices('pub')).length === 0, 5_000, 20);
    t.pass();
  });
});
