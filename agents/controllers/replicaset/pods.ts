// What the ReplicaSet controller reads from its pods: which count at all
// (active), which are available (ready for minReadySeconds), and which to
// delete first when there are too many — Kubernetes' ActivePodsWithRanks
// ordering (pkg/controller/controller_utils.go) with its default feature
// gates (PodDeletionCost and LogarithmicScaleDown on).
import type { Pod } from '../../informer/types.ts';
import { isPodReady } from '../endpoints/pods.ts';

export { isPodReady };

/** The annotation that lets users pick which pods go first on scale-down. */
export const POD_DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';

/** Not finished and not being deleted: the pods a ReplicaSet counts (FilterActivePods). */
export function isPodActive(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed' && !pod.metadata.deletionTimestamp;
}

/** When the Ready condition last turned True (ms), or undefined when not ready. */
export function podReadyTime(pod: Pod): number | undefined {
  if (!isPodReady(pod)) return undefined;
  const c = pod.status?.conditions?.find((x) => x.type === 'Ready' && x.status === 'True');
  const t = c?.lastTransitionTime ? Date.parse(c.lastTransitionTime) : NaN;
  return Number.isFinite(t) ? t : undefined;
}

/** Ready, and for longer than minReadySeconds (IsPodAvailable). */
export function isPodAvailable(pod: Pod, minReadySeconds: number, now: number): boolean {
  if (!isPodReady(pod)) return false;
  if (!minReadySeconds) return true;
  const t = podReadyTime(pod);
  return t !== undefined && t + minReadySeconds * 1000 < now;
}

/** When a ready pod becomes available (ms), for requeueing; undefined when not ready or already available. */
export function availableAt(pod: Pod, minReadySeconds: number, now: number): number | undefined {
  const t = podReadyTime(pod);
  if (t === undefined || !minReadySeconds) return undefined;
  const at = t + minReadySeconds * 1000;
  return at >= now ? at : undefined;
}

const PHASE_ORDINAL: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

function deletionCost(pod: Pod): number {
  const v = pod.metadata.annotations?.[POD_DELETION_COST];
  if (v === undefined) return 0;
  const n = Number(v);
  // An invalid cost counts as 0, as Kubernetes' helper returns 0 with its error.
  return Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 ? n : 0;
}

const maxRestarts = (p: Pod) => Math.max(0, ...(p.status?.containerStatuses ?? []).map((c) => c.restartCount ?? 0));
const created = (p: Pod) => (p.metadata.creationTimestamp ? Date.parse(p.metadata.creationTimestamp) : 0);

/** floor(log2(now − t)) in nanoseconds, -1 for t ≥ now: pods within the same power-of-two age are equals. */
function logRank(t: number, now: number): number {
  const d = (now - t) * 1e6;
  return d > 0 ? Math.floor(Math.log2(d)) : -1;
}

/** Kubernetes' afterOrZero: a missing time first, then the later time first. */
function afterOrZero(a: number, b: number): boolean {
  if (!a || !b) return !a;
  return a > b;
}

/** Later, or in a newer logarithmic bucket, first; equals by uid (pseudo-random but stable). */
function newerFirst(a: Pod, ta: number, b: Pod, tb: number, now: number): number {
  if (!ta || !tb) return afterOrZero(ta, tb) ? -1 : afterOrZero(tb, ta) ? 1 : 0;
  const diff = logRank(ta, now) - logRank(tb, now);
  if (diff !== 0) return diff < 0 ? -1 : 1;
  const ua = a.metadata.uid ?? '';
  const ub = b.metadata.uid ?? '';
  return ua < ub ? -1 : ua > ub ? 1 : 0;
}

export interface RankedPod {
  pod: Pod;
  /** Active related pods on the same node (pods of the same owner, or of its siblings under one Deployment). */
  rank: number;
}

/**
 * Negative when `a` should be deleted before `b`:
 *  1. unassigned before assigned;
 *  2. Pending before Unknown before Running;
 *  3. not ready before ready;
 *  4. lower pod-deletion-cost first;
 *  5. more related pods on its node first (spreads what remains);
 *  6. both ready: ready more recently first (log₂ buckets of the age);
 *  7. more container restarts first;
 *  8. created more recently first (log₂ buckets), ties broken by uid.
 */
export function compareForDeletion(a: RankedPod, b: RankedPod, now: number): number {
  const pa = a.pod;
  const pb = b.pod;
  const na = pa.spec?.nodeName ?? '';
  const nb = pb.spec?.nodeName ?? '';
  if (na !== nb && (!na || !nb)) return !na ? -1 : 1;
  const oa = PHASE_ORDINAL[pa.status?.phase ?? ''] ?? 0;
  const ob = PHASE_ORDINAL[pb.status?.phase ?? ''] ?? 0;
  if (oa !== ob) return oa - ob;
  const ra = isPodReady(pa);
  const rb = isPodReady(pb);
  if (ra !== rb) return ra ? 1 : -1;
  const ca = deletionCost(pa);
  const cb = deletionCost(pb);
  if (ca !== cb) return ca - cb;
  if (a.rank !== b.rank) return b.rank - a.rank;
  if (ra && rb) {
    const ta = podReadyTime(pa) ?? 0;
    const tb = podReadyTime(pb) ?? 0;
    if (ta !== tb) return newerFirst(pa, ta, pb, tb, now);
  }
  const xa = maxRestarts(pa);
  const xb = maxRestarts(pb);
  if (xa !== xb) return xb - xa;
  const ka = created(pa);
  const kb = created(pb);
  if (ka !== kb) return newerFirst(pa, ka, pb, kb, now);
  return 0;
}

/**
 * The `n` pods to delete (getPodsToDelete): ranked by how many active
 * `related` pods share their node, then ordered by compareForDeletion.
 */
export function podsToDelete(pods: readonly Pod[], related: readonly Pod[], n: number, now: number): Pod[] {
  if (n >= pods.length) return [...pods];
  const onNode = new Map<string, number>();
  for (const p of related) {
    if (isPodActive(p)) onNode.set(p.spec?.nodeName ?? '', (onNode.get(p.spec?.nodeName ?? '') ?? 0) + 1);
  }
  const ranked = pods.map((pod) => ({ pod, rank: onNode.get(pod.spec?.nodeName ?? '') ?? 0 }));
  ranked.sort((a, b) => compareForDeletion(a, b, now));
  return ranked.slice(0, n).map((r) => r.pod);
}
