// The scheduler's parts as pure table tests of facts from kube-scheduler's
// plugin sources and tests (pkg/scheduler/framework/plugins/...): requests
// with init and sidecar containers, each filter's verdict and reason, each
// score (LeastAllocated, BalancedAllocation, TaintToleration, NodeAffinity,
// InterPodAffinity, PodTopologySpread), the FitError message, how many
// nodes are searched, the queue's order and back-off, the cache's assumed
// pods, the algorithm that ties them together, and preemption.
import t from 'tap';
import type { KubeObject, Node, Pod } from '../agents/informer/types.ts';
import { Algorithm, FitError, fitErrorMessage, numFeasibleNodesToFind } from '../agents/scheduler/algorithm.ts';
import { SchedulerCache, clusterView } from '../agents/scheduler/cache.ts';
import { type ClusterView, type CycleState, type FilterPlugin, type PreFilterPlugin, type PreScorePlugin, SKIP, type ScorePlugin, type Status } from '../agents/scheduler/framework.ts';
import { NodeInfo } from '../agents/scheduler/node-info.ts';
import { PodInfo } from '../agents/scheduler/pod-info.ts';
import { BalancedAllocation } from '../agents/scheduler/plugins/balanced-allocation.ts';
import { InterPodAffinity } from '../agents/scheduler/plugins/inter-pod-affinity.ts';
import { NodeAffinity } from '../agents/scheduler/plugins/node-affinity.ts';
import { NodeName } from '../agents/scheduler/plugins/node-name.ts';
import { NodePorts } from '../agents/scheduler/plugins/node-ports.ts';
import { NodeResourcesFit } from '../agents/scheduler/plugins/node-resources-fit.ts';
import { NodeUnschedulable } from '../agents/scheduler/plugins/node-unschedulable.ts';
import { PodTopologySpread } from '../agents/scheduler/plugins/pod-topology-spread.ts';
import { TaintToleration } from '../agents/scheduler/plugins/taint-toleration.ts';
import { VolumeBinding } from '../agents/scheduler/plugins/volume-binding.ts';
import { VolumeRestrictions } from '../agents/scheduler/plugins/volume-restrictions.ts';
import { VolumeZone } from '../agents/scheduler/plugins/volume-zone.ts';
import { defaultProfile } from '../agents/scheduler/profile.ts';
import { SchedulingQueue } from '../agents/scheduler/queue.ts';
import { podRequests } from '../agents/scheduler/resources.ts';
import { Preemptor, pickOne } from '../agents/scheduler/preemption.ts';

let uid = 0;
type Spec = Record<string, unknown>;
const mkPod = (name: string, spec: Spec = {}, meta: Record<string, unknown> = {}): Pod => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: 'default', uid: `u${++uid}`, ...meta },
  spec: { containers: [{ name: 'c' }], ...spec },
} as Pod);
const req = (cpu?: string, memory?: string) => ({ name: 'c', resources: { requests: { ...(cpu ? { cpu } : {}), ...(memory ? { memory } : {}) } } });
const mkNode = (name: string, o: { alloc?: Record<string, string>; labels?: Record<string, string>; taints?: unknown[]; unschedulable?: boolean } = {}): Node => ({
  apiVersion: 'v1', kind: 'Node',
  metadata: { name, labels: { 'kubernetes.io/hostname': name, ...o.labels } },
  spec: { taints: o.taints as never, unschedulable: o.unschedulable },
  status: { allocatable: o.alloc ?? { cpu: '4', memory: '8Gi', pods: '110' } },
} as Node);

/** A cluster for plugins: nodes with their bound pods, and other objects by resource. */
function cluster(nodes: Node[], bound: [string, Pod][] = [], objs: Record<string, KubeObject[]> = {}) {
  const cache = new SchedulerCache();
  for (const n of nodes) cache.addOrUpdateNode(n);
  for (const [node, p] of bound) cache.addOrUpdatePod({ ...p, spec: { ...p.spec!, nodeName: node } });
  const view: ClusterView = clusterView(cache, {
    namespaceLabels: (ns) => (objs.namespaces ?? []).find((o) => o.metadata?.name === ns)?.metadata?.labels,
    get: (r, ns, name) => (objs[r] ?? []).find((o) => o.metadata?.name === name && (o.metadata?.namespace ?? '') === ns),
    list: (r, ns) => (objs[r] ?? []).filter((o) => ns === undefined || o.metadata?.namespace === ns),
  });
  return { cache, view, node: (n: string) => cache.nodeInfo(n)! };
}

/** Runs a filter plugin (with its PreFilter) over every node: name → reasons ('' when it fits). */
function runFilter(plugin: FilterPlugin & Partial<PreFilterPlugin>, pod: Pod, c: ReturnType<typeof cluster>): Record<string, string> {
  const state: CycleState = new Map();
  const info = new PodInfo(pod);
  const pre = plugin.preFilter?.(state, info, c.view);
  const out: Record<string, string> = {};
  // SKIP: the plugin has nothing to check for this pod; every node passes it.
  for (const n of c.view.nodes()) out[n.name] = pre === SKIP ? '' : (pre ?? plugin.filter(state, info, n))?.reasons.join('; ') ?? '';
  return out;
}

/** Runs a score plugin (PreScore, Score, NormalizeScore) over every node: name → 0–100. */
function runScore(plugin: ScorePlugin & Partial<PreScorePlugin>, pod: Pod, c: ReturnType<typeof cluster>, nodes = c.view.nodes()): Record<string, number> {
  const state: CycleState = new Map();
  const info = new PodInfo(pod);
  // SKIP: the plugin does not score this pod (it adds 0 to every node).
  if (plugin.preScore?.(state, info, nodes, c.view) === SKIP) return Object.fromEntries(nodes.map((n) => [n.name, 0]));
  const scores = nodes.map((n) => plugin.score(state, info, n));
  plugin.normalize?.(state, info, scores, nodes);
  return Object.fromEntries(nodes.map((n, i) => [n.name, scores[i]!]));
}

t.test('podRequests: containers, init containers, sidecars and overhead as Kubernetes counts them', async (t) => {
  const cases: [string, Spec, Record<string, number>][] = [
    ['sum of app containers', { containers: [req('100m', '1Mi'), req('200m', '1Mi')] }, { cpu: 300, memory: 2 * 2 ** 20 }],
    ['an init container bigger than the app containers wins', { containers: [req('100m'), req('200m')], initContainers: [req('500m')] }, { cpu: 500 }],
    ['init containers smaller: the app sum', { containers: [req('1')], initContainers: [req('500m'), req('700m')] }, { cpu: 1000 }],
    ['a sidecar adds to the app containers and to later init containers', {
      containers: [req('200m')], initContainers: [{ ...req('100m'), restartPolicy: 'Always' }, req('300m')],
    }, { cpu: 400 }],
    ['overhead is added', { containers: [req('1')], overhead: { cpu: '250m' } }, { cpu: 1250 }],
    ['limits stand for missing requests', { containers: [{ name: 'c', resources: { limits: { cpu: '2' } } }] }, { cpu: 2000 }],
  ];
  for (const [what, spec, want] of cases) t.same(podRequests(mkPod('p', spec)), want, what);
  t.same(podRequests(mkPod('p'), true), { cpu: 100, memory: 200 * 2 ** 20 }, 'scoring defaults for missing requests (100m, 200Mi)');
  t.same(podRequests(mkPod('p', { containers: [req('0')] }), true), { cpu: 0, memory: 200 * 2 ** 20 }, 'an explicit 0 stays 0');
});

t.test('filters: verdicts and reasons', async (t) => {
  const c = cluster([
    mkNode('small', { alloc: { cpu: '1', memory: '1Gi', pods: '2' } }),
    mkNode('full', { alloc: { cpu: '8', memory: '8Gi', pods: '1' } }),
    mkNode('big', { alloc: { cpu: '8', memory: '8Gi', pods: '110', 'ephemeral-storage': '1Gi' } }),
  ], [['full', mkPod('x')], ['small', mkPod('y', { containers: [req('500m', '512Mi')] })]]);
  t.same(runFilter(new NodeResourcesFit(), mkPod('p', { containers: [{ name: 'c', resources: { requests: { cpu: '600m', memory: '600Mi', 'ephemeral-storage': '2Gi' } } }] }), c), {
    small: 'Insufficient cpu; Insufficient memory; Insufficient ephemeral-storage', full: 'Too many pods; Insufficient ephemeral-storage', big: 'Insufficient ephemeral-storage',
  }, 'NodeResourcesFit names every resource short, and pods');
  t.same(runFilter(new NodeResourcesFit(), mkPod('p', { containers: [req('500m', '512Mi')] }), c), { small: '', full: 'Too many pods', big: '' }, 'an exact fit fits');

  const tc = cluster([
    mkNode('tainted', { taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] }),
    mkNode('prefer', { taints: [{ key: 'soft', value: 'x', effect: 'PreferNoSchedule' }] }),
    mkNode('noexec', { taints: [{ key: 'gone', effect: 'NoExecute' }] }),
    mkNode('cordoned', { unschedulable: true }),
  ]);
  t.same(runFilter(new TaintToleration(), mkPod('p'), tc), { tainted: 'node(s) had untolerated taint {dedicated: gpu}', prefer: '', noexec: 'node(s) had untolerated taint {gone: }', cordoned: '' });
  t.same(runFilter(new TaintToleration(), mkPod('p', { tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }, { operator: 'Exists', effect: 'NoExecute' }] }), tc),
    { tainted: '', prefer: '', noexec: '', cordoned: '' }, 'tolerated taints');
  t.same(runFilter(new NodeUnschedulable(), mkPod('p'), tc).cordoned, 'node(s) were unschedulable');
  t.same(runFilter(new NodeUnschedulable(), mkPod('p', { tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }] }), tc).cordoned, '', 'tolerating the unschedulable taint');
  t.same(runFilter(new NodeName(), mkPod('p', { nodeName: 'prefer' }), tc), { tainted: "node(s) didn't match the requested node name", prefer: '', noexec: "node(s) didn't match the requested node name", cordoned: "node(s) didn't match the requested node name" });

  const lc = cluster([mkNode('a', { labels: { disk: 'ssd', gen: '5' } }), mkNode('b', { labels: { disk: 'hdd', gen: '3' } }), mkNode('c')]);
  const miss = "node(s) didn't match Pod's node affinity/selector";
  t.same(runFilter(new NodeAffinity(), mkPod('p', { nodeSelector: { disk: 'ssd' } }), lc), { a: '', b: miss, c: miss }, 'nodeSelector');
  const affinity = (exprs: unknown[]) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: exprs }] } } } });
  t.same(runFilter(new NodeAffinity(), mkPod('p', affinity([{ key: 'gen', operator: 'Gt', values: ['4'] }])), lc), { a: '', b: miss, c: miss }, 'Gt');
  t.same(runFilter(new NodeAffinity(), mkPod('p', affinity([{ key: 'disk', operator: 'DoesNotExist' }])), lc), { a: miss, b: miss, c: '' }, 'DoesNotExist');
  t.same(runFilter(new NodeAffinity(), mkPod('p', { ...affinity([{ key: 'disk', operator: 'In', values: ['ssd', 'hdd'] }]), nodeSelector: { gen: '3' } }), lc), { a: miss, b: '', c: miss }, 'nodeSelector and affinity both apply');

  const hp = (port: number, hostIP?: string, protocol?: string) => ({ name: 'c', ports: [{ containerPort: 80, hostPort: port, hostIP, protocol }] });
  const pc = cluster([mkNode('a'), mkNode('b')], [['a', mkPod('web', { containers: [hp(8080, '127.0.0.1')] })]]);
  const busy = "node(s) didn't have free ports for the requested pod ports";
  t.same(runFilter(new NodePorts(), mkPod('p', { containers: [hp(8080)] }), pc), { a: busy, b: '' }, '0.0.0.0 conflicts with any address');
  t.same(runFilter(new NodePorts(), mkPod('p', { containers: [hp(8080, '127.0.0.2')] }), pc), { a: '', b: '' }, 'another address is free');
  t.same(runFilter(new NodePorts(), mkPod('p', { containers: [hp(8080, '127.0.0.1', 'UDP')] }), pc), { a: '', b: '' }, 'another protocol is free');
});

t.test('InterPodAffinity filter', async (t) => {
  const zones = [mkNode('a1', { labels: { zone: 'a' } }), mkNode('a2', { labels: { zone: 'a' } }), mkNode('b1', { labels: { zone: 'b' } }), mkNode('nolabel')];
  const db = mkPod('db', {}, { labels: { app: 'db' } });
  const term = (app: string, key: string) => ({ labelSelector: { matchLabels: { app } }, topologyKey: key });
  const c = cluster(zones, [['a1', db]]);
  const anti = mkPod('p', { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term('db', 'zone')] } } });
  t.same(runFilter(new InterPodAffinity(), anti, c), { a1: "node(s) didn't match pod anti-affinity rules", a2: "node(s) didn't match pod anti-affinity rules", b1: '', nolabel: '' },
    'anti-affinity keeps the whole zone out; a node without the key is fine');
  const aff = mkPod('p', { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term('db', 'zone')] } } });
  t.same(runFilter(new InterPodAffinity(), aff, c), { a1: '', a2: '', b1: "node(s) didn't match pod affinity rules", nolabel: "node(s) didn't match pod affinity rules" }, 'affinity needs a match in the zone');
  const first = mkPod('first', { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term('web', 'zone')] } } }, { labels: { app: 'web' } });
  t.same(runFilter(new InterPodAffinity(), first, c), { a1: '', a2: '', b1: '', nolabel: "node(s) didn't match pod affinity rules" }, 'the first pod of a group matching its own term may go to any node with the key');
  const guard = mkPod('guard', { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term('web', 'kubernetes.io/hostname')] } } });
  const c2 = cluster(zones, [['b1', guard]]);
  t.same(runFilter(new InterPodAffinity(), mkPod('w', {}, { labels: { app: 'web' } }), c2), { a1: '', a2: '', b1: "node(s) didn't satisfy existing pods anti-affinity rules", nolabel: '' }, 'an existing pod\'s anti-affinity');
  const other = mkPod('w', {}, { labels: { app: 'web' }, namespace: 'other' });
  t.same(runFilter(new InterPodAffinity(), other, c2).b1, '', 'terms look in the pod\'s own namespace by default');
  // Selectors without a single required value (the cache's label index cannot narrow them).
  const exists = mkPod('e', { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchExpressions: [{ key: 'app', operator: 'Exists' }] }, topologyKey: 'zone' }] } } });
  t.same(runFilter(new InterPodAffinity(), exists, c), { a1: "node(s) didn't match pod anti-affinity rules", a2: "node(s) didn't match pod anti-affinity rules", b1: '', nolabel: '' }, 'an Exists selector');
  const guardIn = mkPod('guard', { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] }, topologyKey: 'zone' }] } } });
  t.same(runFilter(new InterPodAffinity(), mkPod('w', {}, { labels: { app: 'api' } }), cluster(zones, [['a2', guardIn]])),
    { a1: "node(s) didn't satisfy existing pods anti-affinity rules", a2: "node(s) didn't satisfy existing pods anti-affinity rules", b1: '', nolabel: '' }, 'an existing In term with two values');
});

t.test('PodTopologySpread filter: maxSkew, minDomains, missing labels', async (t) => {
  const nodes = [mkNode('a1', { labels: { zone: 'a' } }), mkNode('a2', { labels: { zone: 'a' } }), mkNode('b1', { labels: { zone: 'b' } }), mkNode('x')];
  const web = (n: string) => mkPod(n, {}, { labels: { app: 'web' } });
  const c = cluster(nodes, [['a1', web('w1')], ['a2', web('w2')], ['b1', web('w3')]]);
  const spread = (extra: Record<string, unknown> = {}) => mkPod('new', { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'DoNotSchedule', labelSelector: { matchLabels: { app: 'web' } }, ...extra }] }, { labels: { app: 'web' } });
  const skew = "node(s) didn't match pod topology spread constraints";
  t.same(runFilter(new PodTopologySpread(), spread(), c), { a1: skew, a2: skew, b1: '', x: `${skew} (missing required label)` }, 'zone a (2) + 1 − min 1 > 1; zone b (1) + 1 − 1 = 1');
  t.same(runFilter(new PodTopologySpread(), spread({ minDomains: 3 }), c), { a1: skew, a2: skew, b1: skew, x: `${skew} (missing required label)` }, 'fewer domains than minDomains: the minimum counts as 0');
  t.same(runFilter(new PodTopologySpread(), spread({ maxSkew: 2 }), c), { a1: '', a2: '', b1: '', x: `${skew} (missing required label)` });
});

t.test('scores: facts from kube-scheduler\'s plugin tests', async (t) => {
  // least_allocated_test / balanced_allocation_test: "nothing scheduled, resources requested, differently sized nodes".
  const c = cluster([mkNode('n1', { alloc: { cpu: '4', memory: '10000', pods: '110' } }), mkNode('n2', { alloc: { cpu: '6', memory: '10000', pods: '110' } })]);
  const pod = mkPod('p', { containers: [req('1', '2000'), req('2', '3000')] });
  t.same(runScore(new NodeResourcesFit(), pod, c), { n1: 37, n2: 50 }, 'LeastAllocated: cpu 25 and memory 50 → 37; 50 and 50 → 50');
  t.same(runScore(new BalancedAllocation(), pod, c), { n1: 87, n2: 100 }, 'BalancedAllocation: fractions 0.75/0.5 → 87; 0.5/0.5 → 100');
  t.same(runScore(new BalancedAllocation(), mkPod('be'), c), { n1: 0, n2: 0 }, 'a best-effort pod is not balanced');
  const empty = cluster([mkNode('n1', { alloc: { cpu: '4', memory: '10000', pods: '110' } })], [['n1', mkPod('q', { containers: [req('3', '5000')] })]]);
  t.same(runScore(new NodeResourcesFit(), mkPod('p'), empty), { n1: 11 }, 'LeastAllocated with the defaults for missing requests: cpu 3100/4000 → 22, memory 5000+200Mi > 10000 → 0; → 11');

  const tc = cluster([mkNode('none'), mkNode('one', { taints: [{ key: 'a', value: 'x', effect: 'PreferNoSchedule' }] }),
    mkNode('two', { taints: [{ key: 'a', value: 'x', effect: 'PreferNoSchedule' }, { key: 'b', value: 'y', effect: 'PreferNoSchedule' }] })]);
  t.same(runScore(new TaintToleration(), mkPod('p'), tc), { none: 100, one: 50, two: 0 }, 'TaintToleration: untolerated PreferNoSchedule taints, reversed');
  t.same(runScore(new TaintToleration(), mkPod('p', { tolerations: [{ key: 'b', operator: 'Exists', effect: 'PreferNoSchedule' }] }), tc), { none: 100, one: 0, two: 0 }, 'a tolerated one does not count');

  const lc = cluster([mkNode('plain'), mkNode('foo', { labels: { foo: 'bar' } }), mkNode('both', { labels: { foo: 'bar', key: 'value' } })]);
  const pref = (w: number, key: string, v: string) => ({ weight: w, preference: { matchExpressions: [{ key, operator: 'In', values: [v] }] } });
  t.same(runScore(new NodeAffinity(), mkPod('p', { affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [pref(2, 'foo', 'bar'), pref(4, 'key', 'value')] } } }), lc),
    { plain: 0, foo: 33, both: 100 }, 'NodeAffinity: matched weights 0, 2, 6 scaled to the best');

  const zc = cluster([mkNode('a1', { labels: { zone: 'a' } }), mkNode('b1', { labels: { zone: 'b' } }), mkNode('c1', { labels: { zone: 'c' } })],
    [['a1', mkPod('db1', {}, { labels: { app: 'db' } })], ['a1', mkPod('db2', {}, { labels: { app: 'db' } })], ['b1', mkPod('cache', {}, { labels: { app: 'cache' } })]]);
  const wterm = (w: number, app: string) => ({ weight: w, podAffinityTerm: { labelSelector: { matchLabels: { app } }, topologyKey: 'zone' } });
  t.same(runScore(new InterPodAffinity(), mkPod('p', { affinity: { podAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [wterm(5, 'db')] } } }), zc),
    { a1: 100, b1: 0, c1: 0 }, 'preferred affinity: weight per matching pod in the zone');
  t.same(runScore(new InterPodAffinity(), mkPod('p', { affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [wterm(5, 'db'), wterm(5, 'cache')] } } }), zc),
    { a1: 0, b1: 50, c1: 100 }, 'preferred anti-affinity: −10, −5, 0 scaled from the lowest to 0');
  t.same(runScore(new InterPodAffinity(), mkPod('p', { affinity: { podAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [wterm(4, 'db'), wterm(4, 'cache')] } } }), zc),
    { a1: 100, b1: 50, c1: 0 }, 'positive scores scale from 0, not from the lowest');
  const sym = cluster([mkNode('a1', { labels: { zone: 'a' } }), mkNode('b1', { labels: { zone: 'b' } })],
    [['b1', mkPod('likes-web', { affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: 'web' } }, topologyKey: 'zone' }] } } })]]);
  t.same(runScore(new InterPodAffinity(), mkPod('w', {}, { labels: { app: 'web' } }), sym), { a1: 0, b1: 100 }, 'an existing pod\'s required affinity to this pod attracts it (hardPodAffinityWeight)');
});

t.test('PodTopologySpread score: own soft constraints and the system defaults', async (t) => {
  const zone = (z: string) => ({ labels: { 'topology.kubernetes.io/zone': z } });
  const nodes = [mkNode('a1', zone('a')), mkNode('a2', zone('a')), mkNode('b1', zone('b'))];
  const web = (n: string, owner = true) => mkPod(n, {}, { labels: { app: 'web' }, ...(owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: 'rs', controller: true }] } : {}) });
  const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'web' } } } };
  const c = cluster(nodes, [['a1', web('w1')], ['a1', web('w2')], ['a2', web('w3')]], { replicasets: [rs] });
  // Hostname (maxSkew 3, weight log(3+2)) and zone (maxSkew 5, weight log(2+2)):
  // a1: 2·1.609+2 + 3·1.386+4 = 13.38 → 13; a2: 1.609+2 + 4.159+4 = 11.77 → 12; b1: 2 + 4 = 6.
  // Normalized 100·(13+6−s)/13: 46, 53, 100.
  t.same(runScore(new PodTopologySpread(), web('new'), c), { a1: 46, a2: 53, b1: 100 }, 'system defaults for a ReplicaSet\'s pod');
  t.same(runScore(new PodTopologySpread(), web('new', false), c), { a1: 0, a2: 0, b1: 0 }, 'no owner, no Service: no default spreading');
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { selector: { app: 'web' } } };
  const cs = cluster(nodes, [['a1', web('w1', false)]], { services: [svc] });
  // a1: 1.609+2 + 1.386+4 = 8.99 → 9; a2: 2 + 5.39 → 7; b1: 2 + 4 = 6 → 100·(15−s)/9: 66, 88, 100.
  t.same(runScore(new PodTopologySpread(), web('new', false), cs), { a1: 66, a2: 88, b1: 100 }, 'a Service selecting the pod spreads it');
  const noZones = cluster([mkNode('a1'), mkNode('a2')], [['a1', web('w1')], ['a1', web('w2')], ['a2', web('w3')]], { replicasets: [rs] });
  // Only hostname (weight log 4): a1: 2·1.386+2 = 4.77 → 5, a2: 3.39 → 3 → 100·(8−s)/5: 60, 100.
  t.same(runScore(new PodTopologySpread(), web('new'), noZones), { a1: 60, a2: 100 }, 'nodes without a zone label still spread by hostname under the system defaults');
  const own = mkPod('own', { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { app: 'web' } } }] }, { labels: { app: 'web' } });
  // zone a: 3 matching, b: 0; weight log(2+2): a: 3·1.386 = 4.16 → 4, b: 0 → normalized 100·(4+0−s)/4.
  t.same(runScore(new PodTopologySpread(), own, c), { a1: 0, a2: 0, b1: 100 }, 'the pod\'s own ScheduleAnyway constraint');
});

t.test('FitError message and the number of nodes searched', async (t) => {
  const r = (...reasons: string[]): Status => ({ code: 'Unschedulable', reasons });
  const m = new Map<string, Status>([['a', r('Insufficient cpu')], ['b', r('Insufficient cpu', 'Insufficient memory')], ['c', r('node(s) had untolerated taint {k: v}')]]);
  t.equal(fitErrorMessage(3, m), '0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu.', 'counted per reason, sorted as strings');
  const many = new Map<string, Status>([...Array(12).keys()].map((i) => [`n${i}`, r(i < 10 ? 'Insufficient cpu' : 'Too many pods')]));
  t.equal(fitErrorMessage(12, many), '0/12 nodes are available: 10 Insufficient cpu, 2 Too many pods.', 'string order: "10 …" before "2 …"');
  t.equal(fitErrorMessage(3, new Map(), r('pod has unbound immediate PersistentVolumeClaims')), '0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.', 'a PreFilter rejection');
  t.equal(fitErrorMessage(0, new Map()), '0/0 nodes are available:');
  const cases: [number, number][] = [[50, 50], [99, 99], [100, 100], [200, 100], [1000, 420], [5000, 500], [6000, 300]];
  for (const [n, want] of cases) t.equal(numFeasibleNodesToFind(n), want, `${n} nodes: stop after ${want} feasible`);
  t.equal(numFeasibleNodesToFind(1000, 100), 1000, 'percentageOfNodesToScore 100: all');
});

t.test('queue: priority order, back-off, unschedulable pods moved back by events', async (t) => {
  let now = 1000;
  const q = new SchedulingQueue({ now: () => now });
  q.add(mkPod('low', { priority: 0 }));
  now++;
  q.add(mkPod('high', { priority: 100 }));
  now++;
  q.add(mkPod('low2', { priority: 0 }));
  t.same([q.tryPop()!.info.pod.metadata.name, q.tryPop()!.info.pod.metadata.name, q.tryPop()!.info.pod.metadata.name], ['high', 'low', 'low2'], 'priority, then age');
  t.same([1, 2, 3, 4, 5, 6].map((a) => q.backoffMs(a)), [1000, 2000, 4000, 8000, 10_000, 10_000], 'back-off 1 s doubling to 10 s');

  const q2 = new SchedulingQueue({ now: () => now });
  q2.add(mkPod('p'));
  const qp = q2.tryPop()!;
  q2.requeue(qp, true);
  t.same(q2.counts(), { active: 0, backoff: 0, unschedulable: 1 }, 'unschedulable waits for an event');
  q2.flush();
  t.equal(q2.tryPop(), undefined);
  q2.moveAllToActiveOrBackoff();
  t.same(q2.counts(), { active: 0, backoff: 1, unschedulable: 0 }, 'an event moves it to backoffQ while its back-off lasts');
  now += 1000;
  q2.flush();
  const again = q2.tryPop()!;
  t.equal(again.attempts, 2, 'tried again after the back-off');
  q2.moveAllToActiveOrBackoff(); // an event during the attempt
  q2.requeue(again, true);
  t.same(q2.counts(), { active: 0, backoff: 1, unschedulable: 0 }, 'an event during the attempt: straight to backoffQ');
  q2.delete(again.info.key);
  t.same(q2.counts(), { active: 0, backoff: 0, unschedulable: 0 }, 'deleted');
});

t.test('cache: assumed pods count at once, forgotten on failure, confirmed or expired', async (t) => {
  const cache = new SchedulerCache(5000);
  cache.addOrUpdateNode(mkNode('n', { alloc: { cpu: '1', memory: '1Gi', pods: '10' } }));
  const p = new PodInfo(mkPod('p', { containers: [req('600m')] }));
  cache.assume(p, 'n');
  t.equal(cache.nodeInfo('n')!.requested.cpu, 600, 'assumed: counted');
  t.ok(cache.isAssumed(p.key));
  cache.forget(p.key);
  t.equal(cache.nodeInfo('n')!.requested.cpu, 0, 'forgotten: not counted');
  cache.assume(p, 'n');
  cache.finishBinding(p.key, 1000);
  cache.addOrUpdatePod({ ...p.pod, spec: { ...p.pod.spec!, nodeName: 'n' } });
  t.notOk(cache.isAssumed(p.key), 'confirmed by the event');
  t.same(cache.expire(10_000), [], 'a confirmed pod never expires');
  t.equal(cache.nodeInfo('n')!.requested.cpu, 600, 'counted once');
  const q = new PodInfo(mkPod('q', { containers: [req('100m')] }));
  cache.assume(q, 'n');
  cache.finishBinding(q.key, 1000);
  t.same(cache.expire(5999), []);
  t.same(cache.expire(6000), [q.key], 'expired once the TTL after its binding passed');
  t.equal(cache.nodeInfo('n')!.requested.cpu, 600);
});

t.test('algorithm: an assumed pod is seen by the next decision; unschedulable pods get a FitError', async (t) => {
  const c = cluster([mkNode('a', { alloc: { cpu: '1', memory: '1Gi', pods: '10' } }), mkNode('b', { alloc: { cpu: '1', memory: '1Gi', pods: '10' } })]);
  const alg = new Algorithm(defaultProfile());
  const placed: string[] = [];
  for (const name of ['p1', 'p2']) {
    const info = new PodInfo(mkPod(name, { containers: [req('600m')] }));
    const d = alg.schedule(info, c.view);
    c.cache.assume(info, d.node);
    placed.push(d.node);
  }
  t.same(placed.sort(), ['a', 'b'], 'the second pod does not land on the node the first was assumed on');
  try {
    alg.schedule(new PodInfo(mkPod('p3', { containers: [req('600m')] })), c.view);
    t.fail('p3 fits nowhere');
  } catch (e) {
    t.ok(e instanceof FitError);
    t.equal((e as Error).message, '0/2 nodes are available: 2 Insufficient cpu.');
  }
  const v = cluster([mkNode('a')], [], { persistentvolumeclaims: [{ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data', namespace: 'default' }, spec: { storageClassName: 'standard' } }] });
  const withClaim = mkPod('v', { volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'data' } }] });
  t.throws(() => alg.schedule(new PodInfo(withClaim), v.view), { message: '0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.' });
  const missing = mkPod('m', { volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'nope' } }] });
  t.throws(() => alg.schedule(new PodInfo(missing), v.view), { message: '0/1 nodes are available: persistentvolumeclaim "nope" not found.' });
});

t.test('VolumeBinding: a bound volume\'s node affinity, WaitForFirstConsumer claims', async (t) => {
  const hostAffinity = (n: string) => ({ required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [n] }] }] } });
  const objs = {
    persistentvolumeclaims: [
      { metadata: { name: 'bound', namespace: 'default' }, spec: { volumeName: 'pv-b' } },
      { metadata: { name: 'late', namespace: 'default' }, spec: { storageClassName: 'local', resources: { requests: { storage: '1Gi' } } } },
      { metadata: { name: 'prov', namespace: 'default' }, spec: { storageClassName: 'zoned' } },
    ],
    persistentvolumes: [
      { metadata: { name: 'pv-b' }, spec: { nodeAffinity: hostAffinity('b') } },
      { metadata: { name: 'pv-c' }, spec: { storageClassName: 'local', capacity: { storage: '2Gi' }, nodeAffinity: hostAffinity('c') } },
      { metadata: { name: 'pv-a-small' }, spec: { storageClassName: 'local', capacity: { storage: '500Mi' }, nodeAffinity: hostAffinity('a') } },
    ],
    storageclasses: [
      { metadata: { name: 'local' }, provisioner: 'kubernetes.io/no-provisioner', volumeBindingMode: 'WaitForFirstConsumer' },
      { metadata: { name: 'zoned' }, provisioner: 'flotilla.io/local-path', volumeBindingMode: 'WaitForFirstConsumer', allowedTopologies: [{ matchLabelExpressions: [{ key: 'zone', values: ['z1'] }] }] },
    ],
  } as unknown as Record<string, KubeObject[]>;
  const c = cluster([mkNode('a', { labels: { zone: 'z1' } }), mkNode('b'), mkNode('c', { labels: { zone: 'z1' } })], [], objs);
  const uses = (claim: string) => mkPod('p', { volumes: [{ name: 'v', persistentVolumeClaim: { claimName: claim } }] });
  t.same(runFilter(new VolumeBinding(), uses('bound'), c), { a: 'node(s) had volume node affinity conflict', b: '', c: 'node(s) had volume node affinity conflict' }, 'a bound claim\'s volume pins the pod');
  t.same(runFilter(new VolumeBinding(), uses('late'), c), { a: "node(s) didn't find available persistent volumes to bind", b: "node(s) didn't find available persistent volumes to bind", c: '' }, 'WaitForFirstConsumer without provisioner: a big enough volume reachable from the node');
  t.same(runFilter(new VolumeBinding(), uses('prov'), c), { a: '', b: 'node(s) had volume node affinity conflict', c: '' }, 'WaitForFirstConsumer with a provisioner: the class\'s allowedTopologies');
});

t.test('VolumeRestrictions: a ReadWriteOncePod claim serves one unfinished pod in the cluster', async (t) => {
  const objs = {
    persistentvolumeclaims: [
      { metadata: { name: 'once', namespace: 'default' }, spec: { accessModes: ['ReadWriteOncePod'], volumeName: 'pv-1' } },
      { metadata: { name: 'many', namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'], volumeName: 'pv-2' } },
    ],
  } as unknown as Record<string, KubeObject[]>;
  const uses = (name: string, claim: string, phase?: string) =>
    ({ ...mkPod(name, { volumes: [{ name: 'v', persistentVolumeClaim: { claimName: claim } }] }), ...(phase ? { status: { phase } } : {}) }) as Pod;
  const pre = (c: ReturnType<typeof cluster>, p: Pod) => {
    const r = new VolumeRestrictions().preFilter(new Map(), new PodInfo(p), c.view);
    return r === SKIP ? 'skip' : r ? `${r.code}: ${r.reasons.join('; ')}` : 'fits';
  };
  const empty = cluster([mkNode('a'), mkNode('b')], [], objs);
  t.equal(pre(empty, uses('first', 'once')), 'fits', 'the first pod using the claim fits');
  const busy = cluster([mkNode('a'), mkNode('b')], [['a', uses('first', 'once')], ['b', uses('other', 'many')]], objs);
  t.equal(pre(busy, uses('second', 'once')), 'UnschedulableAndUnresolvable: node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode', 'a second pod is refused everywhere');
  t.equal(pre(busy, uses('third', 'many')), 'skip', 'ReadWriteOnce claims are not restricted per pod');
  const done = cluster([mkNode('a')], [['a', uses('first', 'once', 'Succeeded')]], objs);
  t.equal(pre(done, uses('second', 'once')), 'fits', 'a finished pod does not hold the claim');
  const other = cluster([mkNode('a')], [['a', { ...uses('first', 'once'), metadata: { ...uses('first', 'once').metadata, namespace: 'elsewhere' } } as Pod]], objs);
  t.equal(pre(other, uses('second', 'once')), 'fits', 'a claim of the same name in another namespace is another claim');
});

t.test('VolumeZone: a bound volume\'s zone and region labels pin the pod', async (t) => {
  const objs = {
    persistentvolumeclaims: [
      { metadata: { name: 'z', namespace: 'default' }, spec: { volumeName: 'pv-z' } },
      { metadata: { name: 'multi', namespace: 'default' }, spec: { volumeName: 'pv-multi' } },
      { metadata: { name: 'plain', namespace: 'default' }, spec: { volumeName: 'pv-plain' } },
      { metadata: { name: 'unbound', namespace: 'default' }, spec: {} },
    ],
    persistentvolumes: [
      { metadata: { name: 'pv-z', labels: { 'topology.kubernetes.io/zone': 'z1', 'topology.kubernetes.io/region': 'r1' } } },
      { metadata: { name: 'pv-multi', labels: { 'failure-domain.beta.kubernetes.io/zone': 'z1__z2' } } },
      { metadata: { name: 'pv-plain' } },
    ],
  } as unknown as Record<string, KubeObject[]>;
  const c = cluster([
    mkNode('a', { labels: { 'topology.kubernetes.io/zone': 'z1', 'topology.kubernetes.io/region': 'r1' } }),
    mkNode('b', { labels: { 'topology.kubernetes.io/zone': 'z1', 'topology.kubernetes.io/region': 'r2' } }),
    mkNode('c', { labels: { 'failure-domain.beta.kubernetes.io/zone': 'z2' } }),
    mkNode('d'),
  ], [], objs);
  const uses = (claim: string) => mkPod('p', { volumes: [{ name: 'v', persistentVolumeClaim: { claimName: claim } }] });
  const no = 'node(s) had no available volume zone';
  t.same(runFilter(new VolumeZone(), uses('z'), c), { a: '', b: no, c: no, d: no }, 'zone and region must both match');
  t.same(runFilter(new VolumeZone(), uses('multi'), c), { a: no, b: no, c: '', d: no }, 'a "__"-joined value lists several zones');
  t.same(runFilter(new VolumeZone(), uses('plain'), c), { a: '', b: '', c: '', d: '' }, 'a volume without topology labels fits anywhere');
  t.same(runFilter(new VolumeZone(), uses('unbound'), c), { a: '', b: '', c: '', d: '' }, 'an unbound claim is left to VolumeBinding');
});

t.test('VolumeBinding PreBind: annotates the selected node, then waits for the claim to be bound', async (t) => {
  const claim = { metadata: { name: 'late', namespace: 'default' }, spec: { storageClassName: 'prov', resources: { requests: { storage: '1Gi' } } } } as any;
  const objs = {
    persistentvolumeclaims: [claim],
    storageclasses: [{ metadata: { name: 'prov' }, provisioner: 'flotilla.io/local-path', volumeBindingMode: 'WaitForFirstConsumer' }],
  } as unknown as Record<string, KubeObject[]>;
  const c = cluster([mkNode('a')], [], objs);
  const patches: unknown[] = [];
  const client = { patch: async (path: string, body: unknown) => { patches.push([path, body]); return {}; } } as never;
  const pod = new PodInfo(mkPod('p', { volumes: [{ name: 'v', persistentVolumeClaim: { claimName: 'late' } }] }));
  const vb = new VolumeBinding(client, { pollMs: 5, bindTimeoutMs: 60_000 });
  const state: CycleState = new Map();
  t.equal(vb.preFilter(state, pod, c.view), undefined);
  let done = false;
  const binding = vb.preBind(state, pod, 'a').then(() => { done = true; });
  await new Promise((r) => setTimeout(r, 50));
  t.equal(patches.length, 1, 'the claim got the selected-node annotation');
  t.match(patches[0], ['/api/v1/namespaces/default/persistentvolumeclaims/late', { metadata: { annotations: { 'volume.kubernetes.io/selected-node': 'a' } } }]);
  t.notOk(done, 'the binding waits while the claim is unbound');
  claim.spec.volumeName = 'pv-new';
  await binding;
  t.ok(done, 'and goes on once the claim is bound');

  claim.spec.volumeName = undefined;
  const quick = new VolumeBinding(client, { pollMs: 5, bindTimeoutMs: 30 });
  const s2: CycleState = new Map();
  quick.preFilter(s2, pod, c.view);
  await t.rejects(quick.preBind(s2, pod, 'a'), /timed out waiting for the condition \(claims not bound: late\)/, 'past the bind timeout the binding fails (the pod is retried)');
});

t.test('preemption: victims, the node chosen, budgets, and why it cannot help', async (t) => {
  const alg = new Algorithm(defaultProfile());
  const small = { alloc: { cpu: '2', memory: '8Gi', pods: '110' } };
  const low = (name: string, cpu: string, priority: number, start: string, labels: Record<string, string> = {}) =>
    mkPod(name, { priority, containers: [req(cpu)] }, { labels, creationTimestamp: start });
  const run = (c: ReturnType<typeof cluster>, pod: Pod, pdbs: KubeObject[] = []) => {
    const info = new PodInfo(pod);
    try {
      alg.schedule(info, c.view);
      return 'fits';
    } catch (e) {
      const r = new Preemptor(alg, c.cache).preempt(info, e as FitError, c.view, pdbs);
      return 'message' in r ? r.message : { node: r.candidate.node, victims: r.candidate.victims.map((v) => v.pod.metadata.name), pdb: r.candidate.pdbViolations };
    }
  };
  const high = (cpu = '1', extra: Spec = {}) => mkPod('high', { priority: 100, containers: [req(cpu)], ...extra });

  // One node, four 500m pods of priority 0: the pod needs 1 cpu → two victims; the earlier-started ones are reprieved first.
  const one = cluster([mkNode('a', small)], [
    ['a', low('p1', '500m', 0, '2026-01-01T00:00:01Z')], ['a', low('p2', '500m', 0, '2026-01-01T00:00:02Z')],
    ['a', low('p3', '500m', 0, '2026-01-01T00:00:03Z')], ['a', low('p4', '500m', 0, '2026-01-01T00:00:04Z')]]);
  t.same(run(one, high()), { node: 'a', victims: ['p3', 'p4'], pdb: 0 }, 'the fewest pods; the most recently started go');
  t.equal(one.cache.nodeInfo('a')!.pods.size, 4, 'the dry run leaves the cache as it was');
  t.equal(one.cache.nodeInfo('a')!.requested.cpu, 2000);

  // Lower-priority victims are preferred over fewer ones of higher priority.
  const two = cluster([mkNode('a', small), mkNode('b', small)], [
    ['a', low('a1', '2', 10, '2026-01-01T00:00:01Z')],
    ['b', low('b1', '1', 5, '2026-01-01T00:00:01Z')], ['b', low('b2', '1', 5, '2026-01-01T00:00:02Z')]]);
  t.same(run(two, high('2')), { node: 'b', victims: ['b1', 'b2'], pdb: 0 }, 'the node whose highest victim has the lowest priority');
  const three = cluster([mkNode('a', small), mkNode('b', small)], [
    ['a', low('a1', '1', 5, '2026-01-01T00:00:01Z')], ['a', low('a2', '1', 3, '2026-01-01T00:00:02Z')],
    ['b', low('b1', '1', 5, '2026-01-01T00:00:01Z')], ['b', low('b2', '1', 1, '2026-01-01T00:00:02Z')]]);
  t.same(run(three, high('2')), { node: 'b', victims: ['b1', 'b2'], pdb: 0 }, 'equal top victims: the smaller sum of priorities');
  const four = cluster([mkNode('a', small), mkNode('b', small)], [
    ['a', low('a1', '1', 5, '2026-01-01T00:00:01Z')], ['a', low('a2', '1', 5, '2026-01-01T00:00:02Z')],
    ['b', low('b1', '1', 5, '2026-01-01T00:00:01Z')], ['b', low('b2', '1', 50, '2026-01-01T00:00:02Z')]]);
  t.same(run(four, high()), { node: 'a', victims: ['a2'], pdb: 0 }, 'a full tie: the first node; the higher-priority pod is reprieved');

  // A PodDisruptionBudget that allows no disruption steers the choice.
  const budget = { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'db', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'db' } } }, status: { disruptionsAllowed: 0 } } as KubeObject;
  const pdbc = cluster([mkNode('a', small), mkNode('b', small)], [
    ['a', low('db-1', '2', 0, '2026-01-01T00:00:01Z', { app: 'db' })],
    ['b', low('web-1', '2', 1, '2026-01-01T00:00:01Z', { app: 'web' })]]);
  t.same(run(pdbc, high('2'), [budget]), { node: 'b', victims: ['web-1'], pdb: 0 }, 'a victim a budget protects is avoided, even at a higher priority');
  const onlyDb = cluster([mkNode('a', small)], [['a', low('db-1', '2', 0, '2026-01-01T00:00:01Z', { app: 'db' })]]);
  t.same(run(onlyDb, high('2'), [budget]), { node: 'a', victims: ['db-1'], pdb: 1 }, 'best effort: a budget does not forbid the only way');

  t.equal(run(one, high('1', { preemptionPolicy: 'Never' })), 'preemption: not eligible due to preemptionPolicy=Never.');
  const peers = cluster([mkNode('a', small)], [['a', low('same', '2', 100, '2026-01-01T00:00:01Z')]]);
  t.equal(run(peers, high()), 'preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.', 'equal priority is never a victim');
  const tainted = cluster([mkNode('a', { ...small, taints: [{ key: 'k', value: 'v', effect: 'NoSchedule' }] }), mkNode('b', small)],
    [['b', low('x', '2', 100, '2026-01-01T00:00:01Z')]]);
  t.equal(run(tainted, high()), 'preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.', 'a taint is not fixed by evicting pods');

  t.same(pickOne([
    { node: 'x', victims: [new PodInfo(low('v', '1', 5, ''))], pdbViolations: 0 },
    { node: 'y', victims: [new PodInfo(low('v', '1', 5, '')), new PodInfo(low('w', '1', 5, ''))], pdbViolations: 0 },
  ]).node, 'x', 'then the fewest victims (smaller sum of offset priorities)');
});

t.test('a pod nominated by preemption keeps its room from pods of lower priority', async (t) => {
  const c = cluster([mkNode('a', { alloc: { cpu: '2', memory: '8Gi', pods: '110' } })], [['a', mkPod('x', { containers: [req('1')] })]]);
  c.cache.nominate(new PodInfo(mkPod('nominee', { priority: 100, containers: [req('1')] })), 'a');
  const alg = new Algorithm(defaultProfile());
  t.throws(() => alg.schedule(new PodInfo(mkPod('lower', { priority: 10, containers: [req('1')] })), c.view), { message: '0/1 nodes are available: 1 Insufficient cpu.' }, 'a lower-priority pod does not take the nominated room');
  t.equal(alg.schedule(new PodInfo(mkPod('higher', { priority: 200, containers: [req('1')] })), c.view).node, 'a', 'a higher-priority pod may');
  c.cache.unnominate('default/nominee');
  t.equal(alg.schedule(new PodInfo(mkPod('lower', { priority: 10, containers: [req('1')] })), c.view).node, 'a', 'once the nomination is gone');
});
