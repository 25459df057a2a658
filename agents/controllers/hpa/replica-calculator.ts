// Kubernetes' HPA replica calculator, as pure functions over the pods and
// their latest metrics: desired = ceil(ready pods × usage / target) with a
// tolerance band; pods without metrics count as 0 % on a scale-up and as
// 100 % of their request (or the target) on a scale-down; pending pods, and
// for CPU pods that are not ready yet or were not measured for a whole window
// since they became ready, count as 0 % on a scale-up and are left out
// otherwise; a correction that would flip the direction of scaling cancels it.
import { parseQuantity } from '../../../api/schema/validate.ts';
import type { Pod } from '../../informer/types.ts';

/** One pod's usage, in milli-units (millicores, milli-bytes), as the metrics API reported it. */
export interface PodMetric {
  value: number;
  /** When it was measured (ms since the epoch) and over what window (ms). */
  timestamp: number;
  windowMs: number;
}

export type PodMetrics = Map<string, PodMetric>;

export interface CalculatorOptions {
  tolerance: number;
  cpuInitializationPeriodMs: number;
  initialReadinessDelayMs: number;
  now: number;
}

/** A quantity in milli-units, rounded up (Quantity.MilliValue). */
export function milliValue(q: string | number): number {
  return Math.ceil(Math.round(parseQuantity(q) * 1e9) / 1e6);
}

const time = (s: unknown) => (typeof s === 'string' ? Date.parse(s) : NaN);

export interface PodGroups {
  readyPodCount: number;
  /** Pods whose samples are not trusted (pending; for CPU: unready or still initialising). */
  ignored: Set<string>;
  /** Running pods the metrics API had nothing for. */
  missing: Set<string>;
}

/** groupPods: sorts the selected pods into counted, ignored and missing. Deleted and failed pods do not count at all. */
export function groupPods(pods: readonly Pod[], metrics: PodMetrics, resource: string, o: CalculatorOptions): PodGroups {
  const g: PodGroups = { readyPodCount: 0, ignored: new Set(), missing: new Set() };
  for (const pod of pods) {
    const name = pod.metadata.name;
    if (pod.metadata.deletionTimestamp || pod.status?.phase === 'Failed') continue;
    if (pod.status?.phase === 'Pending') {
      g.ignored.add(name);
      continue;
    }
    const metric = metrics.get(name);
    if (!metric) {
      g.missing.add(name);
      continue;
    }
    if (resource === 'cpu') {
      const ready = pod.status?.conditions?.find((c) => c.type === 'Ready');
      const start = time((pod.status as { startTime?: string } | undefined)?.startTime);
      let ignore: boolean;
      if (!ready || Number.isNaN(start)) {
        ignore = true;
      } else {
        const transition = time(ready.lastTransitionTime);
        if (start + o.cpuInitializationPeriodMs > o.now) {
          // Still initialising: a sample counts once the pod is ready and a whole window was measured since.
          ignore = ready.status === 'False' || metric.timestamp < (Number.isNaN(transition) ? 0 : transition) + metric.windowMs;
        } else {
          // Past initialisation: ignore only a pod that is unready and has never been ready.
          ignore = ready.status === 'False' && start + o.initialReadinessDelayMs > (Number.isNaN(transition) ? 0 : transition);
        }
      }
      if (ignore) {
        g.ignored.add(name);
        continue;
      }
    }
    g.readyPodCount++;
  }
  return g;
}

/**
 * Each pod's summed requests of `resource` (milli) over its containers and
 * sidecars (restartable init containers), or over the one named `container`;
 * throws when a counted container has none (utilization is undefined then).
 */
export function podRequests(pods: readonly Pod[], resource: string, container?: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const pod of pods) {
    let sum = 0;
    const sidecars = ((pod.spec?.initContainers ?? []) as { restartPolicy?: string }[]).filter((c) => c.restartPolicy === 'Always');
    for (const c of [...(pod.spec?.containers ?? []), ...sidecars] as NonNullable<Pod['spec']>['containers']) {
      if (container && c.name !== container) continue;
      const q = c.resources?.requests?.[resource];
      if (q === undefined) throw new Error(`missing request for ${resource} in container ${c.name} of Pod ${pod.metadata.name}`);
      sum += milliValue(q);
    }
    out.set(pod.metadata.name, sum);
  }
  return out;
}

/** GetResourceUtilizationRatio: integer percentage of the summed requests, its ratio to the target, and the average raw value. */
export function utilizationRatio(metrics: PodMetrics, requests: Map<string, number>, targetUtilization: number): { ratio: number; utilization: number; rawAverage: number } {
  let total = 0;
  let requested = 0;
  let n = 0;
  for (const [name, m] of metrics) {
    const r = requests.get(name);
    if (r === undefined) continue;
    total += m.value;
    requested += r;
    n++;
  }
  if (requested === 0) throw new Error('no metrics returned matched known pods');
  const utilization = Math.trunc((total * 100) / requested);
  return { ratio: utilization / targetUtilization, utilization, rawAverage: Math.trunc(total / n) };
}

/** GetMetricUtilizationRatio: the average value and its ratio to the target average. */
export function averageRatio(metrics: PodMetrics, targetAverage: number): { ratio: number; average: number } {
  let total = 0;
  for (const m of metrics.values()) total += m.value;
  const average = Math.trunc(total / metrics.size);
  return { ratio: average / targetAverage, average };
}

export interface ResourceReplicas {
  replicas: number;
  /** Utilization in percent of requests (Utilization targets). */
  utilization?: number;
  /** Average value per pod, milli-units. */
  rawAverage: number;
  /** The oldest sample's time (the metric's timestamp in status). */
  timestamp: number;
}

function commonChecks(pods: readonly Pod[]): void {
  if (!pods.length) throw new Error('no pods returned by selector while calculating replica count');
}

function oldest(metrics: PodMetrics): number {
  let t = Infinity;
  for (const m of metrics.values()) t = Math.min(t, m.timestamp);
  return Number.isFinite(t) ? t : 0;
}

/**
 * The replicas a Utilization target on `resource` asks for (GetResourceReplicas;
 * with `container`, GetContainerResourceReplicas: that container's requests).
 * `metrics` is every selected pod's sample; it is not modified.
 */
export function resourceUtilizationReplicas(
  currentReplicas: number, targetUtilization: number, resource: string, pods: readonly Pod[], metricsIn: PodMetrics, o: CalculatorOptions, container?: string,
): ResourceReplicas {
  commonChecks(pods);
  const metrics: PodMetrics = new Map(metricsIn);
  const timestamp = oldest(metrics);
  const { readyPodCount, ignored, missing } = groupPods(pods, metrics, resource, o);
  for (const n of ignored) metrics.delete(n);
  const requests = podRequests(pods, resource, container);
  if (!metrics.size) throw new Error('did not receive metrics for any ready pods');
  const first = utilizationRatio(metrics, requests, targetUtilization);
  const out = (replicas: number): ResourceReplicas => ({ replicas, utilization: first.utilization, rawAverage: first.rawAverage, timestamp });
  const rebalanceIgnored = ignored.size > 0 && first.ratio > 1;
  if (!rebalanceIgnored && !missing.size) {
    if (Math.abs(1 - first.ratio) <= o.tolerance) return out(currentReplicas);
    return out(Math.ceil(first.ratio * readyPodCount));
  }
  if (missing.size) {
    for (const n of missing) {
      if (first.ratio < 1) metrics.set(n, { value: requests.get(n) ?? 0, timestamp, windowMs: 0 });
      else if (first.ratio > 1) metrics.set(n, { value: 0, timestamp, windowMs: 0 });
    }
  }
  if (rebalanceIgnored) for (const n of ignored) metrics.set(n, { value: 0, timestamp, windowMs: 0 });
  const second = utilizationRatio(metrics, requests, targetUtilization).ratio;
  if (Math.abs(1 - second) <= o.tolerance || (first.ratio < 1 && second > 1) || (first.ratio > 1 && second < 1)) return out(currentReplicas);
  const replicas = Math.ceil(second * metrics.size);
  if ((second < 1 && replicas > currentReplicas) || (second > 1 && replicas < currentReplicas)) return out(currentReplicas);
  return out(replicas);
}

/**
 * The replicas an AverageValue target asks for (GetRawResourceReplicas /
 * calcPlainMetricReplicas); `targetAverage` in milli-units.
 */
export function averageValueReplicas(
  currentReplicas: number, targetAverage: number, resource: string, pods: readonly Pod[], metricsIn: PodMetrics, o: CalculatorOptions,
): ResourceReplicas {
  commonChecks(pods);
  const metrics: PodMetrics = new Map(metricsIn);
  const timestamp = oldest(metrics);
  const { readyPodCount, ignored, missing } = groupPods(pods, metrics, resource, o);
  for (const n of ignored) metrics.delete(n);
  if (!metrics.size) throw new Error('did not receive metrics for any ready pods');
  const first = averageRatio(metrics, targetAverage);
  const out = (replicas: number): ResourceReplicas => ({ replicas, rawAverage: first.average, timestamp });
  const rebalanceIgnored = ignored.size > 0 && first.ratio > 1;
  if (!rebalanceIgnored && !missing.size) {
    if (Math.abs(1 - first.ratio) <= o.tolerance) return out(currentReplicas);
    return out(Math.ceil(first.ratio * readyPodCount));
  }
  for (const n of missing) metrics.set(n, { value: first.ratio < 1 ? targetAverage : 0, timestamp, windowMs: 0 });
  if (rebalanceIgnored) for (const n of ignored) metrics.set(n, { value: 0, timestamp, windowMs: 0 });
  const second = averageRatio(metrics, targetAverage).ratio;
  if (Math.abs(1 - second) <= o.tolerance || (first.ratio < 1 && second > 1) || (first.ratio > 1 && second < 1)) return out(currentReplicas);
  return out(Math.ceil(second * metrics.size));
}
