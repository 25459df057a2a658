// Which garbage-collection finalizers a DELETE leaves on an object, as
// Kubernetes' generic registry decides it (deletionFinalizersForGarbageCollection):
// an explicit propagationPolicy wins; orphanDependents=true means Orphan; with
// neither, the finalizers already present stay, and a kind whose default is to
// orphan (core/v1 ReplicationControllers, batch/v1 Jobs, for compatibility with
// clients older than server-side cascading) gets the orphan finalizer. Decided
// at apply time from the stored object, so a concurrent DELETE cannot be lost.
import { FINALIZER_FOREGROUND, FINALIZER_ORPHAN } from '../api/finalizers.ts';

export { FINALIZER_FOREGROUND, FINALIZER_ORPHAN };

export type PropagationPolicy = 'Orphan' | 'Background' | 'Foreground';

export const PROPAGATION_POLICIES: readonly PropagationPolicy[] = ['Orphan', 'Background', 'Foreground'];

/** What a DELETE asks of the garbage collector (carried in the Raft command). */
export interface GcRequest {
  /** The explicit propagationPolicy (or Orphan/Background from orphanDependents). */
  policy?: PropagationPolicy;
  /** With no policy: the kind's default is to orphan dependents. */
  defaultOrphan?: boolean;
}

/** The object's finalizers after a DELETE with this request. */
export function finalizersForDelete(current: readonly string[] | undefined, gc: GcRequest | undefined): string[] {
  const cur = current ?? [];
  if (!gc) return [...cur];
  const orphan = gc.policy ? gc.policy === 'Orphan' : cur.includes(FINALIZER_ORPHAN) || !!gc.defaultOrphan;
  const foreground = gc.policy ? gc.policy === 'Foreground' : cur.includes(FINALIZER_FOREGROUND);
  const out = cur.filter((f) => f !== FINALIZER_ORPHAN && f !== FINALIZER_FOREGROUND);
  if (orphan) out.push(FINALIZER_ORPHAN);
  if (foreground) out.push(FINALIZER_FOREGROUND);
  return out;
}

/** Kinds (group/version/plural) whose DELETE orphans dependents unless asked otherwise (Kubernetes' strategies). */
const DEFAULT_ORPHAN = new Set(['/v1/replicationcontrollers', 'batch/v1/jobs']);

export function orphansByDefault(group: string, version: string, plural: string): boolean {
  return DEFAULT_ORPHAN.has(`${group}/${version}/${plural}`);
}

/**
 * The policy a DeleteOptions asks for: propagationPolicy, or the deprecated
 * orphanDependents; both at once is refused, as Kubernetes does.
 */
export function policyOf(propagationPolicy: unknown, orphanDependents: unknown): PropagationPolicy | undefined {
  if (propagationPolicy !== undefined && propagationPolicy !== null && propagationPolicy !== '') {
    if (orphanDependents !== undefined && orphanDependents !== null) {
      throw new Error('OrphanDependents and DeletionPropagation cannot be both set');
    }
    if (!PROPAGATION_POLICIES.includes(propagationPolicy as PropagationPolicy)) {
      throw new Error(`Unsupported value: "${String(propagationPolicy)}": supported values: "${PROPAGATION_POLICIES.join('", "')}"`);
    }
    return propagationPolicy as PropagationPolicy;
  }
  if (orphanDependents === true) return 'Orphan';
  if (orphanDependents === false) return 'Background';
  if (orphanDependents !== undefined && orphanDependents !== null) throw new Error('orphanDependents must be a boolean');
  return undefined;
}
