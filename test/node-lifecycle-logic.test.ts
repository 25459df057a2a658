// Table tests of taint/toleration matching (api/taints.ts) and the node
// lifecycle controller's decisions (agents/controllers/nodelifecycle/health.ts).
import t from 'tap';
import {
  TokenBucket, applyNoExecute, noExecuteAction, observe, silentNodeConditions, withNoScheduleTaints, zoneKey, zoneRate, zoneState,
} from '../agents/controllers/nodelifecycle/health.ts';
import type { Lease, Node } from '../agents/informer/types.ts';
import { type Taint, type Toleration, evictionDeadline, findUntoleratedTaint, toleratesTaint } from '../api/taints.ts';

const UR = 'node.kubernetes.io/unreachable';
const NR = 'node.kubernetes.io/not-ready';
const T0 = Date.parse('2026-01-01T00:00:00Z');

t.test('toleratesTaint', async (t) => {
  const taint: Taint = { key: 'gpu', value: 'a100', effect: 'NoSchedule' };
  const cases: [string, Toleration, boolean][] = [
    ['Equal with the same value', { key: 'gpu', operator: 'Equal', value: 'a100', effect: 'NoSchedule' }, true],
    ['no operator means Equal', { key: 'gpu', value: 'a100' }, true],
    ['Equal with another value', { key: 'gpu', value: 'v100' }, false],
    ['Exists ignores the value', { key: 'gpu', operator: 'Exists' }, true],
    ['another key', { key: 'ssd', operator: 'Exists' }, false],
    ['another effect', { key: 'gpu', operator: 'Exists', effect: 'NoExecute' }, false],
    ['empty key with Exists tolerates every taint', { operator: 'Exists' }, true],
    ['an unknown operator tolerates nothing', { key: 'gpu', operator: 'Gt', value: 'a100' }, false],
  ];
  for (const [name, tol, want] of cases) t.equal(toleratesTaint(tol, taint), want, name);
  t.same(findUntoleratedTaint([taint, { key: 'x', effect: 'NoExecute' }], [{ key: 'gpu', operator: 'Exists' }]), { key: 'x', effect: 'NoExecute' });
  t.equal(findUntoleratedTaint([taint, { key: 'x', effect: 'PreferNoSchedule' }], [{ key: 'gpu', operator: 'Exists' }], (x) => x.effect !== 'PreferNoSchedule'), undefined, 'filtered taints do not count');
});

t.test('evictionDeadline', async (t) => {
  const at = (s: number) => new Date(T0 + s * 1000).toISOString();
  const now = T0 + 10_000;
  const ur = (added?: number): Taint => ({ key: UR, effect: 'NoExecute', ...(added !== undefined ? { timeAdded: at(added) } : {}) });
  const tol = (key: string | undefined, secs?: number): Toleration => ({ ...(key ? { key } : {}), operator: 'Exists', effect: 'NoExecute', ...(secs !== undefined ? { tolerationSeconds: secs } : {}) });
  const cases: [string, Taint[], Toleration[], number][] = [
    ['no NoExecute taints', [{ key: UR, effect: 'NoSchedule' }], [], Infinity],
    ['untolerated: now', [ur(0)], [], now],
    ['tolerated forever', [ur(0)], [tol(UR)], Infinity],
    ['tolerationSeconds from timeAdded', [ur(0)], [tol(UR, 300)], T0 + 300_000],
    ['deadline already past stays past', [ur(0)], [tol(UR, 5)], T0 + 5_000],
    ['no timeAdded: from now', [ur()], [tol(UR, 300)], now + 300_000],
    ['negative seconds count as 0', [ur(0)], [tol(UR, -5)], T0],
    ['the first matching toleration decides', [ur(0)], [tol(UR, 60), tol(undefined)], T0 + 60_000],
    ['a forever toleration first wins over a later bounded one', [ur(0)], [tol(undefined), tol(UR, 60)], Infinity],
    ['two taints: the earliest deadline', [ur(0), { key: NR, effect: 'NoExecute', timeAdded: at(2) }], [tol(UR, 300), tol(NR, 30)], T0 + 32_000],
    ['two taints, one untolerated: now', [ur(0), { key: 'x', effect: 'NoExecute' }], [tol(UR, 300)], now],
  ];
  for (const [name, taints, tols, want] of cases) t.equal(evictionDeadline(taints, tols, now), want, name);
});

const node = (o: { ready?: string; taints?: Taint[]; unschedulable?: boolean; labels?: Record<string, string>; conditions?: unknown[] } = {}): Node => ({
  apiVersion: 'v1', kind: 'Node',
  metadata: { name: 'n', creationTimestamp: '2025-12-31T00:00:00Z', labels: o.labels },
  spec: { taints: o.taints, unschedulable: o.unschedulable },
  status: { conditions: (o.conditions ?? (o.ready ? [{ type: 'Ready', status: o.ready, lastHeartbeatTime: '2026-01-01T00:00:00Z' }] : [])) as NonNullable<Node['status']>['conditions'] },
});

t.test('observe: signs of life are changes, timed by the controller', async (t) => {
  const lease = (renew: string): Lease => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'n' }, spec: { renewTime: renew } });
  const first = observe(undefined, node({ ready: 'True' }), lease('a'), 100);
  t.equal(first.at, 100, 'first sight: heard from now');
  t.equal(observe(first, node({ ready: 'True' }), lease('a'), 500).at, 100, 'same renewTime: nothing new');
  t.equal(observe(first, node({ ready: 'True' }), lease('b'), 500).at, 500, 'renewed: heard from now');
  const hb = node({ conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: 'later' }] });
  t.equal(observe(first, hb, lease('a'), 700).at, 700, 'a new status heartbeat counts too');
});

t.test('silent node conditions', async (t) => {
  const n = node({ conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: 'hb' }, { type: 'MemoryPressure', status: 'Unknown', reason: 'X' }, { type: 'NetworkUnavailable', status: 'False' }] });
  const c = silentNodeConditions(n, T0)!;
  t.match(c.find((x) => x.type === 'Ready'), { status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastHeartbeatTime: 'hb', lastTransitionTime: '2026-01-01T00:00:00Z' });
  t.match(c.find((x) => x.type === 'MemoryPressure'), { status: 'Unknown', reason: 'X' }, 'already Unknown: unchanged');
  t.match(c.find((x) => x.type === 'NetworkUnavailable'), { status: 'False' }, 'conditions the node agent does not own stay');
  t.match(c.find((x) => x.type === 'DiskPressure'), { status: 'Unknown', reason: 'NodeStatusNeverUpdated', message: 'Kubelet never posted node status.' });
  const again = { ...n, status: { conditions: c } };
  t.equal(silentNodeConditions(again, T0 + 1000), undefined, 'nothing more to change');
});

t.test('taints a node\'s state calls for', async (t) => {
  const keys = (ts: Taint[]) => ts.map((x) => `${x.key}:${x.effect}`);
  t.same(keys(withNoScheduleTaints(node({ ready: 'Unknown' }), [])), [`${UR}:NoSchedule`]);
  t.same(keys(withNoScheduleTaints(node({ ready: 'False' }), [{ key: UR, effect: 'NoSchedule' }])), [`${NR}:NoSchedule`], 'swapped');
  t.same(keys(withNoScheduleTaints(node({ ready: 'True', unschedulable: true }), [{ key: 'mine', effect: 'NoSchedule' }, { key: NR, effect: 'NoSchedule' }])),
    ['mine:NoSchedule', 'node.kubernetes.io/unschedulable:NoSchedule'], 'ready: lifecycle taints go, others stay; cordoned: unschedulable');
  const ne = (key: string, timeAdded = '2026-01-01T00:00:00Z'): Taint => ({ key, effect: 'NoExecute', timeAdded });
  const cases: [string, Node, Taint[], boolean, ReturnType<typeof noExecuteAction>][] = [
    ['ready, untainted', node({ ready: 'True' }), [], false, { kind: 'none' }],
    ['ready, tainted: remove', node({ ready: 'True' }), [ne(UR)], false, { kind: 'remove' }],
    ['unknown: add unreachable (rate-limited)', node({ ready: 'Unknown' }), [], false, { kind: 'add', key: UR }],
    ['never reported: unreachable', node({}), [], false, { kind: 'add', key: UR }],
    ['false: add not-ready', node({ ready: 'False' }), [], false, { kind: 'add', key: NR }],
    ['unknown with not-ready: swap at once', node({ ready: 'Unknown' }), [ne(NR)], false, { kind: 'swap', key: UR }],
    ['already right', node({ ready: 'Unknown' }), [ne(UR)], false, { kind: 'none' }],
    ['every zone down: lift', node({ ready: 'Unknown' }), [ne(UR)], true, { kind: 'remove' }],
    ['every zone down: do not add', node({ ready: 'Unknown' }), [], true, { kind: 'none' }],
  ];
  for (const [name, n, ts, suspend, want] of cases) t.same(noExecuteAction(n, ts, suspend), want, name);
  t.same(applyNoExecute([{ key: 'mine', effect: 'NoExecute' }, ne(NR, '2025-01-01T00:00:00Z')], { kind: 'swap', key: UR }, T0),
    [{ key: 'mine', effect: 'NoExecute' }, ne(UR, '2025-01-01T00:00:00Z')], 'a swap keeps when the node went bad');
  t.same(applyNoExecute([], { kind: 'add', key: UR }, T0 + 1500), [ne(UR, '2026-01-01T00:00:01Z')], 'added now (seconds)');
});

t.test('zones and eviction rates', async (t) => {
  t.equal(zoneKey(node({})), '');
  t.equal(zoneKey(node({ labels: { 'topology.kubernetes.io/region': 'r', 'topology.kubernetes.io/zone': 'z' } })), 'r:\u0000:z');
  const states: [string[], string][] = [
    [['True', 'True'], 'Normal'],
    [['Unknown'], 'FullDisruption'],
    [['False', 'Unknown'], 'FullDisruption'],
    [['True', 'Unknown', 'Unknown'], 'Normal'],
    [['True', 'Unknown', 'Unknown', 'False'], 'PartialDisruption'],
    [['True', 'True', 'Unknown', 'Unknown', 'False', 'True', 'True'], 'Normal'],
  ];
  for (const [s, want] of states) t.equal(zoneState(s, 0.55), want, s.join(','));
  const r = { normal: 0.1, secondary: 0.01, largeClusterThreshold: 50 };
  t.equal(zoneRate('Normal', 3, r), 0.1);
  t.equal(zoneRate('PartialDisruption', 10, r), 0, 'a small zone mostly down stops evicting');
  t.equal(zoneRate('PartialDisruption', 51, r), 0.01, 'a large one slows down');
  t.equal(zoneRate('FullDisruption', 10, r), 0.1);
  const b = new TokenBucket(0.1);
  t.ok(b.tryAccept(0), 'the first is at once');
  t.notOk(b.tryAccept(5_000), 'then one per 10 s');
  t.ok(b.tryAccept(10_000));
  b.setRate(0);
  t.notOk(b.tryAccept(100_000), 'rate 0: never');
  b.setRate(0.1);
  t.ok(b.tryAccept(100_001), 'restarted full');
});
