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
  return compareKeys(sortKey(a, now), sortKey(b, now));
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
  // Sort keys computed once per pod, not once per comparison (thousands of pods: n log n date parses otherwise).
  const ranked = pods.map((pod) => sortKey({ pod, rank: onNode.get(pod.spec?.nodeName ?? '') ?? 0 }, now));
  ranked.sort(compareKeys);
  return ranked.slice(0, n).map((r) => r.pod);
}

interface SortKey { pod: Pod; rank: number; node: string; phase: number; ready: boolean; cost: number; readyAt: number; readyLog: number; restarts: number; createdAt: number; createdLog: number; uid: string }

function sortKey(r: RankedPod, now: number): SortKey {
  const p = r.pod;
  const readyAt = podReadyTime(p) ?? 0;
  const createdAt = created(p);
  return {
    pod: p, rank: r.rank, node: p.spec?.nodeName ?? '', phase: PHASE_ORDINAL[p.status?.phase ?? ''] ?? 0, ready: isPodReady(p), cost: deletionCost(p),
    readyAt, readyLog: readyAt ? logRank(readyAt, now) : 0, restarts: maxRestarts(p), createdAt, createdLog: createdAt ? logRank(createdAt, now) : 0, uid: p.metadata.uid ?? '',
  };
}

/** The rules of compareForDeletion on precomputed keys. */
function compareKeys(a: SortKey, b: SortKey): number {
  if (a.node !== b.node && (!a.node || !b.node)) return !a.node ? -1 : 1;
  if (a.phase !== b.phase) return a.phase - b.phase;
  if (a.ready !== b.ready) return a.ready ? 1 : -1;
  if (a.cost !== b.cost) return a.cost - b.cost;
  if (a.rank !== b.rank) return b.rank - a.rank;
  const newer = (ta: number, la: number, tb: number, lb: number) => {
    if (!ta || !tb) return afterOrZero(ta, tb) ? -1 : afterOrZero(tb, ta) ? 1 : 0;
    if (la !== lb) return la < lb ? -1 : 1;
    return a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0;
  };
  if (a.ready && b.ready && a.readyAt !== b.readyAt) return newer(a.readyAt, a.readyLog, b.readyAt, b.readyLog);
  if (a.restarts !== b.restarts) return b.restarts - a.restarts;
  if (a.createdAt !== b.createdAt) return newer(a.createdAt, a.createdLog, b.createdAt, b.createdLog);
  return 0;
}
