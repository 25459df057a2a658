// autoscaling/v2: HorizontalPodAutoscaler.

import { atomic, int, int64, obj, quantity, str, time } from '../schema/dsl.ts';
import { LabelSelector, conditionOf, conditions } from '../schema/meta.ts';
import type { Cause, KindDef, Schema } from '../schema/types.ts';
import {
  child, forbidden, index, invalid, invalidEach, isValidPathSegmentName, notSupported, required,
} from '../schema/validate.ts';
import { type Obj, ageColumn, column, defineKind, dflt, ensure, entries, intColumn, isObj, list, rec } from './common.ts';

const H = (n: string) => `io.k8s.api.autoscaling.v2.${n}`;

const CrossVersionObjectReference = obj({ kind: str(), name: str(), apiVersion: str() },
  { name: H('CrossVersionObjectReference'), required: ['kind', 'name'] });
const MetricIdentifier = obj({ name: str(), selector: LabelSelector }, { name: H('MetricIdentifier'), required: ['name'] });
const MetricTarget = obj({ type: str(), value: quantity(), averageValue: quantity(), averageUtilization: int() },
  { name: H('MetricTarget'), required: ['type'] });
const MetricValueStatus = obj({ value: quantity(), averageValue: quantity(), averageUtilization: int() }, { name: H('MetricValueStatus') });

/** The five metric sources; `value` is the target (spec) or current value (status) field. */
function metricSources(kind: 'Source' | 'Status', value: 'target' | 'current', valueSchema: Schema): Record<string, Schema> {
  const n = (s: string) => H(`${s}Metric${kind}`);
  return {
    object: obj({ describedObject: CrossVersionObjectReference, [value]: valueSchema, metric: MetricIdentifier },
      { name: n('Object'), required: ['describedObject', value, 'metric'] }),
    pods: obj({ metric: MetricIdentifier, [value]: valueSchema }, { name: n('Pods'), required: ['metric', value] }),
    resource: obj({ name: str(), [value]: valueSchema }, { name: n('Resource'), required: ['name', value] }),
    containerResource: obj({ name: str(), [value]: valueSchema, container: str() }, { name: n('ContainerResource'), required: ['name', value, 'container'] }),
    external: obj({ metric: MetricIdentifier, [value]: valueSchema }, { name: n('External'), required: ['metric', value] }),
  };
}

const MetricSpec = obj({ type: str(), ...metricSources('Source', 'target', MetricTarget) }, { name: H('MetricSpec'), required: ['type'] });
const MetricStatus = obj({ type: str(), ...metricSources('Status', 'current', MetricValueStatus) }, { name: H('MetricStatus'), required: ['type'] });

const HPAScalingRules = obj({
  stabilizationWindowSeconds: int(),
  selectPolicy: str(),
  policies: atomic(obj({ type: str(), value: int(), periodSeconds: int() }, { name: H('HPAScalingPolicy'), required: ['type', 'value', 'periodSeconds'] })),
  tolerance: quantity(),
}, { name: H('HPAScalingRules') });

const SOURCE_TYPES: Record<string, string> = {
  ContainerResource: 'containerResource', External: 'external', Object: 'object', Pods: 'pods', Resource: 'resource',
};

function validateMetrics(metrics: unknown): Cause[] {
  const out: Cause[] = [];
  for (const [m, i] of entries(metrics)) {
    const p = index('spec.metrics', i);
    const field = SOURCE_TYPES[m.type];
    if (m.type && !field) {
      out.push(notSupported(child(p, 'type'), m.type, Object.keys(SOURCE_TYPES)));
      continue;
    }
    if (!field) continue;
    for (const other of Object.values(SOURCE_TYPES)) {
      if (other !== field && m[other] != null) out.push(forbidden(child(p, other), 'must populate the given metric source only'));
    }
    const src = rec(m[field]);
    if (!src) {
      out.push(required(child(p, field), 'must populate information for the given metric source'));
      continue;
    }
    const target = rec(src.target) ?? {};
    const tp = child(p, field, 'target');
    if (target.type && !['Utilization', 'Value', 'AverageValue'].includes(target.type)) {
      out.push(notSupported(child(tp, 'type'), target.type, ['Utilization', 'Value', 'AverageValue']));
    }
    if ((field === 'resource' || field === 'containerResource') && target.averageUtilization == null && target.averageValue == null) {
      out.push(required(child(tp, 'averageUtilization'), 'must set either a target raw value or a target utilization'));
    }
    if (typeof target.averageUtilization === 'number' && target.averageUtilization < 1) {
      out.push(invalid(child(tp, 'averageUtilization'), target.averageUtilization, 'must be greater than 0'));
    }
  }
  return out;
}

function validateScalingRules(rules: unknown, path: string): Cause[] {
  const r = rec(rules);
  if (!r) return [];
  const out: Cause[] = [];
  const w = r.stabilizationWindowSeconds;
  if (typeof w === 'number' && (w < 0 || w > 3600)) out.push(invalid(child(path, 'stabilizationWindowSeconds'), w, 'must be less than or equal to 3600'));
  if (r.selectPolicy && !['Max', 'Min', 'Disabled'].includes(r.selectPolicy)) {
    out.push(notSupported(child(path, 'selectPolicy'), r.selectPolicy, ['Max', 'Min', 'Disabled']));
  }
  if (Array.isArray(r.policies) && !r.policies.length) out.push(required(child(path, 'policies'), 'must specify at least one Policy'));
  for (const [pol, i] of entries(r.policies)) {
    const p = index(child(path, 'policies'), i);
    if (pol.type && pol.type !== 'Pods' && pol.type !== 'Percent') out.push(notSupported(child(p, 'type'), pol.type, ['Pods', 'Percent']));
    if (typeof pol.value === 'number' && pol.value <= 0) out.push(invalid(child(p, 'value'), pol.value, 'must be greater than zero'));
    if (typeof pol.periodSeconds === 'number' && (pol.periodSeconds <= 0 || pol.periodSeconds > 1800)) {
      out.push(invalid(child(p, 'periodSeconds'), pol.periodSeconds, pol.periodSeconds <= 0 ? 'must be greater than zero' : 'must be less than or equal to 1800'));
    }
  }
  return out;
}

/** GenerateHPAScaleUpRules / GenerateHPAScaleDownRules: unset fields take Kubernetes' defaults. */
function defaultScalingRules(behavior: Obj, which: 'scaleUp' | 'scaleDown') {
  const rules = ensure(behavior, which);
  dflt(rules, 'selectPolicy', 'Max');
  if (which === 'scaleUp') dflt(rules, 'stabilizationWindowSeconds', 0);
  if (!Array.isArray(rules.policies)) {
    rules.policies = which === 'scaleUp'
      ? [{ type: 'Pods', value: 4, periodSeconds: 15 }, { type: 'Percent', value: 100, periodSeconds: 15 }]
      : [{ type: 'Percent', value: 100, periodSeconds: 15 }];
  }
}

/** One entry of the TARGETS column (formatHPAMetrics). */
function formatMetric(spec: Obj, status: Obj | undefined): string {
  const field = SOURCE_TYPES[spec.type];
  const src = field ? rec(spec[field]) : undefined;
  if (!src) return '<unknown type>';
  const target = rec(src.target) ?? {};
  const cur = rec(rec(status?.[field])?.current);
  const prefix = field === 'resource' || field === 'containerResource' ? `${src.name}: ` : '';
  if (target.averageValue != null) {
    const suffix = field === 'external' || field === 'object' ? ' (avg)' : '';
    return `${prefix}${cur?.averageValue ?? '<unknown>'}/${target.averageValue}${suffix}`;
  }
  if (field === 'resource' || field === 'containerResource') {
    const current = typeof cur?.averageUtilization === 'number' ? `${cur.averageUtilization}%` : '<unknown>';
    const goal = typeof target.averageUtilization === 'number' ? `${target.averageUtilization}%` : '<auto>';
    return `${prefix}${current}/${goal}`;
  }
  return `${cur?.value ?? '<unknown>'}/${target.value ?? '<unknown>'}`;
}

function formatHPAMetrics(hpa: Obj): string {
  const specs = list(hpa.spec?.metrics);
  if (!specs.length) return '<none>';
  const statuses = list(hpa.status?.currentMetrics);
  const shown = specs.slice(0, 2).map((s, i) => formatMetric(s, isObj(statuses[i]) ? statuses[i] : undefined)).join(', ');
  return specs.length > 2 ? `${shown} + ${specs.length - 2} more...` : shown;
}

export const horizontalPodAutoscaler = defineKind({
  group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler', plural: 'horizontalpodautoscalers', shortNames: ['hpa'],
  categories: ['all'], subresources: ['status'],
  description: 'HorizontalPodAutoscaler is the configuration for a horizontal pod autoscaler, which automatically manages the replica count of any resource implementing the scale subresource based on the metrics specified.',
  fields: {
    spec: obj({
      scaleTargetRef: CrossVersionObjectReference,
      minReplicas: int({ description: 'minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.' }),
      maxReplicas: int({ description: 'maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.' }),
      metrics: atomic(MetricSpec, 'metrics contains the specifications for which to use to calculate the desired replica count.'),
      behavior: obj({ scaleUp: HPAScalingRules, scaleDown: HPAScalingRules }, { name: H('HorizontalPodAutoscalerBehavior') }),
    }, { name: H('HorizontalPodAutoscalerSpec'), required: ['scaleTargetRef', 'maxReplicas'] }),
    status: obj({
      observedGeneration: int64(),
      lastScaleTime: time(),
      currentReplicas: int(),
      desiredReplicas: int(),
      currentMetrics: atomic(MetricStatus),
      conditions: conditions(conditionOf(H('HorizontalPodAutoscalerCondition'), ['lastTransitionTime'])),
    }, { name: H('HorizontalPodAutoscalerStatus') }),
  },
  default(hpa) {
    const spec = ensure(hpa, 'spec');
    dflt(spec, 'minReplicas', 1);
    if (!list(spec.metrics).length) {
      spec.metrics = [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } }];
    }
    const behavior = rec(spec.behavior);
    if (behavior) {
      defaultScalingRules(behavior, 'scaleUp');
      defaultScalingRules(behavior, 'scaleDown');
    }
  },
  validate(hpa) {
    const spec = rec(hpa.spec) ?? {};
    const out: Cause[] = [];
    const ref = rec(spec.scaleTargetRef) ?? {};
    for (const f of ['kind', 'name']) {
      if (ref[f]) out.push(...invalidEach(`spec.scaleTargetRef.${f}`, ref[f], isValidPathSegmentName(String(ref[f]))));
    }
    if (typeof spec.minReplicas === 'number' && spec.minReplicas < 1) out.push(invalid('spec.minReplicas', spec.minReplicas, 'must be greater than or equal to 1'));
    if (typeof spec.maxReplicas === 'number') {
      if (spec.maxReplicas < 1) out.push(invalid('spec.maxReplicas', spec.maxReplicas, 'must be greater than 0'));
      else if (typeof spec.minReplicas === 'number' && spec.maxReplicas < spec.minReplicas) {
        out.push(invalid('spec.maxReplicas', spec.maxReplicas, 'must be greater than or equal to `minReplicas`'));
      }
    }
    out.push(...validateMetrics(spec.metrics));
    out.push(...validateScalingRules(spec.behavior?.scaleUp, 'spec.behavior.scaleUp'));
    out.push(...validateScalingRules(spec.behavior?.scaleDown, 'spec.behavior.scaleDown'));
    return out;
  },
  columns: [
    column('Reference', (h) => `${h.spec?.scaleTargetRef?.kind ?? ''}/${h.spec?.scaleTargetRef?.name ?? ''}`, { description: 'Reference to target resource' }),
    column('Targets', formatHPAMetrics, { description: 'Current and target values of the metrics the autoscaler uses' }),
    column('MinPods', (h) => (typeof h.spec?.minReplicas === 'number' ? h.spec.minReplicas : '<unset>'), { description: 'Minimum number of replicas' }),
    intColumn('MaxPods', 'spec.maxReplicas', { description: 'Maximum number of replicas' }),
    intColumn('Replicas', 'status.currentReplicas', { description: 'Current number of replicas of pods managed by this autoscaler' }),
    ageColumn,
  ],
});

export const AUTOSCALING_KINDS: KindDef[] = [horizontalPodAutoscaler];
