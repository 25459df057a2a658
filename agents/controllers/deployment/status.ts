// A Deployment's status and conditions (Kubernetes' sync.go calculateStatus,
// syncRolloutStatus and deployment/util's condition helpers): counts summed
// over its ReplicaSets, Available when at least replicas − maxUnavailable
// pods are available, and Progressing telling kubectl rollout status how the
// rollout goes — NewReplicaSetCreated/FoundNewReplicaSet/ReplicaSetUpdated
// while it moves, NewReplicaSetAvailable when done, ProgressDeadlineExceeded
// when it has not moved for progressDeadlineSeconds.
import type { Condition, Deployment, ReplicaSet } from '../../informer/types.ts';
import { maxUnavailable, replicasOf } from './fenceposts.ts';
import { canonicalJSON } from './hash.ts';
import { specReplicas } from './sizing.ts';

export interface DeploymentStatus {
  observedGeneration?: number;
  replicas: number;
  updatedReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
  unavailableReplicas: number;
  conditions?: DeploymentCondition[];
  collisionCount?: number;
  [k: string]: unknown;
}

export interface DeploymentCondition extends Condition {
  lastUpdateTime?: string;
}

export const PROGRESSING = 'Progressing';
export const AVAILABLE = 'Available';
export const REPLICA_FAILURE = 'ReplicaFailure';

export const Reasons = {
  NewRSAvailable: 'NewReplicaSetAvailable',
  TimedOut: 'ProgressDeadlineExceeded',
  ReplicaSetUpdated: 'ReplicaSetUpdated',
  NewReplicaSetCreated: 'NewReplicaSetCreated',
  FoundNewReplicaSet: 'FoundNewReplicaSet',
  FailedRSCreate: 'ReplicaSetCreateError',
  Paused: 'DeploymentPaused',
  Resumed: 'DeploymentResumed',
  MinimumReplicasAvailable: 'MinimumReplicasAvailable',
  MinimumReplicasUnavailable: 'MinimumReplicasUnavailable',
} as const;

export const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

export function newCondition(type: string, status: 'True' | 'False' | 'Unknown', reason: string, message: string, now: number): DeploymentCondition {
  const t = rfc3339(now);
  return { type, status, lastUpdateTime: t, lastTransitionTime: t, reason, message };
}

export function getCondition(s: { conditions?: DeploymentCondition[] } | undefined, type: string): DeploymentCondition | undefined {
  return s?.conditions?.find((c) => c.type === type);
}

/**
 * SetDeploymentCondition (mutates): the same status and reason changes
 * nothing (not even the message); the same status keeps its transition time.
 */
export function setCondition(s: { conditions?: DeploymentCondition[] }, c: DeploymentCondition): void {
  const cur = getCondition(s, c.type);
  if (cur && cur.status === c.status && cur.reason === c.reason) return;
  if (cur && cur.status === c.status) c = { ...c, lastTransitionTime: cur.lastTransitionTime };
  s.conditions = [...(s.conditions ?? []).filter((x) => x.type !== c.type), c];
}

export function removeCondition(s: { conditions?: DeploymentCondition[] }, type: string): void {
  if (s.conditions) s.conditions = s.conditions.filter((c) => c.type !== type);
}

/** calculateStatus: the counts over all ReplicaSets and the Available condition. */
export function calculateStatus(d: Deployment, allRSs: readonly ReplicaSet[], newRS: ReplicaSet | undefined, now: number): DeploymentStatus {
  const st = (rs: ReplicaSet) => rs.status ?? {};
  const availableReplicas = allRSs.reduce((n, rs) => n + (st(rs).availableReplicas ?? 0), 0);
  const total = allRSs.reduce((n, rs) => n + specReplicas(rs), 0);
  const cur = (d.status ?? {}) as Partial<DeploymentStatus>;
  const status: DeploymentStatus = {
    observedGeneration: d.metadata.generation,
    replicas: allRSs.reduce((n, rs) => n + (st(rs).replicas ?? 0), 0),
    updatedReplicas: newRS ? (st(newRS).replicas ?? 0) : 0,
    readyReplicas: allRSs.reduce((n, rs) => n + (st(rs).readyReplicas ?? 0), 0),
    availableReplicas,
    unavailableReplicas: Math.max(0, total - availableReplicas),
    conditions: structuredClone(cur.conditions ?? []),
  };
  if (cur.collisionCount !== undefined) status.collisionCount = cur.collisionCount;
  if (availableReplicas >= replicasOf(d) - maxUnavailable(d)) {
    setCondition(status, newCondition(AVAILABLE, 'True', Reasons.MinimumReplicasAvailable, 'Deployment has minimum availability.', now));
  } else {
    setCondition(status, newCondition(AVAILABLE, 'False', Reasons.MinimumReplicasUnavailable, 'Deployment does not have minimum availability.', now));
  }
  return status;
}

export const progressDeadlineSeconds = (d: Deployment): number | undefined => d.spec?.progressDeadlineSeconds as number | undefined;
/** HasProgressDeadline: set and not MaxInt32 (which means "no deadline"). */
export const hasProgressDeadline = (d: Deployment): boolean => {
  const s = progressDeadlineSeconds(d);
  return s !== undefined && s !== null && s !== 2 ** 31 - 1;
};

/** DeploymentComplete: every replica updated and available, and this generation observed. */
export function isComplete(d: Deployment, s: DeploymentStatus): boolean {
  const want = replicasOf(d);
  return s.updatedReplicas === want && s.replicas === want && s.availableReplicas === want && (s.observedGeneration ?? 0) >= (d.metadata.generation ?? 0);
}

/** DeploymentProgressing: more updated, fewer old, more ready or more available pods than the stored status says. */
export function isProgressing(d: Deployment, s: DeploymentStatus): boolean {
  const old = (d.status ?? {}) as Partial<DeploymentStatus>;
  const oldOld = (old.replicas ?? 0) - (old.updatedReplicas ?? 0);
  const newOld = s.replicas - s.updatedReplicas;
  return s.updatedReplicas > (old.updatedReplicas ?? 0) || newOld < oldOld
    || s.readyReplicas > (old.readyReplicas ?? 0) || s.availableReplicas > (old.availableReplicas ?? 0);
}

/** DeploymentTimedOut: Progressing was last updated more than progressDeadlineSeconds ago (and the rollout is not done). */
export function isTimedOut(d: Deployment, s: DeploymentStatus, now: number): boolean {
  if (!hasProgressDeadline(d)) return false;
  const c = getCondition(s, PROGRESSING);
  if (!c) return false;
  if (c.reason === Reasons.NewRSAvailable) return false;
  if (c.reason === Reasons.TimedOut) return true;
  const from = Date.parse(c.lastUpdateTime ?? c.lastTransitionTime ?? '');
  return Number.isFinite(from) && from + progressDeadlineSeconds(d)! * 1000 < now;
}

/**
 * syncRolloutStatus's condition step (mutates `s`): Progressing from the
 * rollout's state, and the new ReplicaSet's ReplicaFailure copied up.
 */
export function updateProgressing(d: Deployment, s: DeploymentStatus, newRS: ReplicaSet | undefined, allRSs: readonly ReplicaSet[], now: number): void {
  if (!hasProgressDeadline(d)) removeCondition(s, PROGRESSING);
  const cur = getCondition(s, PROGRESSING);
  const complete = s.replicas === s.updatedReplicas && cur?.reason === Reasons.NewRSAvailable;
  if (hasProgressDeadline(d) && !complete) {
    const what = newRS ? `ReplicaSet "${newRS.metadata.name}"` : `Deployment "${d.metadata.name}"`;
    if (isComplete(d, s)) {
      setCondition(s, newCondition(PROGRESSING, 'True', Reasons.NewRSAvailable, `${what} has successfully progressed.`, now));
    } else if (isProgressing(d, s)) {
      const c = newCondition(PROGRESSING, 'True', Reasons.ReplicaSetUpdated, `${what} is progressing.`, now);
      // Progress refreshes lastUpdateTime (the deadline counts from it) even when the reason is unchanged.
      if (cur?.status === 'True') c.lastTransitionTime = cur.lastTransitionTime;
      removeCondition(s, PROGRESSING);
      setCondition(s, c);
    } else if (isTimedOut(d, s, now)) {
      setCondition(s, newCondition(PROGRESSING, 'False', Reasons.TimedOut, `${what} has timed out progressing.`, now));
    }
  }
  const failure = [newRS, ...allRSs].map((rs) => rs && ((rs.status?.conditions as Condition[] | undefined) ?? []).find((c) => c.type === REPLICA_FAILURE)).find(Boolean);
  if (failure) {
    setCondition(s, { type: REPLICA_FAILURE, status: failure.status, reason: failure.reason, message: failure.message, lastUpdateTime: failure.lastTransitionTime, lastTransitionTime: failure.lastTransitionTime });
  } else {
    removeCondition(s, REPLICA_FAILURE);
  }
}

/**
 * requeueStuckDeployment: when to look again so a stalled rollout is seen to
 * pass its deadline (ms from now; 0: now, which the caller must rate-limit
 * as Kubernetes does), or undefined when nothing is pending.
 *
 * A Deployment whose Progressing reason is NewReplicaSetAvailable has no
 * pending deadline even when it is no longer complete (a node went down and
 * took an available pod with it): isTimedOut never fires for that reason, so
 * a recheck could change nothing. Kubernetes requeues it anyway, rate-limited,
 * for as long as it stays so; here it waits for the next change instead.
 */
export function recheckAfter(d: Deployment, s: DeploymentStatus, now: number): number | undefined {
  const c = getCondition(s, PROGRESSING);
  if (!hasProgressDeadline(d) || !c) return undefined;
  if (isComplete(d, s) || c.reason === Reasons.TimedOut || c.reason === Reasons.NewRSAvailable) return undefined;
  const from = Date.parse(c.lastUpdateTime ?? c.lastTransitionTime ?? '');
  if (!Number.isFinite(from)) return undefined;
  const after = from + progressDeadlineSeconds(d)! * 1000 - now;
  return after < 1000 ? 0 : after + 1000;
}

/** Whether writing `next` changes what is stored (key order aside). */
export function statusDiffers(d: Deployment, next: DeploymentStatus): boolean {
  return canonicalJSON(d.status ?? {}) !== canonicalJSON(next);
}
