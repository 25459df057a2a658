// From a metrics recommendation to the replicas the HPA sets, as Kubernetes'
// horizontal controller does: stabilization (the highest recommendation of
// the scale-down window, the lowest of the scale-up window), then the rate
// limits of the behavior policies (Pods/Percent per period, selectPolicy
// Max/Min/Disabled) measured against the scale events of each period, then
// min/max. Without spec.behavior, the older rules: scale-down stabilization
// only and a scale-up limit of max(2 × current, 4).

export interface ScalingPolicy {
  type: 'Pods' | 'Percent' | string;
  value: number;
  periodSeconds: number;
}

export interface ScalingRules {
  stabilizationWindowSeconds?: number;
  selectPolicy?: 'Max' | 'Min' | 'Disabled' | string;
  policies?: ScalingPolicy[];
}

export interface Behavior {
  scaleUp?: ScalingRules;
  scaleDown?: ScalingRules;
}

export interface Recommendation {
  at: number;
  replicas: number;
}

export interface ScaleEvent {
  at: number;
  change: number;
}

/** What the controller remembers of one HPA between evaluations. */
export interface ScalingHistory {
  recommendations: Recommendation[];
  scaleUpEvents: ScaleEvent[];
  scaleDownEvents: ScaleEvent[];
}

export const newHistory = (): ScalingHistory => ({ recommendations: [], scaleUpEvents: [], scaleDownEvents: [] });

export interface Condition {
  status: 'True' | 'False';
  reason: string;
  message: string;
}

export interface Normalized {
  replicas: number;
  ableToScale: Condition;
  scalingLimited: Condition;
}

/** Kubernetes' defaults of behavior rules the spec leaves unset (scale-down window: the controller's flag). */
export function withDefaults(b: Behavior, downscaleStabilizationSeconds: number): Required<{ scaleUp: Required<ScalingRules>; scaleDown: Required<ScalingRules> }> {
  return {
    scaleUp: {
      stabilizationWindowSeconds: b.scaleUp?.stabilizationWindowSeconds ?? 0,
      selectPolicy: b.scaleUp?.selectPolicy ?? 'Max',
      policies: b.scaleUp?.policies ?? [{ type: 'Pods', value: 4, periodSeconds: 15 }, { type: 'Percent', value: 100, periodSeconds: 15 }],
    },
    scaleDown: {
      stabilizationWindowSeconds: b.scaleDown?.stabilizationWindowSeconds ?? downscaleStabilizationSeconds,
      selectPolicy: b.scaleDown?.selectPolicy ?? 'Max',
      policies: b.scaleDown?.policies ?? [{ type: 'Percent', value: 100, periodSeconds: 15 }],
    },
  };
}

const READY: Condition = { status: 'True', reason: 'ReadyForNewScale', message: 'recommended size matches current size' };
const WITHIN: Condition = { status: 'False', reason: 'DesiredWithinRange', message: 'the desired count is within the acceptable range' };

/** Replicas added (or removed) by the events of the last `periodSeconds`. */
function changeInPeriod(events: readonly ScaleEvent[], periodSeconds: number, now: number): number {
  const cutoff = now - periodSeconds * 1000;
  return events.filter((e) => e.at > cutoff).reduce((s, e) => s + e.change, 0);
}

/** calculateScaleUpLimitWithScalingRules: the most replicas the policies allow now. */
export function scaleUpLimit(current: number, h: ScalingHistory, rules: Required<ScalingRules>, now: number): number {
  if (rules.selectPolicy === 'Disabled') return current;
  const pick = rules.selectPolicy === 'Min' ? Math.min : Math.max;
  let result = rules.selectPolicy === 'Min' ? Infinity : -Infinity;
  for (const p of rules.policies) {
    const start = current - changeInPeriod(h.scaleUpEvents, p.periodSeconds, now) + changeInPeriod(h.scaleDownEvents, p.periodSeconds, now);
    const proposed = p.type === 'Pods' ? start + p.value : Math.ceil(start * (1 + p.value / 100));
    result = pick(result, proposed);
  }
  return result;
}

/** calculateScaleDownLimitWithBehaviors: the fewest replicas the policies allow now. */
export function scaleDownLimit(current: number, h: ScalingHistory, rules: Required<ScalingRules>, now: number): number {
  if (rules.selectPolicy === 'Disabled') return current;
  const pick = rules.selectPolicy === 'Min' ? Math.max : Math.min;
  let result = rules.selectPolicy === 'Min' ? -Infinity : Infinity;
  for (const p of rules.policies) {
    const start = current - changeInPeriod(h.scaleUpEvents, p.periodSeconds, now) + changeInPeriod(h.scaleDownEvents, p.periodSeconds, now);
    const proposed = p.type === 'Pods' ? start - p.value : Math.trunc(start * (1 - p.value / 100));
    result = pick(result, proposed);
  }
  return result;
}

/** normalizeDesiredReplicasWithBehaviors; records the recommendation in `h`. */
export function normalizeWithBehavior(
  h: ScalingHistory, current: number, desired: number, min: number, max: number, b: ReturnType<typeof withDefaults>, now: number,
): Normalized {
  // Stabilization: no lower than the lowest recent recommendation of the up window, no higher than the highest of the down window.
  const upCutoff = now - b.scaleUp.stabilizationWindowSeconds * 1000;
  const downCutoff = now - b.scaleDown.stabilizationWindowSeconds * 1000;
  let up = desired;
  let down = desired;
  let oldIndex = -1;
  h.recommendations.forEach((r, i) => {
    if (r.at > upCutoff) up = Math.min(up, r.replicas);
    if (r.at > downCutoff) down = Math.max(down, r.replicas);
    if (r.at < upCutoff && r.at < downCutoff) oldIndex = i;
  });
  let stabilized = Math.min(Math.max(current, up), down);
  if (oldIndex >= 0) h.recommendations[oldIndex] = { at: now, replicas: desired };
  else h.recommendations.push({ at: now, replicas: desired });
  const ableToScale: Condition = stabilized !== desired
    ? desired >= current
      ? { status: 'True', reason: 'ScaleUpStabilized', message: 'recent recommendations were lower than current one, applying the lowest recent recommendation' }
      : { status: 'True', reason: 'ScaleDownStabilized', message: 'recent recommendations were higher than current one, applying the highest recent recommendation' }
    : READY;
  // Rate limits and bounds.
  let limited: Condition = WITHIN;
  let replicas = stabilized;
  if (stabilized > current) {
    const limit = Math.max(scaleUpLimit(current, h, b.scaleUp, now), current);
    const allowed = Math.min(max, limit);
    if (stabilized > allowed) {
      replicas = allowed;
      limited = max > limit
        ? { status: 'True', reason: 'ScaleUpLimit', message: 'the desired replica count is increasing faster than the maximum scale rate' }
        : { status: 'True', reason: 'TooManyReplicas', message: 'the desired replica count is more than the maximum replica count' };
    }
  } else if (stabilized < current) {
    const limit = Math.min(scaleDownLimit(current, h, b.scaleDown, now), current);
    const allowed = Math.max(min, limit);
    if (stabilized < allowed) {
      replicas = allowed;
      limited = min < limit
        ? { status: 'True', reason: 'ScaleDownLimit', message: 'the desired replica count is decreasing faster than the maximum scale rate' }
        : { status: 'True', reason: 'TooFewReplicas', message: 'the desired replica count is less than the minimum replica count' };
    }
  }
  stabilized = replicas;
  return { replicas: stabilized, ableToScale, scalingLimited: limited };
}

/** normalizeDesiredReplicas (no spec.behavior): scale-down stabilization, then min, max and max(2 × current, 4). */
export function normalizeWithoutBehavior(
  h: ScalingHistory, current: number, desired: number, min: number, max: number, downscaleStabilizationSeconds: number, now: number,
): Normalized {
  const cutoff = now - downscaleStabilizationSeconds * 1000;
  let stabilized = desired;
  let oldIndex = -1;
  h.recommendations.forEach((r, i) => {
    if (r.at > cutoff) stabilized = Math.max(stabilized, r.replicas);
    else oldIndex = i;
  });
  if (oldIndex >= 0) h.recommendations[oldIndex] = { at: now, replicas: desired };
  else h.recommendations.push({ at: now, replicas: desired });
  const ableToScale: Condition = stabilized !== desired
    ? { status: 'True', reason: 'ScaleDownStabilized', message: 'recent recommendations were higher than current one, applying the highest recent recommendation' }
    : READY;
  const upLimit = Math.max(2 * current, 4);
  let replicas = stabilized;
  let limited: Condition = WITHIN;
  if (stabilized < min) {
    replicas = min;
    limited = { status: 'True', reason: 'TooFewReplicas', message: 'the desired replica count is less than the minimum replica count' };
  } else if (stabilized > Math.min(max, upLimit)) {
    replicas = Math.min(max, upLimit);
    limited = max > upLimit
      ? { status: 'True', reason: 'ScaleUpLimit', message: 'the desired replica count is increasing faster than the maximum scale rate' }
      : { status: 'True', reason: 'TooManyReplicas', message: 'the desired replica count is more than the maximum replica count' };
  }
  return { replicas, ableToScale, scalingLimited: limited };
}

/** Remembers a rescale for the rate limits; forgets events older than the longest policy period. */
export function recordScaleEvent(h: ScalingHistory, b: ReturnType<typeof withDefaults> | undefined, prev: number, next: number, now: number): void {
  if (!b || prev === next) return;
  const longest = (r: Required<ScalingRules>) => Math.max(0, ...r.policies.map((p) => p.periodSeconds)) * 1000;
  if (next > prev) {
    h.scaleUpEvents = h.scaleUpEvents.filter((e) => e.at > now - longest(b.scaleUp));
    h.scaleUpEvents.push({ at: now, change: next - prev });
  } else {
    h.scaleDownEvents = h.scaleDownEvents.filter((e) => e.at > now - longest(b.scaleDown));
    h.scaleDownEvents.push({ at: now, change: prev - next });
  }
}
