// A ReplicaSet's status from its active pods (Kubernetes' calculateStatus):
// replicas, fully labeled, ready and available (ready for minReadySeconds)
// counts, and the ReplicaFailure condition while creating or deleting fails.
import type { Condition, Pod, ReplicaSet } from '../../informer/types.ts';
import { isPodAvailable, isPodReady } from './pods.ts';

export interface ReplicaSetStatus {
  replicas: number;
  fullyLabeledReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
  observedGeneration?: number;
  conditions?: Condition[];
  [k: string]: unknown;
}

const rfc3339 = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

/** The status `pods` (the RS's active, claimed pods) give; `failure` is the error of the last create/delete round. */
export function calculateStatus(rs: ReplicaSet, pods: readonly Pod[], failure: Error | undefined, now: number): ReplicaSetStatus {
  const templateLabels = rs.spec?.template?.metadata?.labels ?? {};
  const minReady = (rs.spec?.minReadySeconds as number | undefined) ?? 0;
  let fullyLabeled = 0;
  let ready = 0;
  let available = 0;
  for (const p of pods) {
    const labels = p.metadata.labels ?? {};
    if (Object.entries(templateLabels).every(([k, v]) => labels[k] === v)) fullyLabeled++;
    if (isPodReady(p)) {
      ready++;
      if (isPodAvailable(p, minReady, now)) available++;
    }
  }
  let conditions = [...((rs.status?.conditions as Condition[] | undefined) ?? [])];
  const hasFailure = conditions.some((c) => c.type === 'ReplicaFailure');
  if (failure && !hasFailure) {
    const diff = pods.length - (rs.spec?.replicas ?? 1);
    const reason = diff < 0 ? 'FailedCreate' : diff > 0 ? 'FailedDelete' : 'FailedSync';
    conditions.push({ type: 'ReplicaFailure', status: 'True', lastTransitionTime: rfc3339(now), reason, message: failure.message });
  } else if (!failure && hasFailure) {
    conditions = conditions.filter((c) => c.type !== 'ReplicaFailure');
  }
  const status: ReplicaSetStatus = { ...(rs.status ?? {}), replicas: pods.length, fullyLabeledReplicas: fullyLabeled, readyReplicas: ready, availableReplicas: available };
  if (conditions.length) status.conditions = conditions;
  else delete status.conditions;
  return status;
}

/** Whether writing `next` would change what is stored (its observedGeneration included). */
export function statusChanged(rs: ReplicaSet, next: ReplicaSetStatus): boolean {
  const cur = rs.status ?? {};
  return (cur.replicas ?? 0) !== next.replicas || (cur.fullyLabeledReplicas ?? 0) !== next.fullyLabeledReplicas
    || (cur.readyReplicas ?? 0) !== next.readyReplicas || (cur.availableReplicas ?? 0) !== next.availableReplicas
    || cur.observedGeneration !== next.observedGeneration
    || JSON.stringify((cur as ReplicaSetStatus).conditions ?? []) !== JSON.stringify(next.conditions ?? []);
}
