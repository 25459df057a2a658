// What the garbage collector does with one object, as Kubernetes' garbage
// collector decides it (attemptToDeleteItem, processDeletingDependentsItem,
// orphanDependents) — pure functions of the object's latest state and of what
// became of its owners, so the rules can be read and tested as tables.
import { FINALIZER_FOREGROUND, FINALIZER_ORPHAN } from '../../../api/finalizers.ts';
import type { KubeObject } from '../../informer/types.ts';
import type { OwnerReference } from '../ownership.ts';

export { FINALIZER_FOREGROUND, FINALIZER_ORPHAN };

export type Policy = 'Orphan' | 'Background' | 'Foreground';

/** What a live lookup of an owner found. */
export type OwnerState =
  /** Gone, or replaced by another object of the same name (another uid): the reference dangles. */
  | 'absent'
  /** There and not deleting its dependents: a solid owner. */
  | 'present'
  /** Being deleted in the foreground: it waits for its dependents to go. */
  | 'deletingDependents';

export type DependentAction =
  | { do: 'nothing'; why: string }
  /** Keep the object (it has a solid owner) but drop the references to owners that are gone or going. */
  | { do: 'removeOwnerRefs'; uids: string[] }
  | { do: 'delete'; policy: Policy };

export function ownerRefsOf(obj: KubeObject): OwnerReference[] {
  return ((obj.metadata as { ownerReferences?: OwnerReference[] } | undefined)?.ownerReferences) ?? [];
}

export function hasFinalizer(obj: KubeObject, f: string): boolean {
  return (obj.metadata?.finalizers ?? []).includes(f);
}

export function isDeletingDependents(obj: KubeObject): boolean {
  return !!obj.metadata?.deletionTimestamp && hasFinalizer(obj, FINALIZER_FOREGROUND);
}

/**
 * A dependent, given the state of each of its owners (by uid) and whether it
 * has dependents of its own:
 * - with a solid owner it stays; references to owners that are gone or
 *   deleting in the foreground are removed;
 * - with no solid owner and some owner waiting for it, it is deleted in the
 *   foreground when it has dependents itself (so the wait reaches down the tree);
 * - otherwise it is deleted, honouring an orphan or foregroundDeletion finalizer
 *   it already carries, background by default.
 */
export function decideDependent(obj: KubeObject, owners: ReadonlyMap<string, OwnerState>, hasDependents: boolean): DependentAction {
  if (obj.metadata?.deletionTimestamp) return { do: 'nothing', why: 'already being deleted' };
  const refs = ownerRefsOf(obj);
  if (!refs.length) return { do: 'nothing', why: 'no owners' };
  const solid: string[] = [];
  const dangling: string[] = [];
  const waiting: string[] = [];
  for (const r of refs) {
    const s = owners.get(r.uid);
    if (s === undefined) throw new Error(`no state for owner ${r.kind}/${r.name} (${r.uid})`);
    (s === 'present' ? solid : s === 'absent' ? dangling : waiting).push(r.uid);
  }
  if (solid.length) {
    const gone = [...dangling, ...waiting];
    return gone.length ? { do: 'removeOwnerRefs', uids: gone } : { do: 'nothing', why: 'has a solid owner' };
  }
  if (waiting.length && hasDependents) return { do: 'delete', policy: 'Foreground' };
  if (hasFinalizer(obj, FINALIZER_ORPHAN)) return { do: 'delete', policy: 'Orphan' };
  if (hasFinalizer(obj, FINALIZER_FOREGROUND)) return { do: 'delete', policy: 'Foreground' };
  return { do: 'delete', policy: 'Background' };
}

export type OwnerAction =
  | { do: 'nothing'; why: string }
  /** Remove the owner's reference from these dependents, then the orphan finalizer. */
  | { do: 'orphan'; dependents: KubeObject[] }
  /** Blocking dependents remain: (re)consider deleting these. */
  | { do: 'waitFor'; dependents: KubeObject[] }
  | { do: 'removeFinalizer'; finalizer: string };

/**
 * An owner being deleted with an orphan or foregroundDeletion finalizer:
 * orphaning strips the owner's reference from every dependent before the
 * finalizer goes; a foreground deletion waits until no dependent whose
 * reference has blockOwnerDeletion is left (non-blocking dependents are
 * collected in the background after the owner is gone).
 */
export function decideOwner(owner: KubeObject, dependents: readonly KubeObject[]): OwnerAction {
  if (!owner.metadata?.deletionTimestamp) return { do: 'nothing', why: 'not being deleted' };
  const uid = owner.metadata.uid;
  if (hasFinalizer(owner, FINALIZER_ORPHAN)) {
    const still = dependents.filter((d) => ownerRefsOf(d).some((r) => r.uid === uid));
    return still.length ? { do: 'orphan', dependents: still } : { do: 'removeFinalizer', finalizer: FINALIZER_ORPHAN };
  }
  if (hasFinalizer(owner, FINALIZER_FOREGROUND)) {
    const blocking = dependents.filter((d) => ownerRefsOf(d).some((r) => r.uid === uid && r.blockOwnerDeletion === true));
    return blocking.length ? { do: 'waitFor', dependents: blocking } : { do: 'removeFinalizer', finalizer: FINALIZER_FOREGROUND };
  }
  return { do: 'nothing', why: 'no garbage-collector finalizer' };
}
