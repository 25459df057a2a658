// The conditions a terminating Namespace reports, as Kubernetes' namespace
// controller writes them (namespace_deleter.go): each of the five types is
// always present, False with a "done" reason when all is well, True with what
// is left when not. Pure: built from a summary of one pass over the content.

import type { Condition } from '../../informer/types.ts';

export interface DeletionSummary {
  /** Kinds whose delete or list failed, with the error. */
  failures: { resource: string; error: string }[];
  /** Objects still there after the pass, by resource ("pods." in Kubernetes' wording is resource.group). */
  remaining: Map<string, number>;
  /** Finalizers (other than the garbage collector's) still on remaining objects: finalizer → objects. */
  finalizers: Map<string, number>;
}

type Spec = { type: string; ok: { reason: string; message: string }; bad?: (s: DeletionSummary) => { reason: string; message: string } | undefined };

const SPECS: Spec[] = [
  { type: 'NamespaceDeletionDiscoveryFailure', ok: { reason: 'ResourcesDiscovered', message: 'All resources successfully discovered' } },
  { type: 'NamespaceDeletionGroupVersionParsingFailure', ok: { reason: 'ParsedGroupVersions', message: 'All legacy kube types successfully parsed' } },
  {
    type: 'NamespaceDeletionContentFailure',
    ok: { reason: 'ContentDeleted', message: 'All content successfully deleted, may be waiting on finalization' },
    bad: (s) => s.failures.length ? {
      reason: 'ContentDeletionFailed',
      message: `Failed to delete all resource types, ${s.failures.length} remaining: ${s.failures.map((f) => `${f.resource}: ${f.error}`).join(', ')}`,
    } : undefined,
  },
  {
    type: 'NamespaceContentRemaining',
    ok: { reason: 'ContentRemoved', message: 'All content successfully removed' },
    bad: (s) => s.remaining.size ? {
      reason: 'SomeResourcesRemain',
      message: `Some resources are remaining: ${sorted(s.remaining).map(([r, n]) => `${r} has ${n} resource instances`).join(', ')}`,
    } : undefined,
  },
  {
    type: 'NamespaceFinalizersRemaining',
    ok: { reason: 'ContentHasNoFinalizers', message: 'All content-preserving finalizers finished' },
    bad: (s) => s.finalizers.size ? {
      reason: 'SomeFinalizersRemain',
      message: `Some content in the namespace has finalizers remaining: ${sorted(s.finalizers).map(([f, n]) => `${f} in ${n} resource instances`).join(', ')}`,
    } : undefined,
  },
];

function sorted(m: Map<string, number>): [string, number][] {
  return [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The namespace's new conditions: one of each type, keeping the
 * lastTransitionTime of a condition whose status did not change.
 */
export function namespaceConditions(summary: DeletionSummary, previous: readonly Condition[] | undefined, now: string): Condition[] {
  return SPECS.map((s) => {
    const bad = s.bad?.(summary);
    const status = bad ? 'True' : 'False';
    const { reason, message } = bad ?? s.ok;
    const prev = previous?.find((c) => c.type === s.type);
    const lastTransitionTime = prev && prev.status === status && prev.lastTransitionTime ? prev.lastTransitionTime : now;
    return { type: s.type, status, lastTransitionTime, reason, message };
  });
}

/** Whether two condition lists say the same (ignoring order). */
export function sameConditions(a: readonly Condition[] | undefined, b: readonly Condition[]): boolean {
  if (!a || a.length !== b.length) return false;
  return b.every((c) => a.some((x) => x.type === c.type && x.status === c.status && x.reason === c.reason && x.message === c.message));
}
