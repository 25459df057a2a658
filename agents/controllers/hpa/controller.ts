// The horizontal-pod-autoscaler controller: every sync period, for each HPA,
// reads the target's /scale, the selected pods (cache) and their usage
// (metrics.k8s.io), computes the replicas each metric asks for
// (replica-calculator.ts), stabilizes and rate-limits the largest
// (normalize.ts), writes /scale when it changes, and reports status,
// conditions and Events as Kubernetes does.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { kindForObject } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { KubeObject, Pod } from '../../informer/types.ts';
import { METRICS_GROUP, METRICS_VERSION } from '../../../api/metrics.ts';
import { matchesLabels, parseLabelSelector } from '../../../api/selectors.ts';
import { parseDuration } from '../../../api/units.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import {
  type Behavior, type Condition, type ScalingHistory, newHistory, normalizeWithBehavior, normalizeWithoutBehavior, recordScaleEvent, withDefaults,
} from './normalize.ts';
import { type CalculatorOptions, type PodMetrics, averageValueReplicas, milliValue, resourceUtilizationReplicas } from './replica-calculator.ts';

const HPAS = { group: 'autoscaling', version: 'v2', plural: 'horizontalpodautoscalers', namespaced: true };

interface MetricTarget { type: string; averageUtilization?: number; averageValue?: string; value?: string }
interface MetricSpec {
  type: string;
  resource?: { name: string; target: MetricTarget };
  containerResource?: { name: string; container: string; target: MetricTarget };
  [k: string]: unknown;
}

export interface HorizontalPodAutoscaler extends KubeObject {
  metadata: { name: string; namespace?: string; generation?: number; [k: string]: unknown };
  spec: {
    scaleTargetRef: { kind: string; name: string; apiVersion?: string };
    minReplicas?: number;
    maxReplicas: number;
    metrics?: MetricSpec[];
    behavior?: Behavior;
  };
  status?: {
    observedGeneration?: number;
    lastScaleTime?: string;
    currentReplicas?: number;
    desiredReplicas?: number;
    currentMetrics?: unknown[];
    conditions?: { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[];
  };
}

interface Scale extends KubeObject {
  spec?: { replicas?: number };
  status?: { replicas?: number; selector?: string };
}

interface PodMetricsItem {
  metadata: { name: string };
  timestamp: string;
  window: string;
  containers: { name: string; usage: Record<string, string> }[];
}

/** Milli-units as a quantity: "250m", or whole units when exact. */
export const formatMilli = (n: number): string => (n % 1000 === 0 ? String(n / 1000) : `${n}m`);

/** Sets a condition, keeping lastTransitionTime when the status does not change (setConditionInList). */
export function setCondition(
  conds: NonNullable<NonNullable<HorizontalPodAutoscaler['status']>['conditions']>, type: string, c: Condition, now: string,
): void {
  const existing = conds.find((x) => x.type === type);
  if (!existing) {
    conds.push({ type, status: c.status, lastTransitionTime: now, reason: c.reason, message: c.message });
    return;
  }
  if (existing.status !== c.status) existing.lastTransitionTime = now;
  existing.status = c.status;
  existing.reason = c.reason;
  existing.message = c.message;
}

class MetricError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

export class HorizontalPodAutoscalerController extends QueueController {
  private readonly hpas: Informer<HorizontalPodAutoscaler>;
  private readonly pods: Informer<Pod>;
  private readonly history = new Map<string, ScalingHistory>();

  constructor(ctx: ControllerContext) {
    super(ctx, 'horizontal-pod-autoscaler');
    this.hpas = ctx.informers.informer<HorizontalPodAutoscaler>('horizontalpodautoscalers');
    this.pods = ctx.informers.informer<Pod>('pods');
    this.handle(this.hpas, {
      onAdd: (h) => this.enqueue(h),
      // Our own status writes do not change the generation: only spec changes call for an evaluation now.
      onUpdate: (o, h) => {
        if (o.metadata.generation !== h.metadata.generation) this.enqueue(h);
      },
      onDelete: (h) => this.history.delete(`${h.metadata.namespace}/${h.metadata.name}`),
    });
  }

  protected async reconcile(key: string): Promise<void> {
    const [ns, name] = key.split('/');
    const cached = this.hpas.get(ns, name);
    if (!cached) {
      this.history.delete(key);
      return;
    }
    try {
      await this.reconcileAutoscaler(key, structuredClone(cached));
    } finally {
      // Level-triggered on a clock: every HPA is looked at again after the sync period.
      if (this.hpas.get(ns, name)) this.enqueueAfter(key, this.ctx.config.hpaSyncPeriodMs);
    }
  }

  private calculatorOptions(): CalculatorOptions {
    const c = this.ctx.config;
    return { tolerance: c.hpaTolerance, cpuInitializationPeriodMs: c.hpaCpuInitializationPeriodMs, initialReadinessDelayMs: c.hpaInitialReadinessDelayMs, now: this.ctx.now() };
  }

  private async reconcileAutoscaler(key: string, hpa: HorizontalPodAutoscaler): Promise<void> {
    const ns = hpa.metadata.namespace ?? 'default';
    const now = this.ctx.now();
    const nowIso = new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
    const original = JSON.stringify(hpa.status ?? {});
    const status = (hpa.status ??= {});
    const conds = (status.conditions ??= []);
    const ref = hpa.spec.scaleTargetRef;
    const reference = `${ref.kind}/${ref.name}`;
    const kind = kindForObject(ref.apiVersion ?? '', ref.kind);
    let scale: Scale | undefined;
    let scalePath = '';
    try {
      if (!kind?.scale) throw new Error(`${ref.apiVersion ?? ''} ${ref.kind} is not a kind with a scale subresource`);
      scalePath = resourcePath(kind, ns, ref.name, 'scale');
      scale = await this.ctx.client.get<Scale>(scalePath);
    } catch (e) {
      const message = `the HPA controller was unable to get the target's current scale: ${(e as Error).message}`;
      this.recorder.event(hpa, 'Warning', 'FailedGetScale', (e as Error).message);
      setCondition(conds, 'AbleToScale', { status: 'False', reason: 'FailedGetScale', message }, nowIso);
      await this.writeStatus(hpa, original);
      if (e instanceof ApiClientError && e.code !== 404) throw e;
      return;
    }
    setCondition(conds, 'AbleToScale', { status: 'True', reason: 'SucceededGetScale', message: 'the HPA controller was able to get the target\'s current scale' }, nowIso);
    // Kubernetes' "current" is the replicas asked for (scale.spec), not those that exist yet.
    const currentReplicas = scale.spec?.replicas ?? 0;
    const minReplicas = hpa.spec.minReplicas ?? 1;
    const maxReplicas = hpa.spec.maxReplicas;
    let desired = 0;
    let rescale = false;
    let reason = '';
    let metricStatuses: unknown[] = status.currentMetrics ?? [];
    const behavior = hpa.spec.behavior ? withDefaults(hpa.spec.behavior, this.ctx.config.hpaDownscaleStabilizationMs / 1000) : undefined;
    let history = this.history.get(key);
    if (!history) {
      // recordInitialRecommendation: the size found at first sight counts as a recommendation, so a
      // scale-down right after the HPA appears waits out the window like any other.
      history = newHistory();
      history.recommendations.push({ at: now, replicas: currentReplicas });
      this.history.set(key, history);
    }

    if ((scale.spec?.replicas ?? 0) === 0 && minReplicas !== 0) {
      setCondition(conds, 'ScalingActive', { status: 'False', reason: 'ScalingDisabled', message: 'scaling is disabled since the replica count of the target is zero' }, nowIso);
    } else if (currentReplicas > maxReplicas) {
      reason = 'Current number of replicas above Spec.MaxReplicas';
      desired = maxReplicas;
    } else if (currentReplicas < minReplicas) {
      reason = 'Current number of replicas below Spec.MinReplicas';
      desired = minReplicas;
    } else {
      const computed = await this.computeReplicasForMetrics(hpa, scale, currentReplicas, nowIso);
      metricStatuses = computed.statuses;
      if (computed.replicas === -1) {
        status.currentReplicas = currentReplicas;
        status.currentMetrics = metricStatuses;
        status.desiredReplicas ??= currentReplicas;
        await this.writeStatus(hpa, original);
        this.recorder.event(hpa, 'Warning', 'FailedComputeMetricsReplicas', computed.error!);
        this.log.info({ hpa: key, err: computed.error }, `failed to compute desired number of replicas based on listed metrics for ${reference}`);
        return;
      }
      desired = computed.replicas;
      if (desired > currentReplicas) reason = `${computed.metric} above target`;
      if (desired < currentReplicas) reason = 'All metrics below target';
      const n = behavior
        ? normalizeWithBehavior(history, currentReplicas, desired, minReplicas, maxReplicas, behavior, now)
        : normalizeWithoutBehavior(history, currentReplicas, desired, minReplicas, maxReplicas, this.ctx.config.hpaDownscaleStabilizationMs / 1000, now);
      setCondition(conds, 'AbleToScale', n.ableToScale, nowIso);
      setCondition(conds, 'ScalingLimited', n.scalingLimited, nowIso);
      desired = n.replicas;
    }
    rescale = desired !== currentReplicas && !(scale.spec?.replicas === 0 && minReplicas !== 0);
    if (rescale) {
      try {
        await this.ctx.client.update(scalePath, { ...scale, spec: { ...scale.spec, replicas: desired } });
      } catch (e) {
        this.recorder.event(hpa, 'Warning', 'FailedRescale', `New size: ${desired}; reason: ${reason}; error: ${(e as Error).message}`);
        setCondition(conds, 'AbleToScale', { status: 'False', reason: 'FailedUpdateScale', message: `the HPA controller was unable to update the target scale: ${(e as Error).message}` }, nowIso);
        await this.writeStatus(hpa, original);
        throw e;
      }
      setCondition(conds, 'AbleToScale', { status: 'True', reason: 'SucceededRescale', message: `the HPA controller was able to update the target scale to ${desired}` }, nowIso);
      this.recorder.event(hpa, 'Normal', 'SuccessfulRescale', `New size: ${desired}; reason: ${reason}`);
      this.log.info({ hpa: key, from: currentReplicas, to: desired, reason }, 'rescaled');
      recordScaleEvent(history, behavior, currentReplicas, desired, now);
      status.lastScaleTime = nowIso;
    } else {
      desired = currentReplicas;
    }
    status.observedGeneration = hpa.metadata.generation;
    status.currentReplicas = currentReplicas;
    status.desiredReplicas = desired;
    status.currentMetrics = metricStatuses;
    await this.writeStatus(hpa, original);
  }

  /** computeReplicasForMetrics: the largest proposal of the valid metrics, or -1 when none (or, on a scale-down, not all) could be computed. */
  private async computeReplicasForMetrics(hpa: HorizontalPodAutoscaler, scale: Scale, currentReplicas: number, nowIso: string):
    Promise<{ replicas: number; metric: string; statuses: unknown[]; error?: string }> {
    const conds = hpa.status!.conditions!;
    const ns = hpa.metadata.namespace ?? 'default';
    const specs = hpa.spec.metrics ?? [];
    let replicas = 0;
    let metric = '';
    const statuses: unknown[] = [];
    let invalid = 0;
    let firstError: MetricError | undefined;
    let selectorString = scale.status?.selector ?? '';
    for (const spec of specs) {
      try {
        if (!selectorString) throw new MetricError('InvalidSelector', 'selector is required');
        let selector;
        try {
          selector = parseLabelSelector(selectorString);
        } catch (e) {
          throw new MetricError('InvalidSelector', `couldn't convert selector into a corresponding internal selector object: ${(e as Error).message}`);
        }
        const source = spec.type === 'Resource' ? spec.resource : spec.type === 'ContainerResource' ? spec.containerResource : undefined;
        if (!source) {
          throw new MetricError(`FailedGet${spec.type}Metric`, `unable to get metric of type ${spec.type}: only Resource and ContainerResource metrics are served (no custom.metrics.k8s.io or external.metrics.k8s.io API)`);
        }
        const container = spec.type === 'ContainerResource' ? spec.containerResource!.container : undefined;
        const pods = this.pods.byNamespace(ns).filter((p) => matchesLabels(selector, p.metadata.labels));
        const res = source.name;
        const metrics = await this.podMetrics(ns, selectorString, res, container);
        const target = source.target;
        const what = container ? `${res} container resource` : `${res} resource`;
        let proposal: number;
        let current: Record<string, unknown>;
        let name: string;
        if (target.type === 'Utilization' || (target.averageUtilization !== undefined && target.averageValue === undefined)) {
          if (target.averageUtilization === undefined) throw new MetricError(`FailedGet${spec.type}Metric`, 'invalid resource metric source: neither a utilization target nor a value target was set');
          const r = resourceUtilizationReplicas(currentReplicas, target.averageUtilization, res, pods, metrics, this.calculatorOptions(), container);
          proposal = r.replicas;
          current = { averageUtilization: r.utilization, averageValue: formatMilli(r.rawAverage) };
          name = `${what} utilization (percentage of request)`;
        } else if (target.averageValue !== undefined) {
          const r = averageValueReplicas(currentReplicas, milliValue(target.averageValue), res, pods, metrics, this.calculatorOptions());
          proposal = r.replicas;
          current = { averageValue: formatMilli(r.rawAverage) };
          name = what;
        } else {
          throw new MetricError(`FailedGet${spec.type}Metric`, 'invalid resource metric source: neither a utilization target nor a value target was set');
        }
        statuses.push(container
          ? { type: 'ContainerResource', containerResource: { name: res, container, current } }
          : { type: 'Resource', resource: { name: res, current } });
        if (!metric || proposal > replicas) {
          replicas = proposal;
          metric = name;
        }
      } catch (e) {
        const err = e instanceof MetricError ? e : new MetricError(`FailedGet${spec.type}Metric`, (e as Error).message);
        invalid++;
        firstError ??= err;
        // Kubernetes leaves an empty entry here; an empty type does not validate, so the metric is just left out.
        this.recorder.event(hpa, 'Warning', err.reason, err.message);
        if (err.reason === 'InvalidSelector') selectorString = '';
      }
    }
    if (invalid >= specs.length || (invalid > 0 && replicas < currentReplicas)) {
      setCondition(conds, 'ScalingActive', { status: 'False', reason: firstError!.reason, message: `the HPA was unable to compute the replica count: ${firstError!.message}` }, nowIso);
      return { replicas: -1, metric: '', statuses, error: `invalid metrics (${invalid} invalid out of ${specs.length}), first error is: ${firstError!.message}` };
    }
    setCondition(conds, 'ScalingActive', { status: 'True', reason: 'ValidMetricFound', message: `the HPA was able to successfully calculate a replica count from ${metric}` }, nowIso);
    return { replicas, metric, statuses };
  }

  /**
   * Each selected pod's usage of `resource`: the sum over its containers (a pod
   * missing it in any container has no sample), or the one named `container`.
   */
  private async podMetrics(ns: string, selector: string, resource: string, container?: string): Promise<PodMetrics> {
    let list: { items: PodMetricsItem[] };
    try {
      list = await this.ctx.client.get<{ items: PodMetricsItem[] }>(`/apis/${METRICS_GROUP}/${METRICS_VERSION}/namespaces/${encodeURIComponent(ns)}/pods`, { labelSelector: selector });
    } catch (e) {
      throw new MetricError(container ? 'FailedGetContainerResourceMetric' : 'FailedGetResourceMetric', `unable to get metrics for resource ${resource}: unable to fetch metrics from resource metrics API: ${(e as Error).message}`);
    }
    const out: PodMetrics = new Map();
    for (const item of list.items ?? []) {
      let sum = 0;
      const counted = container ? item.containers.filter((c) => c.name === container) : item.containers;
      let complete = counted.length > 0;
      for (const c of counted) {
        const q = c.usage?.[resource];
        if (q === undefined) {
          complete = false;
          break;
        }
        sum += milliValue(q);
      }
      if (!complete) continue;
      let windowMs = 0;
      try {
        windowMs = parseDuration(item.window, 'window');
      } catch {
        /* a malformed window counts as none */
      }
      out.set(item.metadata.name, { value: sum, timestamp: Date.parse(item.timestamp), windowMs });
    }
    if (!out.size) throw new MetricError(container ? 'FailedGetContainerResourceMetric' : 'FailedGetResourceMetric', `unable to get metrics for resource ${resource}: no metrics returned from resource metrics API`);
    return out;
  }

  private async writeStatus(hpa: HorizontalPodAutoscaler, original: string): Promise<void> {
    if (JSON.stringify(hpa.status) === original) return;
    await this.ctx.client.update(resourcePath(HPAS, hpa.metadata.namespace, hpa.metadata.name, 'status'), hpa);
  }
}
