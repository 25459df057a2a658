// Owner references as Kubernetes' controllers use them: who controls an
// object (the one ownerReference with controller: true), how an owner adopts
// orphans that match its selector and releases objects that no longer match
// (ControllerRefManager), and how a pod is made from a template.
import { type ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import type { KindDef } from '../client/kinds.ts';
import type { KubeObject, LabelSelector, PodTemplate } from '../informer/types.ts';
import type { OwnerReference } from '../../api/schema/types.ts';
import { labelSelectorMatches } from '../../api/selectors.ts';
import type { Informer } from '../informer/informer.ts';

export type { OwnerReference };

type WithOwners = KubeObject & { metadata: { ownerReferences?: OwnerReference[] } };

/** The controlling owner reference, if any. */
export function controllerRef(obj: KubeObject): OwnerReference | undefined {
  return ((obj as WithOwners).metadata?.ownerReferences ?? []).find((r) => r.controller);
}

export function isControlledBy(obj: KubeObject, owner: KubeObject): boolean {
  const ref = controllerRef(obj);
  return !!ref && !!owner.metadata?.uid && ref.uid === owner.metadata.uid;
}

/** The reference an owner puts on what it creates (controller, blocking foreground deletion). */
export function newControllerRef(owner: KubeObject): OwnerReference {
  const m = owner.metadata ?? {};
  if (!owner.apiVersion || !owner.kind || !m.name || !m.uid) throw new Error('an owner needs apiVersion, kind, name and uid');
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: m.name, uid: m.uid, controller: true, blockOwnerDeletion: true };
}

/** Does a label selector select these labels? No selector, or an invalid one, selects nothing. */
export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  try {
    return labelSelectorMatches(selector, labels);
  } catch {
    return false;
  }
}

export interface ClaimOptions {
  client: ApiClient;
  /** The kind of the claimed objects (pods, replicasets, …). */
  kind: KindDef;
  owner: KubeObject;
  selector: LabelSelector | undefined;
  /**
   * Checked once before the first adoption (Kubernetes' RecheckDeletionTimestamp):
   * a fresh read of the owner proving it still exists with this uid and is not being deleted.
   */
  canAdopt?: () => Promise<boolean>;
}

/**
 * Kubernetes' ClaimObjects: of `candidates` (objects in the owner's
 * namespace), returns those the owner controls after adopting matching
 * orphans and releasing controlled objects that stopped matching. Each
 * change is a merge patch with the object's uid and resourceVersion as
 * preconditions, so a concurrent change wins and the next reconcile sees it.
 */
export async function claimObjects<T extends KubeObject>(candidates: readonly T[], o: ClaimOptions): Promise<T[]> {
  const owned: T[] = [];
  const ownerUid = o.owner.metadata?.uid;
  const ownerDeleting = !!o.owner.metadata?.deletionTimestamp;
  let adoptable: boolean | undefined;
  for (const obj of candidates) {
    const ref = controllerRef(obj);
    const matches = selectorMatches(o.selector, obj.metadata?.labels);
    if (ref) {
      if (ref.uid !== ownerUid) continue;
      if (matches || ownerDeleting) {
        owned.push(obj);
        continue;
      }
      // Release: drop our reference (ignore objects already gone or changed).
      if (obj.metadata?.deletionTimestamp) continue;
      const refs = ((obj as WithOwners).metadata.ownerReferences ?? []).filter((r) => r.uid !== ownerUid);
      await ignoreGoneOrChanged(patchOwners(o, obj, refs));
      continue;
    }
    if (!matches || ownerDeleting || obj.metadata?.deletionTimestamp) continue;
    adoptable ??= o.canAdopt ? await o.canAdopt() : true;
    if (!adoptable) continue;
    const adopted = await adopt(o, obj);
    if (adopted) owned.push(adopted as T);
  }
  return owned;
}

/**
 * Adopts an orphan. When the cached copy is stale (409), reads the object
 * again: a stale cache often means this owner adopted it already (a reconcile
 * ran before the cache saw the earlier adoption), and then it is owned — not
 * counting it would make a ReplicaSet create a pod too many.
 */
async function adopt(o: ClaimOptions, obj: KubeObject): Promise<KubeObject | undefined> {
  const patch = (cur: KubeObject) => patchOwners(o, cur, [...((cur as WithOwners).metadata.ownerReferences ?? []), newControllerRef(o.owner)]);
  const adopted = await ignoreGoneOrChanged(patch(obj));
  if (adopted) return adopted;
  const m = obj.metadata!;
  const fresh = await ignoreGoneOrChanged(o.client.get(resourcePath(o.kind, m.namespace, m.name)));
  if (!fresh || fresh.metadata?.uid !== m.uid || fresh.metadata?.deletionTimestamp || !selectorMatches(o.selector, fresh.metadata?.labels)) return undefined;
  const ref = controllerRef(fresh);
  if (ref) return ref.uid === o.owner.metadata?.uid ? fresh : undefined;
  return ignoreGoneOrChanged(patch(fresh));
}

function patchOwners(o: ClaimOptions, obj: KubeObject, refs: OwnerReference[]): Promise<KubeObject> {
  const m = obj.metadata!;
  return o.client.patch(resourcePath(o.kind, m.namespace, m.name), {
    metadata: { ownerReferences: refs, uid: m.uid, resourceVersion: m.resourceVersion },
  }, 'application/merge-patch+json');
}

async function ignoreGoneOrChanged(p: Promise<KubeObject>): Promise<KubeObject | undefined> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ApiClientError && (e.code === 404 || e.code === 409)) return undefined;
    throw e;
  }
}

/**
 * A pod for an owner from its template (Kubernetes' GetPodFromTemplate): the
 * template's labels, annotations and spec, generateName "<prefix>-" unless a
 * name is given, and the controller reference.
 */
export function podFromTemplate(template: PodTemplate, owner: KubeObject, opts: { generateName?: string; name?: string; namespace?: string } = {}): KubeObject {
  const tm = template.metadata ?? {};
  const metadata: Record<string, unknown> = {
    namespace: opts.namespace ?? owner.metadata?.namespace,
    labels: { ...(tm.labels ?? {}) },
    annotations: { ...(tm.annotations ?? {}) },
    ownerReferences: [newControllerRef(owner)],
  };
  if (tm.finalizers) metadata.finalizers = [...tm.finalizers];
  if (opts.name) metadata.name = opts.name;
  else metadata.generateName = opts.generateName ?? `${owner.metadata?.name}-`;
  return { apiVersion: 'v1', kind: 'Pod', metadata, spec: structuredClone(template.spec ?? {}) } as KubeObject;
}

/** Index of objects by their controller's uid; objects without a controller are filed under ORPHAN. */
export const CONTROLLER_UID_INDEX = 'controller-uid';
const ORPHAN = '<orphan>';

/** Adds CONTROLLER_UID_INDEX to a shared informer unless another controller already did. */
export function indexByController<T extends KubeObject>(informer: Informer<T>): void {
  if (!informer.hasIndexer(CONTROLLER_UID_INDEX)) informer.addIndexer(CONTROLLER_UID_INDEX, (o) => controllerRef(o)?.uid ?? ORPHAN);
}

/** The candidates of claimObjects from an indexed informer: what `owner` controls plus the orphans of its namespace. */
export function ownedOrOrphans<T extends KubeObject>(informer: Informer<T>, owner: KubeObject): T[] {
  const ns = owner.metadata?.namespace ?? '';
  const mine = owner.metadata?.uid ? informer.byIndex(CONTROLLER_UID_INDEX, owner.metadata.uid) : [];
  return [...mine.filter((o) => (o.metadata?.namespace ?? '') === ns), ...informer.byIndex(CONTROLLER_UID_INDEX, ORPHAN).filter((o) => (o.metadata?.namespace ?? '') === ns)];
}

/**
 * ClaimOptions.canAdopt as Kubernetes' controllers make it: a fresh read
 * proving the owner still exists with the same uid and is not being deleted.
 */
export function ownerStillThere(client: ApiClient, kind: KindDef, owner: KubeObject): () => Promise<boolean> {
  return async () => {
    const m = owner.metadata ?? {};
    const fresh = await client.get<KubeObject>(resourcePath(kind, m.namespace, m.name));
    return fresh.metadata?.uid === m.uid && !fresh.metadata?.deletionTimestamp;
  };
}
