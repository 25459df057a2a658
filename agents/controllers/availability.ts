// A pod is available when it has been Ready for at least minReadySeconds
// (Kubernetes' podutil.IsPodAvailable), what StatefulSets' and DaemonSets'
// availableReplicas / numberAvailable count.
import type { Pod } from '../informer/types.ts';
import { isPodReady } from './endpoints/pods.ts';

export function isPodAvailable(pod: Pod, minReadySeconds: number, now: number): boolean {
  if (!isPodReady(pod)) return false;
  if (minReadySeconds <= 0) return true;
  const since = Date.parse((pod.status?.conditions ?? []).find((c) => c.type === 'Ready')?.lastTransitionTime ?? '');
  return !Number.isNaN(since) && since + minReadySeconds * 1000 <= now;
}

/** When a ready pod becomes available (ms), for a re-check; undefined when not ready or already available. */
export function availableAt(pod: Pod, minReadySeconds: number, now: number): number | undefined {
  if (!isPodReady(pod) || minReadySeconds <= 0) return undefined;
  const since = Date.parse((pod.status?.conditions ?? []).find((c) => c.type === 'Ready')?.lastTransitionTime ?? '');
  if (Number.isNaN(since)) return undefined;
  const at = since + minReadySeconds * 1000;
  return at > now ? at : undefined;
}
