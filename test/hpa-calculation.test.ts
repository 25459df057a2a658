// The HPA's arithmetic without a cluster: the replica calculator checked
// against the numbers of Kubernetes' own replica_calculator_test.go cases
// (2 containers per pod, as there; levels in millicores per container), and
// stabilization and behavior policies checked against their documented rules.
import t from 'tap';
import {
  type ScalingHistory, newHistory, normalizeWithBehavior, normalizeWithoutBehavior, recordScaleEvent, scaleDownLimit, scaleUpLimit, withDefaults,
} from '../agents/controllers/hpa/normalize.ts';
import {
  type CalculatorOptions, type PodMetrics, averageValueReplicas, groupPods, milliValue, podRequests, resourceUtilizationReplicas,
} from '../agents/controllers/hpa/replica-calculator.ts';
import type { Pod } from '../agents/informer/types.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');
// Kubernetes' testing values: 2 min CPU initialization, 10 s initial readiness delay.
const OPTS: CalculatorOptions = { tolerance: 0.1, cpuInitializationPeriodMs: 120_000, initialReadinessDelayMs: 10_000, now: NOW };
const ZERO = '1970-01-01T00:00:00Z';
const HOT = new Date(NOW - 60_000).toISOString();
const COOL = new Date(NOW - 180_000).toISOString();
const CONTAINERS = 2;

interface Case {
  name: string;
  current: number;
  expected: number | RegExp;
  requests: string[];
  levels: number[];
  target: number;
  utilization?: number;
  value?: number;
  readiness?: ('True' | 'False')[];
  start?: string[];
  phase?: string[];
  deleting?: boolean[];
}

/** The pods and metrics of a Kubernetes test case: pod i has CONTAINERS containers requesting requests[i] and using levels[i] each. */
function fixture(c: Case): { pods: Pod[]; metrics: PodMetrics } {
  const n = Math.max(c.current, c.phase?.length ?? 0);
  const pods: Pod[] = [];
  for (let i = 0; i < n; i++) {
    const req = c.requests[i];
    pods.push({
      metadata: { name: `test-pod-${i}`, ...(c.deleting?.[i] ? { deletionTimestamp: new Date(NOW).toISOString() } : {}) },
      spec: { containers: Array.from({ length: CONTAINERS }, (_, k) => ({ name: `c${k}`, ...(req !== undefined ? { resources: { requests: { cpu: req } } } : {}) })) },
      status: { phase: c.phase?.[i] ?? 'Running', startTime: c.start?.[i] ?? ZERO, conditions: [{ type: 'Ready', status: c.readiness?.[i] ?? 'True' }] },
    } as Pod);
  }
  const metrics: PodMetrics = new Map();
  c.levels.forEach((l, i) => metrics.set(`test-pod-${i}`, { value: l * CONTAINERS, timestamp: 0, windowMs: 60_000 }));
  return { pods, metrics };
}

const ONE = ['1.0', '1.0', '1.0', '1.0', '1.0', '1.0', '1.0'];

const CASES: Case[] = [
  { name: 'ScaleUp', current: 3, expected: 5, requests: ONE, levels: [300, 500, 700], target: 30, utilization: 50, value: 2 * 500 },
  { name: 'ScaleUpUnreadyLessScale', current: 3, expected: 4, readiness: ['False', 'True', 'True'], requests: ONE, levels: [300, 500, 700], target: 30, utilization: 60, value: 2 * 600 },
  { name: 'ScaleUpHotCpuLessScale', current: 3, expected: 4, start: [HOT, COOL, COOL], requests: ONE, levels: [300, 500, 700], target: 30, utilization: 60, value: 2 * 600 },
  { name: 'ScaleUpUnreadyNoScale', current: 3, expected: 3, readiness: ['True', 'False', 'False'], requests: ONE, levels: [400, 500, 700], target: 30, utilization: 40, value: 2 * 400 },
  { name: 'ScaleHotCpuNoScale', current: 3, expected: 3, readiness: ['True', 'False', 'False'], start: [COOL, HOT, HOT], requests: ONE, levels: [400, 500, 700], target: 30, utilization: 40, value: 2 * 400 },
  { name: 'ScaleUpIgnoresFailedPods', current: 2, expected: 4, readiness: ['True', 'True', 'False', 'False'], phase: ['Running', 'Running', 'Failed', 'Failed'], requests: ONE, levels: [500, 700], target: 30, utilization: 60, value: 2 * 600 },
  { name: 'ScaleUpIgnoresDeletionPods', current: 2, expected: 4, readiness: ['True', 'True', 'False', 'False'], phase: ['Running', 'Running', 'Running', 'Running'], deleting: [false, false, true, true], requests: ONE, levels: [500, 700], target: 30, utilization: 60, value: 2 * 600 },
  { name: 'ScaleDown', current: 5, expected: 3, requests: ONE, levels: [100, 300, 500, 250, 250], target: 50, utilization: 28, value: 2 * 280 },
  { name: 'ScaleDownIncludeUnreadyPods', current: 5, expected: 2, readiness: ['True', 'True', 'True', 'False', 'False'], requests: ONE, levels: [100, 300, 500, 250, 250], target: 50, utilization: 30, value: 2 * 300 },
  { name: 'ScaleDownExcludeUnscheduledPods', current: 5, expected: 1, readiness: ['True', 'False', 'False', 'False', 'False'], phase: ['Running', 'Pending', 'Pending', 'Pending', 'Pending'], requests: ONE, levels: [100], target: 50, utilization: 10, value: 2 * 100 },
  { name: 'ScaleDownIgnoreHotCpuPods', current: 5, expected: 2, start: [COOL, COOL, COOL, HOT, HOT], requests: ONE, levels: [100, 300, 500, 250, 250], target: 50, utilization: 30, value: 2 * 300 },
  { name: 'ScaleDownIgnoresFailedPods', current: 5, expected: 3, readiness: ['True', 'True', 'True', 'True', 'True', 'False', 'False'], phase: ['Running', 'Running', 'Running', 'Running', 'Running', 'Failed', 'Failed'], requests: ONE, levels: [100, 300, 500, 250, 250], target: 50, utilization: 28, value: 2 * 280 },
  { name: 'Tolerance', current: 3, expected: 3, requests: ['0.9', '1.0', '1.1'], levels: [1010, 1030, 1020], target: 100, utilization: 102, value: 2 * 1020 },
  { name: 'SuperfluousMetrics', current: 4, expected: 24, requests: ONE.slice(0, 4), levels: [4000, 9500, 3000, 7000, 3200, 2000], target: 100, utilization: 587, value: 2 * 5875 },
  { name: 'MissingMetrics', current: 4, expected: 3, requests: ONE.slice(0, 4), levels: [400, 95], target: 100, utilization: 24, value: 495 },
  { name: 'MissingMetricsNoChangeEq', current: 2, expected: 2, requests: ONE.slice(0, 2), levels: [1000], target: 100, utilization: 100, value: 2 * 1000 },
  { name: 'MissingMetricsNoChangeGt', current: 2, expected: 2, requests: ONE.slice(0, 2), levels: [1900], target: 100, utilization: 190, value: 2 * 1900 },
  { name: 'MissingMetricsNoChangeLt', current: 2, expected: 2, requests: ONE.slice(0, 2), levels: [600], target: 100, utilization: 60, value: 2 * 600 },
  { name: 'MissingMetricsUnreadyChange', current: 3, expected: 3, readiness: ['False', 'True', 'True'], requests: ONE, levels: [100, 450], target: 50, utilization: 45, value: 2 * 450 },
  { name: 'MissingMetricsHotCpuNoChange', current: 3, expected: 3, start: [HOT, COOL, COOL], requests: ONE, levels: [100, 450], target: 50, utilization: 45, value: 2 * 450 },
  { name: 'MissingMetricsUnreadyScaleUp', current: 3, expected: 4, readiness: ['False', 'True', 'True'], requests: ONE, levels: [100, 2000], target: 50, utilization: 200, value: 2 * 2000 },
  { name: 'MissingMetricsHotCpuScaleUp', current: 3, expected: 4, readiness: ['False', 'True', 'True'], start: [HOT, COOL, COOL], requests: ONE, levels: [100, 2000], target: 50, utilization: 200, value: 2 * 2000 },
  { name: 'MissingMetricsUnreadyScaleDown', current: 4, expected: 3, readiness: ['False', 'True', 'True', 'True'], requests: ONE, levels: [100, 100, 100], target: 50, utilization: 10, value: 2 * 100 },
  { name: 'DuringRollingUpdateWithMaxSurge', current: 2, expected: 2, phase: ['Running', 'Running', 'Running'], requests: ONE, levels: [100, 100], target: 50, utilization: 10, value: 2 * 100 },
  { name: 'EmptyCPURequest', current: 1, expected: /missing request for cpu/, requests: [], levels: [200], target: 100 },
];

t.test('resource utilization replicas (Kubernetes\' TestReplicaCalc* cases)', async (t) => {
  for (const c of CASES) {
    const { pods, metrics } = fixture(c);
    if (c.expected instanceof RegExp) {
      t.throws(() => resourceUtilizationReplicas(c.current, c.target, 'cpu', pods, metrics, OPTS), c.expected, c.name);
      continue;
    }
    const r = resourceUtilizationReplicas(c.current, c.target, 'cpu', pods, metrics, OPTS);
    t.same({ replicas: r.replicas, utilization: r.utilization, value: r.rawAverage }, { replicas: c.expected, utilization: c.utilization, value: c.value }, c.name);
  }
  t.throws(() => resourceUtilizationReplicas(3, 50, 'cpu', [], new Map(), OPTS), /no pods returned by selector/);
  const { pods } = fixture({ name: '', current: 2, expected: 0, requests: ONE, levels: [], target: 50, readiness: ['False', 'False'] });
  t.throws(() => resourceUtilizationReplicas(2, 50, 'cpu', pods, new Map([['test-pod-0', { value: 1, timestamp: 0, windowMs: 60_000 }]]), OPTS), /did not receive metrics for any ready pods/);
});

t.test('container resource: one container\'s requests; sidecars count for the pod', async (t) => {
  const p = {
    metadata: { name: 'p' },
    spec: {
      containers: [{ name: 'app', resources: { requests: { cpu: '200m' } } }, { name: 'proxy', resources: { requests: { cpu: '100m' } } }],
      initContainers: [{ name: 'setup', resources: { requests: { cpu: '1' } } }, { name: 'log', restartPolicy: 'Always', resources: { requests: { cpu: '50m' } } }],
    },
    status: { phase: 'Running', startTime: ZERO, conditions: [{ type: 'Ready', status: 'True' }] },
  } as unknown as Pod;
  t.same([...podRequests([p], 'cpu')], [['p', 350]], 'app + proxy + the sidecar, not the plain init container');
  t.same([...podRequests([p], 'cpu', 'app')], [['p', 200]], 'only the named container');
  const noReq = { ...p, spec: { containers: [{ name: 'app' }] } } as unknown as Pod;
  t.throws(() => podRequests([noReq], 'cpu', 'app'), /missing request for cpu in container app of Pod p/);
  // 300m used by "app" of 200m requested: 150 % against 50 % → ceil(3 × 1) = 3.
  const r = resourceUtilizationReplicas(1, 50, 'cpu', [p], new Map([['p', { value: 300, timestamp: 0, windowMs: 60_000 }]]), OPTS, 'app');
  t.same({ replicas: r.replicas, utilization: r.utilization }, { replicas: 3, utilization: 150 });
});

t.test('average value replicas (calcPlainMetricReplicas, as the CM cases)', async (t) => {
  const plain = (current: number, levels: number[], target: number, readiness?: ('True' | 'False')[], start?: string[]) => {
    const pods: Pod[] = levels.map((_, i) => ({
      metadata: { name: `p${i}` }, spec: { containers: [{ name: 'c' }] },
      status: { phase: 'Running', startTime: start?.[i] ?? ZERO, conditions: [{ type: 'Ready', status: readiness?.[i] ?? 'True' }] },
    } as Pod));
    const metrics: PodMetrics = new Map(levels.map((l, i) => [`p${i}`, { value: l, timestamp: 0, windowMs: 60_000 }]));
    // Custom metrics are not CPU: readiness does not exclude pods.
    return averageValueReplicas(current, target, 'qps', pods, metrics, OPTS);
  };
  t.same(plain(3, [20000, 10000, 30000], 15000), { replicas: 4, rawAverage: 20000, timestamp: 0 }, 'ScaleUpCM');
  t.equal(plain(5, [12000, 12000, 12000, 12000, 12000], 20000).replicas, 3, 'ScaleDownCM');
  t.same(plain(3, [20000, 21000, 21000], 20000), { replicas: 3, rawAverage: 20666, timestamp: 0 }, 'ToleranceCM');
  t.equal(plain(3, [50000, 10000, 30000], 15000, ['True', 'True', 'False'], [COOL, COOL, HOT]).replicas, 6, 'ScaleUpCMUnreadyHotCpuNoLessScale');
  t.equal(plain(3, [50000, 15000, 30000], 15000, ['False', 'True', 'False'], [HOT, COOL, HOT]).replicas, 7, 'ScaleUpCMUnreadyHotCpuScaleWouldScaleDown');
});

t.test('groupPods', async (t) => {
  const pod = (name: string, status: Record<string, unknown>) => ({ metadata: { name }, spec: { containers: [] }, status } as unknown as Pod);
  const fresh = { value: 1, timestamp: NOW, windowMs: 30_000 };
  const g = (pods: Pod[], metrics: PodMetrics, res = 'cpu') => {
    const r = groupPods(pods, metrics, res, OPTS);
    return { ready: r.readyPodCount, ignored: [...r.ignored], missing: [...r.missing] };
  };
  t.same(g([pod('bentham', { phase: 'Succeeded' })], new Map([['bentham', fresh]]), 'memory'), { ready: 1, ignored: [], missing: [] }, 'memory counts any pod with a metric');
  t.same(g([pod('lucretius', { phase: 'Succeeded', startTime: new Date(NOW).toISOString() })], new Map([['lucretius', fresh]])), { ready: 0, ignored: ['lucretius'], missing: [] }, 'no Ready condition: ignored for CPU');
  const initialising = (transitionAgo: number, ready = 'True') => pod('bentham', {
    phase: 'Succeeded', startTime: new Date(NOW - 60_000).toISOString(), conditions: [{ type: 'Ready', status: ready, lastTransitionTime: new Date(NOW - transitionAgo).toISOString() }],
  });
  t.same(g([initialising(30_000)], new Map([['bentham', fresh]])), { ready: 1, ignored: [], missing: [] }, 'ready, a whole window measured since: counted');
  t.same(g([initialising(30_000)], new Map([['bentham', { ...fresh, timestamp: NOW - 1000 }]])), { ready: 0, ignored: ['bentham'], missing: [] }, 'ready, but the sample window began before readiness: ignored');
  t.same(g([initialising(30_000, 'False')], new Map([['bentham', fresh]])), { ready: 0, ignored: ['bentham'], missing: [] }, 'unready while initialising: ignored');
  t.same(g([pod('x', { phase: 'Running', startTime: COOL, conditions: [{ type: 'Ready', status: 'True' }] })], new Map()), { ready: 0, ignored: [], missing: ['x'] }, 'no metric: missing');
  t.same(g([pod('x', { phase: 'Pending' })], new Map()), { ready: 0, ignored: ['x'], missing: [] }, 'pending: ignored');
  t.same(g([pod('x', { phase: 'Failed' })], new Map()), { ready: 0, ignored: [], missing: [] }, 'failed: not counted at all');
  t.equal(milliValue('250m'), 250);
  t.equal(milliValue('1.5'), 1500);
  t.equal(milliValue('64Mi'), 64 * 1024 * 1024 * 1000);
});

t.test('behavior: rate limits of the policies', async (t) => {
  const b = withDefaults({}, 300);
  const h = newHistory();
  t.equal(scaleUpLimit(1, h, b.scaleUp, NOW), 5, 'default scale-up from 1: max(1 + 4 pods, 1 × 200 %) = 5');
  t.equal(scaleUpLimit(10, h, b.scaleUp, NOW), 20, 'default scale-up from 10: max(14, 20) = 20');
  t.equal(scaleDownLimit(10, h, b.scaleDown, NOW), 0, 'default scale-down: 100 % per 15 s');
  const up: ScalingHistory = { ...newHistory(), scaleUpEvents: [{ at: NOW - 10_000, change: 5 }] };
  t.equal(scaleUpLimit(10, up, b.scaleUp, NOW), 10, 'scaled from 5 to 10 within the period: the period started at 5, so at most max(9, 10)');
  const old: ScalingHistory = { ...newHistory(), scaleUpEvents: [{ at: NOW - 20_000, change: 5 }] };
  t.equal(scaleUpLimit(10, old, b.scaleUp, NOW), 20, 'an event older than the period does not count');
  const rules = withDefaults({ scaleDown: { selectPolicy: 'Min', policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }, { type: 'Percent', value: 50, periodSeconds: 60 }] } }, 300);
  t.equal(scaleDownLimit(10, newHistory(), rules.scaleDown, NOW), 9, 'selectPolicy Min on scale-down picks the smaller change (9, not 5)');
  const max = withDefaults({ scaleDown: { policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }, { type: 'Percent', value: 50, periodSeconds: 60 }] } }, 300);
  t.equal(scaleDownLimit(10, newHistory(), max.scaleDown, NOW), 5, 'selectPolicy Max picks the larger change');
  const disabled = withDefaults({ scaleUp: { selectPolicy: 'Disabled' } }, 300);
  t.equal(scaleUpLimit(3, newHistory(), disabled.scaleUp, NOW), 3, 'Disabled: no change');
});

t.test('behavior: stabilization and limits together', async (t) => {
  const b = withDefaults({}, 300);
  let h = newHistory();
  let n = normalizeWithBehavior(h, 1, 10, 1, 100, b, NOW);
  t.same({ r: n.replicas, limited: n.scalingLimited.reason }, { r: 5, limited: 'ScaleUpLimit' }, 'scale-up from 1 to 10 is limited to 5');
  recordScaleEvent(h, b, 1, 5, NOW);
  n = normalizeWithBehavior(h, 5, 10, 1, 100, b, NOW + 5000);
  t.equal(n.replicas, 5, 'within the same 15 s period no more pods are added (the period started at 1: max(1+4, 2) = 5)');
  n = normalizeWithBehavior(h, 5, 10, 1, 100, b, NOW + 16_000);
  t.equal(n.replicas, 10, 'the next period allows the rest');

  h = newHistory();
  normalizeWithBehavior(h, 10, 10, 1, 100, b, NOW - 100_000);
  n = normalizeWithBehavior(h, 10, 3, 1, 100, b, NOW);
  t.same({ r: n.replicas, able: n.ableToScale.reason }, { r: 10, able: 'ScaleDownStabilized' }, 'a recommendation of 10 within the 300 s window holds a scale-down');
  n = normalizeWithBehavior(h, 10, 3, 1, 100, b, NOW + 201_000);
  t.same({ r: n.replicas, able: n.ableToScale.reason }, { r: 3, able: 'ReadyForNewScale' }, 'once it left the window, the scale-down happens');
  n = normalizeWithBehavior(newHistory(), 10, 0, 2, 100, b, NOW);
  t.same({ r: n.replicas, limited: n.scalingLimited.reason }, { r: 2, limited: 'TooFewReplicas' }, 'min replicas');
  n = normalizeWithBehavior(newHistory(), 10, 50, 1, 12, b, NOW);
  t.same({ r: n.replicas, limited: n.scalingLimited.reason }, { r: 12, limited: 'TooManyReplicas' }, 'max replicas');
  const upWindow = withDefaults({ scaleUp: { stabilizationWindowSeconds: 60 } }, 300);
  h = newHistory();
  normalizeWithBehavior(h, 2, 2, 1, 100, upWindow, NOW - 30_000);
  n = normalizeWithBehavior(h, 2, 6, 1, 100, upWindow, NOW);
  t.same({ r: n.replicas, able: n.ableToScale.reason }, { r: 2, able: 'ScaleUpStabilized' }, 'a scale-up window holds the lowest recent recommendation');
});

t.test('without spec.behavior: scale-down stabilization and max(2 × current, 4)', async (t) => {
  let n = normalizeWithoutBehavior(newHistory(), 3, 20, 1, 100, 300, NOW);
  t.same({ r: n.replicas, limited: n.scalingLimited.reason }, { r: 6, limited: 'ScaleUpLimit' });
  n = normalizeWithoutBehavior(newHistory(), 1, 20, 1, 100, 300, NOW);
  t.equal(n.replicas, 4, 'at least 4');
  const h = newHistory();
  normalizeWithoutBehavior(h, 6, 6, 1, 100, 300, NOW - 299_000);
  t.equal(normalizeWithoutBehavior(h, 6, 2, 1, 100, 300, NOW).replicas, 6, 'held by the recommendation 299 s ago');
  t.equal(normalizeWithoutBehavior(h, 6, 2, 1, 100, 300, NOW + 2000).replicas, 2, 'released after 300 s');
});
