// What a PodDisruptionBudget's status says, computed as Kubernetes'
// disruption controller does: expected pods (the number of selected pods for
// an integer minAvailable, else the summed scale of the pods' controllers),
// desired healthy (minAvailable, or expected − maxUnavailable, percentages
// rounded up), current healthy (ready, not being deleted, not recently
// evicted), and disruptions allowed (their difference, never below 0, and 0
// while no pods are expected).
import type { Pod } from '../../informer/types.ts';

/** How long an eviction's entry in status.disruptedPods keeps a pod from counting as healthy (DeletionTimeout). */
export const DELETION_TIMEOUT_MS = 2 * 60_000;

export interface PodDisruptionBudget {
  metadata: { name: string; namespace?: string; generation?: number; [k: string]: unknown };
  spec?: { minAvailable?: number | string; maxUnavailable?: number | string; selector?: unknown; unhealthyPodEvictionPolicy?: string };
  status?: {
    observedGeneration?: number;
    disruptedPods?: Record<string, string>;
    disruptionsAllowed?: number;
    currentHealthy?: number;
    desiredHealthy?: number;
    expectedPods?: number;
    conditions?: { type: string; status: string; reason: string; message: string; lastTransitionTime: string; observedGeneration?: number }[];
  };
  [k: string]: unknown;
}

export interface OwnerRef {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

/** A pod's controller and the replicas it wants, or undefined when no finder knows that controller. */
export type ScaleFinder = (ref: OwnerRef, namespace: string) => Promise<{ uid: string; scale: number } | undefined>;

/** GetScaledValueFromIntOrPercent with rounding up; throws on a malformed value. */
export function scaledValue(v: number | string, total: number): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+)%$/.exec(v);
  if (!m) throw new Error(`invalid value for IntOrString: invalid value "${v}": must be an integer or a percentage`);
  return Math.ceil((Number(m[1]) * total) / 100);
}

export const isPodReady = (p: Pod): boolean => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

export class UnmanagedOrUnknownError extends Error {}

/** getExpectedScale: the summed scale of the pods' distinct controllers; pods without a controller are listed apart. */
export async function expectedScale(pods: readonly Pod[], namespace: string, find: ScaleFinder): Promise<{ expected: number; unmanaged: string[] }> {
  const scales = new Map<string, number>();
  const unmanaged: string[] = [];
  for (const pod of pods) {
    const ref = (pod.metadata.ownerReferences as (OwnerRef & { controller?: boolean })[] | undefined)?.find((r) => r.controller);
    if (!ref) {
      unmanaged.push(pod.metadata.name);
      continue;
    }
    if (scales.has(ref.uid)) continue;
    const found = await find(ref, namespace);
    if (!found) throw new UnmanagedOrUnknownError(`found no controllers for pod "${pod.metadata.name}"`);
    scales.set(found.uid, found.scale);
  }
  let expected = 0;
  for (const s of scales.values()) expected += s;
  return { expected, unmanaged };
}

/** getExpectedPodCount: expected pods and desired healthy from the budget's spec. */
export async function expectedCounts(pdb: PodDisruptionBudget, pods: readonly Pod[], find: ScaleFinder): Promise<{ expected: number; desiredHealthy: number; unmanaged: string[] }> {
  const spec = pdb.spec ?? {};
  const ns = pdb.metadata.namespace ?? 'default';
  if (spec.maxUnavailable !== undefined && spec.maxUnavailable !== null) {
    const { expected, unmanaged } = await expectedScale(pods, ns, find);
    const maxUnavailable = scaledValue(spec.maxUnavailable, expected);
    return { expected, desiredHealthy: Math.max(0, expected - maxUnavailable), unmanaged };
  }
  if (spec.minAvailable !== undefined && spec.minAvailable !== null) {
    if (typeof spec.minAvailable === 'number') return { expected: pods.length, desiredHealthy: spec.minAvailable, unmanaged: [] };
    const { expected, unmanaged } = await expectedScale(pods, ns, find);
    return { expected, desiredHealthy: scaledValue(spec.minAvailable, expected), unmanaged };
  }
  return { expected: 0, desiredHealthy: 0, unmanaged: [] };
}

/** buildDisruptedPodMap: the evictions still in effect, and when the earliest one expires (for a recheck). */
export function disruptedPods(pdb: PodDisruptionBudget, pods: readonly Pod[], now: number): { map: Record<string, string>; recheckAt?: number } {
  const had = pdb.status?.disruptedPods ?? {};
  const map: Record<string, string> = {};
  let recheckAt: number | undefined;
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp) continue;
    const at = had[pod.metadata.name];
    if (at === undefined) continue;
    const expires = Date.parse(at) + DELETION_TIMEOUT_MS;
    if (expires < now) continue;
    map[pod.metadata.name] = at;
    recheckAt = recheckAt === undefined ? expires : Math.min(recheckAt, expires);
  }
  return { map, recheckAt };
}

/** countHealthyPods: ready, not being deleted, not evicted within the deletion timeout. */
export function countHealthy(pods: readonly Pod[], disrupted: Record<string, string>, now: number): number {
  let n = 0;
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp) continue;
    const at = disrupted[pod.metadata.name];
    if (at !== undefined && Date.parse(at) + DELETION_TIMEOUT_MS > now) continue;
    if (isPodReady(pod)) n++;
  }
  return n;
}

/** disruptionsAllowed: healthy beyond the desired count; 0 while nothing is expected. */
export function disruptionsAllowed(currentHealthy: number, desiredHealthy: number, expected: number): number {
  const d = currentHealthy - desiredHealthy;
  return expected <= 0 || d <= 0 ? 0 : d;
}
