// How big each of a Deployment's ReplicaSets should be — the arithmetic of
// Kubernetes' rolling.go, recreate.go and sync.go, as pure functions of the
// Deployment and its ReplicaSets (spec.replicas = what was asked, status
// = what is there), so that it reads as rules and tests as tables.
import type { Deployment, ReplicaSet } from '../../informer/types.ts';
import { desiredReplicasAnnotation, maxReplicasAnnotation } from './annotations.ts';
import { isRollingUpdate, maxSurge, maxUnavailable, replicasOf } from './fenceposts.ts';

export const specReplicas = (rs: ReplicaSet): number => rs.spec?.replicas ?? 0;
/**
 * A ReplicaSet's available pods, never counted above its spec.replicas.
 * Kubernetes reads status.availableReplicas as it is; but a ReplicaSet just
 * scaled down still reports the pods it is deleting until its controller
 * writes status again, and counting those let a second scale-down go below
 * replicas − maxUnavailable. Capping at spec keeps the bound on real pods.
 */
const available = (rs: ReplicaSet): number => Math.min(rs.status?.availableReplicas ?? 0, specReplicas(rs));
const created = (rs: ReplicaSet): number => (rs.metadata.creationTimestamp ? Date.parse(rs.metadata.creationTimestamp) : 0);
const sum = (rss: readonly ReplicaSet[], f: (rs: ReplicaSet) => number) => rss.reduce((n, rs) => n + f(rs), 0);

/** Oldest first, ties by name (ReplicaSetsByCreationTimestamp). */
export function byCreation(a: ReplicaSet, b: ReplicaSet): number {
  return created(a) - created(b) || (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);
}

/** ReplicaSets with pods asked for (FilterActiveReplicaSets). */
export const active = (rss: readonly (ReplicaSet | undefined)[]): ReplicaSet[] => rss.filter((rs): rs is ReplicaSet => !!rs && specReplicas(rs) > 0);

/**
 * An old ReplicaSet resized since its controller last reported on all the
 * pods it had asked for (status.observedGeneration below its generation; the
 * ReplicaSet controller claims a generation only once its expectations are
 * met). Its status may then miss a pod whose creation is still on its way —
 * a ReplicaSet that was the new one a moment ago, growing, then scaled down
 * by the next rollout — and neither its spec nor its status bounds its pods.
 */
export const unsettled = (rs: ReplicaSet): boolean => (rs.status?.observedGeneration ?? 0) < (rs.metadata.generation ?? 0);

/**
 * NewRSNewReplicas: the new ReplicaSet's next size. RollingUpdate grows it
 * by what the surge leaves (all ReplicaSets' pods may reach replicas +
 * maxSurge) up to spec.replicas; Recreate makes it full at once.
 *
 * One deliberate difference from Kubernetes, which counts spec.replicas
 * only: a ReplicaSet that still reports more pods than its spec (an old one
 * scaled down whose pods are not yet terminating) counts those pods, so the
 * surge bound holds for the pods that exist, not only for the sizes asked;
 * and while an old ReplicaSet is unsettled (above) the new one does not grow
 * at all: its status will say how many pods it has once its controller has
 * seen them all, and the ReplicaSet's status update brings the Deployment
 * back.
 */
export function newRSNewReplicas(d: Deployment, allRSs: readonly ReplicaSet[], newRS: ReplicaSet): number {
  if (!isRollingUpdate(d)) return replicasOf(d);
  if (allRSs.some((rs) => rs !== newRS && unsettled(rs))) return specReplicas(newRS);
  const current = sum(allRSs, (rs) => Math.max(specReplicas(rs), rs === newRS ? 0 : (rs.status?.replicas ?? 0)));
  const maxTotal = replicasOf(d) + maxSurge(d);
  if (current >= maxTotal) return specReplicas(newRS);
  const up = Math.min(maxTotal - current, replicasOf(d) - specReplicas(newRS));
  return specReplicas(newRS) + up;
}

/**
 * reconcileOldReplicaSets: new sizes (by name) of old ReplicaSets during a
 * rolling update. First their unavailable pods go (they count against
 * availability anyway), as far as the availability budget allows; then
 * available old pods beyond replicas − maxUnavailable, oldest ReplicaSet
 * first. Returns only sizes that change.
 */
export function scaleDownOld(d: Deployment, oldRSs: readonly ReplicaSet[], newRS: ReplicaSet | undefined): Map<string, number> {
  const out = new Map<string, number>();
  const olds = active(oldRSs).map((rs) => ({ rs, size: specReplicas(rs) })).sort((a, b) => byCreation(a.rs, b.rs));
  if (!olds.length) return out;
  const allPods = sum(olds.map((o) => o.rs), specReplicas) + (newRS ? specReplicas(newRS) : 0);
  const minAvailable = replicasOf(d) - maxUnavailable(d);
  const newUnavailable = newRS ? specReplicas(newRS) - available(newRS) : 0;
  const maxScaledDown = allPods - minAvailable - newUnavailable;
  if (maxScaledDown <= 0) return out;
  // 1. Unhealthy replicas (cleanupUnhealthyReplicas).
  let cleaned = 0;
  for (const o of olds) {
    if (cleaned >= maxScaledDown) break;
    if (o.size === 0) continue;
    const unhealthy = o.size - available(o.rs);
    if (unhealthy <= 0) continue;
    const n = Math.min(maxScaledDown - cleaned, unhealthy);
    if (o.size - n < 0) continue;
    o.size -= n;
    cleaned += n;
  }
  // 2. Available replicas beyond the minimum (scaleDownOldReplicaSetsForRollingUpdate).
  const availableNow = sum([...olds.map((o) => o.rs), ...(newRS ? [newRS] : [])], available);
  if (availableNow > minAvailable) {
    const total = availableNow - minAvailable;
    let done = 0;
    for (const o of olds) {
      if (done >= total) break;
      if (o.size === 0) continue;
      const n = Math.min(o.size, total - done);
      o.size -= n;
      done += n;
    }
  }
  for (const o of olds) if (o.size !== specReplicas(o.rs)) out.set(o.rs.metadata.name, o.size);
  return out;
}

/**
 * FindActiveOrLatest: the one ReplicaSet that holds pods, or — when none
 * does — the new one or else the newest old one; undefined when several do.
 */
export function activeOrLatest(newRS: ReplicaSet | undefined, oldRSs: readonly ReplicaSet[]): ReplicaSet | undefined {
  if (!newRS && !oldRSs.length) return undefined;
  const olds = [...oldRSs].sort((a, b) => byCreation(b, a));
  const all = active([...olds, newRS]);
  if (all.length === 0) return newRS ?? olds[0];
  if (all.length === 1) return all[0];
  return undefined;
}

/** IsSaturated: the new ReplicaSet alone is fully scaled and available. */
export function isSaturated(d: Deployment, rs: ReplicaSet | undefined): boolean {
  if (!rs) return false;
  const want = replicasOf(d);
  return desiredReplicasAnnotation(rs) === want && specReplicas(rs) === want && available(rs) === want;
}

/** Some ReplicaSet was last sized for a different spec.replicas: the user scaled (isScalingEvent). */
export function isScalingEvent(d: Deployment, newRS: ReplicaSet | undefined, oldRSs: readonly ReplicaSet[]): boolean {
  return active([newRS, ...oldRSs]).some((rs) => {
    const want = desiredReplicasAnnotation(rs);
    return want !== undefined && want !== replicasOf(d);
  });
}

/** getReplicaSetFraction: this ReplicaSet's share of a change of the Deployment's size, rounded half away from zero. */
function fraction(rs: ReplicaSet, d: Deployment): number {
  if (replicasOf(d) === 0) return -specReplicas(rs);
  const target = replicasOf(d) + maxSurge(d);
  const annotated = maxReplicasAnnotation(rs) ?? (d.status?.replicas ?? 0);
  if (!annotated) return 0;
  const x = (specReplicas(rs) * target) / annotated;
  return Math.sign(x) * Math.round(Math.abs(x)) - specReplicas(rs);
}

/**
 * Proportional scaling (scale in sync.go), for a Deployment resized in the
 * middle of a rolling update: the difference between replicas + maxSurge and
 * the pods asked for is shared among the active ReplicaSets in proportion to
 * their size (larger first; newer first when adding, older first when
 * removing); what rounding leaves goes to the first. Returns every active
 * ReplicaSet's new size by name.
 */
export function proportionalSizes(d: Deployment, newRS: ReplicaSet | undefined, oldRSs: readonly ReplicaSet[]): Map<string, number> {
  const all = active([...oldRSs, newRS]);
  const out = new Map<string, number>();
  const allowed = replicasOf(d) > 0 ? replicasOf(d) + maxSurge(d) : 0;
  const toAdd = allowed - sum(all, specReplicas);
  if (toAdd > 0) all.sort((a, b) => specReplicas(b) - specReplicas(a) || byCreation(b, a));
  else if (toAdd < 0) all.sort((a, b) => specReplicas(b) - specReplicas(a) || byCreation(a, b));
  let added = 0;
  for (const rs of all) {
    let share = 0;
    if (toAdd !== 0 && specReplicas(rs) !== 0 && toAdd !== added) {
      const f = fraction(rs, d);
      const left = toAdd - added;
      share = toAdd > 0 ? Math.min(f, left) : Math.max(f, left);
    }
    out.set(rs.metadata.name, specReplicas(rs) + share);
    added += share;
  }
  if (toAdd !== 0 && all.length) {
    const first = all[0]!.metadata.name;
    out.set(first, Math.max(0, out.get(first)! + toAdd - added));
  }
  return out;
}
