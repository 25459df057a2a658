// The annotations a Deployment's ReplicaSets carry (Kubernetes'
// deployment/util): the revision (which kubectl rollout history lists and
// undo picks from), the revisions a template had before (revision-history),
// and the Deployment's replicas and replicas+surge when the ReplicaSet was
// last scaled (desired-replicas, max-replicas), from which a scaling event is
// told apart from a rollout and proportional scaling computes shares.
import type { Deployment, ReplicaSet } from '../../informer/types.ts';

export const REVISION = 'deployment.kubernetes.io/revision';
export const REVISION_HISTORY = 'deployment.kubernetes.io/revision-history';
export const DESIRED_REPLICAS = 'deployment.kubernetes.io/desired-replicas';
export const MAX_REPLICAS = 'deployment.kubernetes.io/max-replicas';
/** kubectl's last applied configuration: per object, never copied. */
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
const ROLLBACK_TO = 'deprecated.deployment.rollback.to';

/** Annotations not copied from a Deployment to its ReplicaSets (skipCopyAnnotation), nor back by kubectl rollout undo (annotationsToSkip). */
export const NOT_COPIED = new Set([LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO]);

/** Kubernetes keeps revision-history to this many characters by default (--deployment-controller-max-revision-history-length is not a flag; 2000 is MaxRevHistoryLengthInChars). */
const MAX_REVISION_HISTORY_CHARS = 2000;

/** The revision of a ReplicaSet (0 when absent or malformed). */
export function revisionOf(rs: ReplicaSet | Deployment): number {
  const v = rs.metadata.annotations?.[REVISION];
  const n = v === undefined ? 0 : Number(v);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

export function maxRevision(rss: readonly ReplicaSet[]): number {
  return rss.reduce((m, rs) => Math.max(m, revisionOf(rs)), 0);
}

function intAnnotation(o: ReplicaSet, key: string): number | undefined {
  const v = o.metadata.annotations?.[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}

export const desiredReplicasAnnotation = (rs: ReplicaSet) => intAnnotation(rs, DESIRED_REPLICAS);
export const maxReplicasAnnotation = (rs: ReplicaSet) => intAnnotation(rs, MAX_REPLICAS);

/** Sets desired-replicas and max-replicas on `rs` (mutates); true when they changed. */
export function setReplicasAnnotations(rs: ReplicaSet, desired: number, max: number): boolean {
  const a = (rs.metadata.annotations ??= {});
  const d = String(desired);
  const m = String(max);
  if (a[DESIRED_REPLICAS] === d && a[MAX_REPLICAS] === m) return false;
  a[DESIRED_REPLICAS] = d;
  a[MAX_REPLICAS] = m;
  return true;
}

/**
 * SetNewReplicaSetAnnotations (mutates `rs`): copies the Deployment's own
 * annotations, raises the revision to `newRevision` (remembering the old one
 * in revision-history — a template rolled back to keeps its history), and on a
 * ReplicaSet being created records the replica annotations. True when changed.
 */
export function setNewReplicaSetAnnotations(d: Deployment, rs: ReplicaSet, newRevision: number, exists: boolean, maxSurge: number): boolean {
  const a = (rs.metadata.annotations ??= {});
  let changed = false;
  for (const [k, v] of Object.entries(d.metadata.annotations ?? {})) {
    if (NOT_COPIED.has(k) || a[k] === v) continue;
    a[k] = v;
    changed = true;
  }
  const old = a[REVISION];
  const oldN = old === undefined ? 0 : Number(old);
  if (old !== undefined && !Number.isInteger(oldN)) return changed;
  if (oldN < newRevision) {
    a[REVISION] = String(newRevision);
    changed = true;
    if (old !== undefined && old !== '') {
      const history = a[REVISION_HISTORY] ? a[REVISION_HISTORY].split(',') : [];
      history.push(old);
      while (history.join(',').length > MAX_REVISION_HISTORY_CHARS && history.length > 1) history.shift();
      a[REVISION_HISTORY] = history.join(',');
    }
  }
  const replicas = d.spec?.replicas ?? 1;
  if (!exists && setReplicasAnnotations(rs, replicas, replicas + maxSurge)) changed = true;
  return changed;
}
