// Table tests of the Endpoints and EndpointSlice controllers' decisions
// (agents/controllers/endpoints/, endpointslice/reconciler.ts): facts of
// Kubernetes' behaviour, no cluster.
import t from 'tap';
import { findPort, shouldPodBeInEndpoints } from '../agents/controllers/endpoints/pods.ts';
import { type EndpointSubset, desiredSubsets, endpointsLabels, truncate } from '../agents/controllers/endpoints/subsets.ts';
import {
  type EndpointSlice, type PortGroup, type SliceEndpoint, desiredEndpoints, newSlice, reconcileSlices, sliceLabels,
} from '../agents/controllers/endpointslice/reconciler.ts';
import type { Pod, Service } from '../agents/informer/types.ts';

let uid = 0;
function pod(name: string, o: { ip?: string; ready?: boolean; labels?: Record<string, string>; phase?: string; deleting?: boolean; ports?: { name?: string; containerPort: number; protocol?: string }[]; hostname?: string; subdomain?: string; node?: string } = {}): Pod {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: 'default', uid: `uid-${name}-${uid++}`, labels: o.labels ?? { app: 'web' }, ...(o.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
    spec: { nodeName: o.node ?? 'node-1', containers: [{ name: 'c', ports: o.ports ?? [{ name: 'http', containerPort: 8080 }] }], hostname: o.hostname, subdomain: o.subdomain },
    status: { phase: o.phase ?? 'Running', podIP: o.ip, conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
  };
}
function svc(spec: Record<string, unknown> = {}, labels: Record<string, string> = {}): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default', uid: 'svc-uid', labels }, spec: { selector: { app: 'web' }, clusterIP: '127.32.0.5', ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }], ...spec } };
}

t.test('which pods are listed', async (t) => {
  const cases: [string, Pod, boolean, boolean][] = [
    ['running with an IP', pod('a', { ip: '127.64.0.2' }), true, true],
    ['no IP yet', pod('a'), false, false],
    ['Succeeded', pod('a', { ip: '127.64.0.2', phase: 'Succeeded' }), false, false],
    ['Failed', pod('a', { ip: '127.64.0.2', phase: 'Failed' }), false, false],
    ['terminating: only when terminating pods are included', pod('a', { ip: '127.64.0.2', deleting: true }), false, true],
  ];
  for (const [name, p, withoutTerminating, withTerminating] of cases) {
    t.equal(shouldPodBeInEndpoints(p, false), withoutTerminating, `${name} (Endpoints)`);
    t.equal(shouldPodBeInEndpoints(p, true), withTerminating, `${name} (slices)`);
  }
});

t.test('findPort: numbers as they are, names per pod and protocol', async (t) => {
  const p = pod('a', { ports: [{ name: 'http', containerPort: 8080 }, { name: 'dns', containerPort: 53, protocol: 'UDP' }] });
  t.equal(findPort(p, { port: 80, targetPort: 9000 }), 9000);
  t.equal(findPort(p, { port: 80 }), 80, 'no targetPort: the port itself');
  t.equal(findPort(p, { port: 80, targetPort: 'http' }), 8080);
  t.equal(findPort(p, { port: 53, targetPort: 'dns', protocol: 'UDP' }), 53);
  t.equal(findPort(p, { port: 53, targetPort: 'dns', protocol: 'TCP' }), undefined, 'the protocol must match');
  t.equal(findPort(p, { port: 80, targetPort: 'nope' }), undefined);
});

t.test('Endpoints subsets', async (t) => {
  const pods = [
    pod('a', { ip: '127.64.0.10' }),
    pod('b', { ip: '127.64.0.9', ready: false }),
    pod('c', { ip: '127.64.0.2', ports: [{ name: 'http', containerPort: 9090 }] }),
    pod('d', { ip: '127.64.0.3', ports: [{ name: 'other', containerPort: 1 }] }),
    pod('e', { ip: '127.64.0.4', labels: { app: 'db' } }),
    pod('f', { ip: '127.64.0.5', deleting: true }),
    pod('g', { ip: '127.64.0.6', hostname: 'g0', subdomain: 'web' }),
  ];
  const { subsets, truncated } = desiredSubsets(svc(), pods);
  t.notOk(truncated);
  const view = (ss: EndpointSubset[]) => ss.map((s) => ({
    ready: (s.addresses ?? []).map((a) => a.ip + (a.hostname ? `(${a.hostname})` : '')),
    notReady: (s.notReadyAddresses ?? []).map((a) => a.ip),
    ports: (s.ports ?? []).map((p) => `${p.name}:${p.port}/${p.protocol}`),
  }));
  t.same(view(subsets), [
    { ready: ['127.64.0.6(g0)', '127.64.0.10'], notReady: ['127.64.0.9'], ports: ['http:8080/TCP'] },
    { ready: ['127.64.0.2'], notReady: [], ports: ['http:9090/TCP'] },
  ], 'grouped by port set; IPs in numeric order; not-ready apart; no named port, other labels, terminating: left out; hostname from subdomain');
  const pub = desiredSubsets(svc({ publishNotReadyAddresses: true }), pods).subsets;
  t.same(view(pub)[0], { ready: ['127.64.0.5', '127.64.0.6(g0)', '127.64.0.9', '127.64.0.10'], notReady: [], ports: ['http:8080/TCP'] },
    'publishNotReadyAddresses: every pod is an address, terminating ones too');
  t.same(desiredSubsets(svc({ ports: [], clusterIP: 'None' }), [pods[0]!]).subsets, [{ addresses: [{ ip: '127.64.0.10', nodeName: 'node-1', targetRef: { kind: 'Pod', namespace: 'default', name: 'a', uid: pods[0]!.metadata.uid } }] }], 'a headless service without ports lists addresses alone');
  t.same(desiredSubsets(svc({ ports: [] }), [pods[0]!]).subsets, [], 'a non-headless service without ports lists nothing');
  t.same(desiredSubsets(svc({ selector: undefined }), pods).subsets, [], 'no selector: nothing selected');
  t.same(endpointsLabels(svc({ clusterIP: 'None' }, { a: 'b' })), { a: 'b', 'service.kubernetes.io/headless': '' });
  t.same(endpointsLabels(svc({}, { a: 'b', 'service.kubernetes.io/headless': '' })), { a: 'b' });
});

t.test('truncation at 1000 addresses: ready first, shared in proportion', async (t) => {
  const addrs = (n: number, base: number) => Array.from({ length: n }, (_, i) => ({ ip: `127.${base}.${i >> 8}.${i & 255}` }));
  const shape = (ss: EndpointSubset[]) => ss.map((s) => [s.addresses?.length ?? 0, s.notReadyAddresses?.length ?? 0]);
  const cases: [string, [number, number][], [number, number][], boolean][] = [
    ['at capacity: untouched', [[600, 0], [300, 100]], [[600, 0], [300, 100]], false],
    ['not-ready trimmed first, in proportion', [[600, 300], [200, 100]], [[600, 150], [200, 50]], true],
    ['too many ready: not-ready all go, ready shared (rounded up, last gets the rest)', [[900, 10], [601, 5]], [[600, 0], [400, 0]], true],
    ['shares rounded up, the last subset gets what is left', [[500, 333], [400, 1], [0, 100]], [[500, 77], [400, 1], [0, 22]], true],
  ];
  for (const [name, input, want, cut] of cases) {
    const ss: EndpointSubset[] = input.map(([r, n], i) => ({ ...(r ? { addresses: addrs(r, i * 2 + 1) } : {}), ...(n ? { notReadyAddresses: addrs(n, i * 2 + 2) } : {}), ports: [{ port: 80, protocol: 'TCP' }] }));
    t.equal(truncate(ss), cut, `${name}: truncated`);
    t.same(shape(ss), want, name);
  }
  const many = Array.from({ length: 1005 }, (_, i) => pod(`p${i}`, { ip: `127.64.${i >> 8}.${i & 255}`, ready: i % 5 !== 0 }));
  const { subsets, truncated } = desiredSubsets(svc(), many);
  t.ok(truncated, '1005 selected pods: truncated');
  t.same(shape(subsets), [[804, 196]], 'all 804 ready kept, not-ready cut to 196');
});

t.test('slices: desired endpoints and conditions', async (t) => {
  const pods = [pod('a', { ip: '127.64.0.2' }), pod('b', { ip: '127.64.0.3', ready: false }), pod('c', { ip: '127.64.0.4', deleting: true }), pod('d', { ip: '127.64.0.5', ports: [{ name: 'http', containerPort: 9 }] })];
  const zones = (n: string) => (n === 'node-1' ? { apiVersion: 'v1', kind: 'Node', metadata: { name: n, labels: { 'topology.kubernetes.io/zone': 'z1' } } } : undefined);
  const d = desiredEndpoints(svc(), pods, zones);
  t.equal(d.size, 2, 'two port sets');
  const g8080 = [...d.values()].find((g) => g.ports[0]!.port === 8080)!;
  t.same(g8080.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
  t.same(g8080.endpoints.map((e) => [e.targetRef!.name, e.conditions, e.zone]), [
    ['a', { ready: true, serving: true, terminating: false }, 'z1'],
    ['b', { ready: false, serving: false, terminating: false }, 'z1'],
    ['c', { ready: false, serving: true, terminating: true }, 'z1'],
  ], 'ready = serving and not terminating; terminating pods stay listed');
  const pub = desiredEndpoints(svc({ publishNotReadyAddresses: true }), pods);
  t.ok([...pub.values()].every((g) => g.endpoints.every((e) => e.conditions.ready)), 'publishNotReadyAddresses: all ready');
  t.same(sliceLabels(svc({ clusterIP: 'None' }, { tier: 'x', 'kubernetes.io/service-name': 'evil' })), {
    tier: 'x', 'service.kubernetes.io/headless': '', 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
  });
});

// ---- packing ---------------------------------------------------------------------------

const S = svc();
const PORTS = [{ name: 'http', port: 8080, protocol: 'TCP' }];
const ep = (i: number, ready = true): SliceEndpoint => ({
  addresses: [`127.64.${i >> 8}.${i & 255}`], conditions: { ready, serving: ready, terminating: false }, nodeName: 'node-1',
  targetRef: { kind: 'Pod', namespace: 'default', name: `p${i}`, uid: `u${i}` },
});
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const group = (ids: number[], notReady: number[] = []): Map<string, PortGroup> => {
  const endpoints = ids.map((i) => ep(i, !notReady.includes(i)));
  return new Map([[`http\u00008080\u0000TCP\u0000`, { ports: PORTS, endpoints }]]);
};
let sliceNo = 0;
const existing = (ids: number[], o: { ports?: typeof PORTS; owner?: string } = {}): EndpointSlice => {
  const s = newSlice(S, o.ports ?? PORTS);
  s.metadata = { ...s.metadata, name: `web-${sliceNo++}`, resourceVersion: '5' };
  delete s.metadata.generateName;
  if (o.owner) s.metadata.ownerReferences = [{ ...s.metadata.ownerReferences![0]!, uid: o.owner }];
  s.endpoints = ids.map((i) => ep(i));
  return s;
};
const summary = (c: ReturnType<typeof reconcileSlices>) => ({
  create: c.create.map((s) => s.endpoints.length),
  update: c.update.map((s) => `${s.metadata.name}:${s.endpoints.length}`),
  delete: c.delete.map((s) => s.metadata.name),
});

t.test('packing facts', async (t) => {
  sliceNo = 0;
  t.same(summary(reconcileSlices(S, [], group(range(0, 230)))), { create: [100, 100, 30], update: [], delete: [] }, 'from nothing: full slices of 100 and the rest');
  t.same(summary(reconcileSlices(S, [], group(range(0, 230)), 50)), { create: [50, 50, 50, 50, 30], update: [], delete: [] }, 'maxEndpointsPerSlice is configurable');
  const placeholder = reconcileSlices(S, [], new Map());
  t.same(summary(placeholder), { create: [0], update: [], delete: [] }, 'no endpoints: one placeholder');
  t.same(placeholder.create[0]!.ports, [], 'the placeholder has no ports');
  const ph = { ...placeholder.create[0]!, metadata: { ...placeholder.create[0]!.metadata, name: 'web-ph' } };
  t.same(summary(reconcileSlices(S, [ph], new Map())), { create: [], update: [], delete: [] }, 'an existing placeholder is kept');
  t.same(summary(reconcileSlices(S, [ph], group([1, 2]))), { create: [], update: ['web-ph:2'], delete: [] }, 'endpoints appear: the placeholder is reused (create+delete → update)');

  sliceNo = 0;
  const a = existing(range(0, 100));
  const b = existing(range(100, 200));
  const c = existing(range(200, 230));
  t.same(summary(reconcileSlices(S, [a, b, c], group(range(0, 230)))), { create: [], update: [], delete: [] }, 'nothing changed: no writes');
  t.same(summary(reconcileSlices(S, [a, b, c], group(range(0, 230), [150]))), { create: [], update: ['web-1:100'], delete: [] }, 'a condition change rewrites only its slice');
  t.same(summary(reconcileSlices(S, [a, b, c], group([...range(0, 230)].filter((i) => i !== 5)))), { create: [], update: ['web-0:99'], delete: [] }, 'a removal rewrites only its slice');
  t.same(summary(reconcileSlices(S, [a, b, c], group(range(0, 240)))), { create: [], update: ['web-2:40'], delete: [] }, 'a few new endpoints go into the unchanged slice they fit');
  t.same(summary(reconcileSlices(S, [a, b, c], group([...range(0, 230), ...range(300, 360)].filter((i) => i !== 5)))), { create: [], update: ['web-0:100', 'web-2:89'], delete: [] },
    'new endpoints first fill a slice that changes anyway, then the unchanged slice they fit');
  t.same(summary(reconcileSlices(S, [a, b, c], group([...range(0, 230), ...range(300, 380)].filter((i) => i !== 5)))), { create: [79], update: ['web-0:100'], delete: [] },
    'no unchanged slice has room for the rest: a new slice (no repacking)');
  t.same(summary(reconcileSlices(S, [a, b, c], group(range(0, 400)))), { create: [100], update: ['web-2:100'], delete: [] },
    'more than a slice\'s worth: a new full slice, the remainder into the slice it fits exactly');
  t.same(summary(reconcileSlices(S, [a, b, c], group(range(100, 230)))), { create: [], update: [], delete: ['web-0'] }, 'a slice whose endpoints all went is deleted');
  const stale = existing([1, 2], { owner: 'old-uid' });
  t.same(summary(reconcileSlices(S, [stale], group([1, 2]))), { create: [2], update: [], delete: [stale.metadata.name] }, 'a slice of an earlier service of this name is replaced, not reused');
  const otherPorts = existing([1, 2], { ports: [{ name: 'http', port: 9999, protocol: 'TCP' }] });
  t.same(summary(reconcileSlices(S, [otherPorts], group([1, 2]))), { create: [], update: [`${otherPorts.metadata.name}:2`], delete: [] }, 'ports changed: the slice is rewritten under its name');
  const relabelled = reconcileSlices(svc({}, { tier: 'x' }), [a], group(range(0, 100)));
  t.same(summary(relabelled), { create: [], update: ['web-0:100'], delete: [] }, 'a service label change updates its slices');
  t.equal(relabelled.update[0]!.metadata.labels?.tier, 'x');
});
