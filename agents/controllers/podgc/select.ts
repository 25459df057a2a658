// Which pods the pod garbage collector removes (Kubernetes' podgc), as pure
// functions of the cached pods and nodes.
import type { Pod } from '../../informer/types.ts';

export function isTerminated(p: Pod): boolean {
  const phase = p.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

/** Evicted pods first, then the oldest (Kubernetes' byEvictionAndCreationTimestamp). */
function evictedThenOldest(a: Pod, b: Pod): number {
  const ea = (a.status as { reason?: string } | undefined)?.reason === 'Evicted' ? 0 : 1;
  const eb = (b.status as { reason?: string } | undefined)?.reason === 'Evicted' ? 0 : 1;
  if (ea !== eb) return ea - eb;
  const ta = Date.parse(a.metadata.creationTimestamp ?? '') || 0;
  const tb = Date.parse(b.metadata.creationTimestamp ?? '') || 0;
  if (ta !== tb) return ta - tb;
  const ka = `${a.metadata.namespace}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Terminated pods beyond `threshold`, the ones to delete first; none when threshold <= 0 (disabled). */
export function terminatedOverThreshold(pods: readonly Pod[], threshold: number): Pod[] {
  if (threshold <= 0) return [];
  const terminated = pods.filter(isTerminated);
  const excess = terminated.length - threshold;
  if (excess <= 0) return [];
  return terminated.sort(evictedThenOldest).slice(0, excess);
}

/** Nodes that pods are bound to but that are not (in the cache). */
export function missingNodes(pods: readonly Pod[], nodeExists: (name: string) => boolean): Set<string> {
  const out = new Set<string>();
  for (const p of pods) {
    const n = p.spec?.nodeName;
    if (n && !nodeExists(n)) out.add(n);
  }
  return out;
}

/** Pods being deleted that were never scheduled: nobody will confirm their deletion. */
export function unscheduledTerminating(pods: readonly Pod[]): Pod[] {
  return pods.filter((p) => p.metadata.deletionTimestamp && !p.spec?.nodeName);
}
