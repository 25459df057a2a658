// A Deployment's rolling-update bounds (Kubernetes' deployment/util
// ResolveFenceposts, MaxSurge, MaxUnavailable): maxSurge and maxUnavailable
// are numbers or percentages of spec.replicas; a percentage of surge rounds
// UP and one of unavailability rounds DOWN (so the deployment errs towards
// availability); both 0 would deadlock, so unavailability becomes 1.
import type { Deployment } from '../../informer/types.ts';

export type IntOrPercent = number | string;

/** GetScaledValueFromIntOrPercent: an int as it is, "N%" of total rounded up or down. */
export function scaledValue(v: IntOrPercent | undefined, total: number, roundUp: boolean): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  const pct = /^(\d+)%$/.exec(v);
  if (pct) {
    const x = (Number(pct[1]) * total) / 100;
    return roundUp ? Math.ceil(x) : Math.floor(x);
  }
  // A string of digits is an int (intstr.FromString("3") is parsed the same way by Kubernetes).
  if (/^\d+$/.test(v)) return Number(v);
  throw new Error(`invalid value for IntOrString: invalid value "${v}": must be an integer or percentage (e.g. '5%')`);
}

/** [maxSurge, maxUnavailable] as pod counts for `desired` replicas. */
export function resolveFenceposts(maxSurge: IntOrPercent | undefined, maxUnavailable: IntOrPercent | undefined, desired: number): [number, number] {
  const surge = scaledValue(maxSurge, desired, true);
  let unavailable = scaledValue(maxUnavailable, desired, false);
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return [surge, unavailable];
}

export const replicasOf = (d: Deployment): number => d.spec?.replicas ?? 1;

interface Strategy { type?: string; rollingUpdate?: { maxSurge?: IntOrPercent; maxUnavailable?: IntOrPercent } }
export const strategyOf = (d: Deployment): Strategy => (d.spec?.strategy as Strategy | undefined) ?? { type: 'RollingUpdate' };
export const isRollingUpdate = (d: Deployment): boolean => (strategyOf(d).type ?? 'RollingUpdate') === 'RollingUpdate';

function fenceposts(d: Deployment): [number, number] {
  const ru = strategyOf(d).rollingUpdate ?? {};
  return resolveFenceposts(ru.maxSurge ?? '25%', ru.maxUnavailable ?? '25%', replicasOf(d));
}

/** Pods allowed above spec.replicas during a rollout (0 for Recreate). */
export function maxSurge(d: Deployment): number {
  return isRollingUpdate(d) ? fenceposts(d)[0] : 0;
}

/** Pods allowed to be unavailable during a rollout, never more than spec.replicas (0 for Recreate or 0 replicas). */
export function maxUnavailable(d: Deployment): number {
  if (!isRollingUpdate(d) || replicasOf(d) === 0) return 0;
  return Math.min(fenceposts(d)[1], replicasOf(d));
}
