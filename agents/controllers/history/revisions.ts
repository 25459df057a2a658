// ControllerRevisions, the history StatefulSets and DaemonSets keep of their
// pod templates (Kubernetes' pkg/controller/history): each revision holds a
// patch `{"spec":{"template":{…,"$patch":"replace"}}}`, is named
// `<owner>-<hash>` where the hash is FNV-32a of that patch (and of the
// owner's collisionCount when set) in Kubernetes' "safe" alphabet, and
// carries the `controller-revision-hash` label. The update revision is the
// one equal to the current template: reused (renumbered to the top when it
// was an older one, which is a rollback) or created.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { type KindDef, resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { PodTemplate, Stored } from '../../informer/types.ts';
import { canonical } from '../conditions.ts';
import type { ControllerContext } from '../context.ts';
import { controllerRef, newControllerRef } from '../ownership.ts';

export const REVISIONS = resolveKind('controllerrevisions')!;
/** Label of revisions and pods: the revision (StatefulSet pods: its name; DaemonSet pods and revisions: its hash). */
export const CONTROLLER_REVISION_HASH = 'controller-revision-hash';

export interface ControllerRevision extends Stored {
  data?: { spec?: { template?: PodTemplate & { $patch?: string } } };
  revision: number;
}

/** What a revision records of its owner: the pod template, to be applied whole. */
export function revisionData(template: PodTemplate | undefined): ControllerRevision['data'] {
  return { spec: { template: { ...structuredClone(template ?? {}), $patch: 'replace' } } };
}

/** The pod template a revision holds. */
export function templateOf(rev: ControllerRevision): PodTemplate {
  const { $patch: _, ...template } = rev.data?.spec?.template ?? {};
  return structuredClone(template);
}

/** FNV-1a, 32 bits. */
function fnv32a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Kubernetes' rand.SafeEncodeString: no vowels, no 0/1/3 (no words, no look-alikes). */
const SAFE = 'bcdfghjklmnpqrstvwxz2456789';
export const safeEncode = (s: string): string => [...s].map((c) => SAFE[c.charCodeAt(0) % SAFE.length]).join('');

/** The hash naming a revision with this data. */
export function revisionHash(data: ControllerRevision['data'], collisionCount?: number): string {
  const bytes = canonical(data) + (collisionCount ? String(collisionCount) : '');
  return safeEncode(String(fnv32a(bytes)));
}

export const sameData = (a: ControllerRevision, data: ControllerRevision['data']): boolean => canonical(a.data) === canonical(data);

type Owner = Stored & { spec?: { template?: PodTemplate }; status?: { collisionCount?: number } };

export interface Revisions {
  /** Every revision of the owner, oldest first. */
  all: ControllerRevision[];
  /** The revision of the current template. */
  update: ControllerRevision;
}

/**
 * The owner's revisions, with the one of its current template created (or
 * renumbered to the top). A name taken by different data bumps the
 * owner's status.collisionCount and throws, so the next pass tries the
 * next name, as Kubernetes does.
 */
export async function syncRevisions(ctx: ControllerContext, informer: Informer<ControllerRevision>, owner: Owner, kind: KindDef): Promise<Revisions> {
  const ns = owner.metadata.namespace ?? '';
  const all = informer.byNamespace(ns).filter((r) => controllerRef(r)?.uid === owner.metadata.uid).sort((a, b) => a.revision - b.revision);
  const data = revisionData(owner.spec?.template);
  const top = all.length ? all[all.length - 1]!.revision : 0;
  const equal = all.filter((r) => sameData(r, data));
  if (equal.length) {
    const rev = equal[equal.length - 1]!;
    if (rev.revision === top) return { all, update: rev };
    // A rollback to an older template: that revision becomes the newest.
    const updated = await ctx.client.update<ControllerRevision>(resourcePath(REVISIONS, ns, rev.metadata.name), { ...rev, revision: top + 1 });
    return { all: [...all.filter((r) => r !== rev), updated], update: updated };
  }
  const hash = revisionHash(data, owner.status?.collisionCount);
  const rev = {
    apiVersion: 'apps/v1', kind: 'ControllerRevision',
    metadata: {
      name: `${owner.metadata.name}-${hash}`, namespace: ns,
      labels: { ...(owner.spec?.template?.metadata?.labels ?? {}), [CONTROLLER_REVISION_HASH]: hash },
      ownerReferences: [newControllerRef(owner)],
    },
    data, revision: top + 1,
  };
  try {
    const made = await ctx.client.create<ControllerRevision>(resourcePath(REVISIONS, ns), rev);
    return { all: [...all, made], update: made };
  } catch (e) {
    if (!(e instanceof ApiClientError && e.code === 409)) throw e;
    const existing = await ctx.client.get<ControllerRevision>(resourcePath(REVISIONS, ns, rev.metadata.name));
    if (sameData(existing, data) && controllerRef(existing)?.uid === owner.metadata.uid) return { all: [...all.filter((r) => r.metadata.name !== existing.metadata.name), existing], update: existing };
    await ctx.client.update(resourcePath(kind, ns, owner.metadata.name, 'status'), { ...owner, status: { ...owner.status, collisionCount: (owner.status?.collisionCount ?? 0) + 1 } });
    throw new HashCollisionError(`${kind.kind} ${ns}/${owner.metadata.name}: revision name ${rev.metadata.name} is taken by other data; collisionCount incremented`);
  }
}

/** A revision name was taken by different data: increment collisionCount and try again. */
export class HashCollisionError extends Error {
  override name = 'HashCollisionError';
}

/**
 * Deletes the oldest revisions beyond `limit` that are neither `keep`
 * (current, update) nor the revision of a live pod.
 */
export async function truncateHistory(ctx: ControllerContext, revisions: ControllerRevision[], keep: Set<string>, inUse: Set<string>, limit: number): Promise<void> {
  const removable = revisions.filter((r) => !keep.has(r.metadata.name) && !inUse.has(r.metadata.name) && !inUse.has(r.metadata.labels?.[CONTROLLER_REVISION_HASH] ?? ''));
  const excess = removable.length - limit;
  for (const r of removable.slice(0, Math.max(0, excess))) {
    await ctx.client.delete(resourcePath(REVISIONS, r.metadata.namespace, r.metadata.name)).catch((e) => {
      if (!(e instanceof ApiClientError && e.code === 404)) throw e;
    });
  }
}
