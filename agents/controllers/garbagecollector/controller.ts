// The garbage collector (Kubernetes' garbagecollector): follows every kind
// that can have ownerReferences through the shared informers, and
//  - deletes dependents whose owners are all gone (background propagation),
//    after checking each owner with a live GET by name and uid, since caches lag;
//  - for an owner deleted in the foreground (foregroundDeletion finalizer),
//    deletes its dependents and removes the finalizer once no dependent that
//    blocks owner deletion is left;
//  - for an owner deleted with the orphan finalizer, removes its reference
//    from every dependent, then the finalizer.
// The owner→dependents graph is the informers' index of ownerReference uids.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { type KindDef, kindForObject, resolveKind } from '../../client/kinds.ts';
import { type Informer, keyOf, splitKey } from '../../informer/informer.ts';
import type { KubeObject } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import {
  type OwnerState, decideDependent, decideOwner, hasFinalizer, isDeletingDependents, ownerRefsOf, FINALIZER_FOREGROUND, FINALIZER_ORPHAN,
} from './decide.ts';

/** Kinds whose objects may have owners or be owners (those this build serves are followed). */
export const GC_RESOURCES = [
  'pods', 'replicasets', 'deployments', 'statefulsets', 'daemonsets', 'jobs', 'cronjobs', 'controllerrevisions',
  'persistentvolumeclaims', 'endpoints', 'endpointslices', 'configmaps', 'secrets', 'services', 'serviceaccounts',
  'horizontalpodautoscalers', 'leases', 'namespaces', 'nodes', 'persistentvolumes',
];

/** The informers' index of objects by the uids of their owners. */
const OWNER_UID_INDEX = 'gc-owner-uid';

/** Owners found absent are remembered (by uid) so that many dependents of one deleted owner cost one GET. */
const ABSENT_OWNERS_MAX = 2048;

interface Item {
  kind: KindDef;
  namespace: string;
  name: string;
}

export class GarbageCollector extends QueueController {
  private readonly informers: { kind: KindDef; informer: Informer<KubeObject> }[] = [];
  /** uid → queue key of every cached object (to find the owners of a deleted dependent). */
  private readonly byUid = new Map<string, string>();
  private readonly absentOwners = new Set<string>();
  /**
   * Until every followed kind has synced, an owner missing from the caches may
   * just not be listed yet: such dependents wait here and are checked once
   * all caches are full, instead of costing a GET each at start.
   */
  private synced = false;
  private readonly uncertain = new Set<string>();

  constructor(ctx: ControllerContext) {
    super(ctx, 'garbagecollector');
    for (const res of GC_RESOURCES) {
      const kind = resolveKind(res);
      if (!kind) continue; // not served by this build
      const informer = ctx.informers.informer<KubeObject>(res);
      try {
        informer.addIndexer(OWNER_UID_INDEX, (o) => ownerRefsOf(o).map((r) => r.uid));
      } catch {
        // Another collector in this process indexed it already.
      }
      this.informers.push({ kind, informer });
      this.handle(informer, {
        onAdd: (o) => this.observe(kind, undefined, o),
        onUpdate: (old, o) => this.observe(kind, old, o),
        onDelete: (o) => this.observeDeleted(kind, o),
      });
    }
  }

  // ---------------------------------------------------------------- the graph

  private keyFor(kind: KindDef, obj: KubeObject): string {
    return `${kind.group}/${kind.plural}\t${keyOf(obj)}`;
  }

  private parseKey(key: string): Item {
    const [res, objKey] = key.split('\t');
    const slash = res.indexOf('/');
    const group = res.slice(0, slash);
    const plural = res.slice(slash + 1);
    const entry = this.informers.find((i) => i.kind.group === group && i.kind.plural === plural);
    if (!entry) throw new Error(`garbage collector: unknown resource in key ${key}`);
    return { kind: entry.kind, ...splitKey(objKey) };
  }

  private informerOf(kind: KindDef): Informer<KubeObject> | undefined {
    return this.informers.find((i) => i.kind === kind)?.informer;
  }

  /** Dependents in the caches: objects with an ownerReference to `uid`. */
  private dependentsOf(uid: string): { kind: KindDef; obj: KubeObject }[] {
    const out: { kind: KindDef; obj: KubeObject }[] = [];
    for (const { kind, informer } of this.informers) for (const obj of informer.byIndex(OWNER_UID_INDEX, uid)) out.push({ kind, obj });
    return out;
  }

  /** Whether a cached object with this uid exists. */
  private cachedUid(uid: string): boolean {
    return this.byUid.has(uid);
  }

  private observe(kind: KindDef, old: KubeObject | undefined, obj: KubeObject): void {
    const uid = obj.metadata?.uid;
    if (uid) {
      this.byUid.set(uid, this.keyFor(kind, obj));
      this.absentOwners.delete(uid);
    }
    const deletingNow = !!obj.metadata?.deletionTimestamp;
    const gcFinalizer = hasFinalizer(obj, FINALIZER_ORPHAN) || hasFinalizer(obj, FINALIZER_FOREGROUND);
    if (deletingNow && gcFinalizer) {
      this.enqueue(this.keyFor(kind, obj));
      // An owner that starts deleting in the foreground: its dependents must go first.
      if (isDeletingDependents(obj) && !(old && isDeletingDependents(old)) && uid) {
        for (const d of this.dependentsOf(uid)) this.enqueue(this.keyFor(d.kind, d.obj));
      }
    }
    // A dependent whose owner references changed, or that names an owner not in the caches: check it.
    const refs = ownerRefsOf(obj);
    if (!refs.length) return;
    const changed = !old || JSON.stringify(ownerRefsOf(old)) !== JSON.stringify(refs);
    if (changed && refs.some((r) => !this.cachedUid(r.uid) || this.absentOwners.has(r.uid))) {
      if (this.synced) this.enqueue(this.keyFor(kind, obj));
      else this.uncertain.add(this.keyFor(kind, obj));
    }
  }

  override async run(signal: AbortSignal): Promise<void> {
    const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    await Promise.race([Promise.all(this.informers.map((i) => i.informer.waitForSync())), aborted]);
    if (signal.aborted) return;
    this.synced = true;
    for (const key of this.uncertain) {
      const { kind, namespace, name } = this.parseKey(key);
      const obj = this.informerOf(kind)?.get(namespace, name);
      if (obj && ownerRefsOf(obj).some((r) => !this.cachedUid(r.uid))) this.enqueue(key);
    }
    this.uncertain.clear();
    return super.run(signal);
  }

  private observeDeleted(kind: KindDef, obj: KubeObject): void {
    const uid = obj.metadata?.uid;
    if (uid) {
      this.byUid.delete(uid);
      // Its dependents may have lost their last owner.
      for (const d of this.dependentsOf(uid)) this.enqueue(this.keyFor(d.kind, d.obj));
    }
    this.uncertain.delete(this.keyFor(kind, obj));
    // Owners waiting for their dependents to go may now be done.
    for (const r of ownerRefsOf(obj)) {
      const key = this.byUid.get(r.uid);
      if (key) this.enqueue(key);
    }
  }

  // ---------------------------------------------------------------- reconcile

  protected async reconcile(key: string): Promise<void> {
    const item = this.parseKey(key);
    const latest = await this.getLive(item);
    if (!latest) return;
    if (latest.metadata?.deletionTimestamp) {
      await this.processOwner(item, latest);
      return;
    }
    await this.processDependent(item, latest);
  }

  private async processOwner(item: Item, owner: KubeObject): Promise<void> {
    const uid = owner.metadata!.uid!;
    const action = decideOwner(owner, this.dependentsOf(uid).map((d) => d.obj));
    switch (action.do) {
      case 'nothing':
        return;
      case 'orphan':
        for (const dep of action.dependents) await this.removeOwnerRefs(this.kindOfCached(dep), dep, [uid]);
        // Re-check from the caches once the patches are seen; then the finalizer goes.
        this.enqueueAfter(this.keyFor(item.kind, owner), 200);
        return;
      case 'waitFor':
        for (const dep of action.dependents) {
          if (!isDeletingDependents(dep)) this.enqueue(this.keyFor(this.kindOfCached(dep), dep));
        }
        return;
      case 'removeFinalizer':
        await this.removeFinalizer(item, owner, action.finalizer);
        this.log.info({ owner: keyOf(owner), kind: item.kind.kind, finalizer: action.finalizer }, 'dependents handled; finalizer removed');
    }
  }

  private async processDependent(item: Item, obj: KubeObject): Promise<void> {
    const refs = ownerRefsOf(obj);
    if (!refs.length) return;
    const states = new Map<string, OwnerState>();
    for (const r of refs) states.set(r.uid, await this.ownerState(obj, r));
    const uid = obj.metadata!.uid!;
    const action = decideDependent(obj, states, this.dependentsOf(uid).length > 0);
    switch (action.do) {
      case 'nothing':
        return;
      case 'removeOwnerRefs':
        await this.removeOwnerRefs(item.kind, obj, action.uids);
        return;
      case 'delete':
        this.log.info({ object: keyOf(obj), kind: item.kind.kind, policy: action.policy }, 'deleting an object whose owners are gone or going');
        await this.deleteObject(item, obj, action.policy);
    }
  }

  /**
   * DELETE with the uid and the resourceVersion the decision was made on. A
   * conflict caused by a change that left the owner references as they were
   * (a status write) does not change the decision: delete again with the uid
   * alone, as Kubernetes' collector does; otherwise decide afresh.
   */
  private async deleteObject(item: Item, obj: KubeObject, policy: string): Promise<void> {
    const path = resourcePath(item.kind, item.namespace, item.name);
    const del = (resourceVersion?: string) => this.ctx.client.delete(path, {
      kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: policy, preconditions: { uid: obj.metadata!.uid, resourceVersion },
    });
    try {
      await del(obj.metadata?.resourceVersion);
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return;
      if (!(e instanceof ApiClientError && e.code === 409)) throw e;
      const live = await this.getLive(item);
      if (!live || live.metadata?.uid !== obj.metadata?.uid) return;
      if (JSON.stringify(ownerRefsOf(live)) !== JSON.stringify(ownerRefsOf(obj))) throw e; // decide again
      try {
        await del(undefined);
      } catch (e2) {
        if (e2 instanceof ApiClientError && e2.code === 404) return;
        throw e2;
      }
    }
  }

  /** A live GET of an owner by name; a different uid means the owner we knew is gone. */
  private async ownerState(dependent: KubeObject, ref: { apiVersion: string; kind: string; name: string; uid: string }): Promise<OwnerState> {
    if (this.absentOwners.has(ref.uid)) return 'absent';
    const kind = kindForObject(ref.apiVersion, ref.kind);
    // A kind this server does not serve: never treat the reference as dangling (Kubernetes retries too).
    if (!kind) throw new Error(`owner reference to an unknown kind ${ref.apiVersion}/${ref.kind}`);
    let owner: KubeObject;
    try {
      owner = await this.ctx.client.get(resourcePath(kind, kind.namespaced ? dependent.metadata?.namespace : undefined, ref.name));
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) {
        this.rememberAbsent(ref.uid);
        return 'absent';
      }
      throw e;
    }
    if (owner.metadata?.uid !== ref.uid) {
      this.rememberAbsent(ref.uid);
      return 'absent';
    }
    return isDeletingDependents(owner) ? 'deletingDependents' : 'present';
  }

  private rememberAbsent(uid: string): void {
    if (this.absentOwners.size >= ABSENT_OWNERS_MAX) this.absentOwners.delete(this.absentOwners.values().next().value!);
    this.absentOwners.add(uid);
  }

  private async getLive(item: Item): Promise<KubeObject | undefined> {
    try {
      return await this.ctx.client.get(resourcePath(item.kind, item.namespace, item.name));
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return undefined;
      throw e;
    }
  }

  private kindOfCached(obj: KubeObject): KindDef {
    const key = obj.metadata?.uid ? this.byUid.get(obj.metadata.uid) : undefined;
    if (!key) throw new Error(`garbage collector: ${keyOf(obj)} is not in the caches`);
    return this.parseKey(key).kind;
  }

  /** Drops the references to these owners (a strategic merge patch by uid, guarded by the object's uid, as Kubernetes does). */
  private async removeOwnerRefs(kind: KindDef, obj: KubeObject, uids: string[]): Promise<void> {
    const m = obj.metadata!;
    try {
      await this.ctx.client.patch(resourcePath(kind, m.namespace, m.name), {
        metadata: { uid: m.uid, ownerReferences: uids.map((uid) => ({ $patch: 'delete', uid })) },
      }, 'application/strategic-merge-patch+json');
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return;
      throw e;
    }
  }

  private async removeFinalizer(item: Item, obj: KubeObject, finalizer: string): Promise<void> {
    const m = obj.metadata!;
    try {
      await this.ctx.client.patch(resourcePath(item.kind, item.namespace, item.name), {
        metadata: { finalizers: (m.finalizers ?? []).filter((f) => f !== finalizer), resourceVersion: m.resourceVersion, uid: m.uid },
      }, 'application/merge-patch+json');
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return;
      throw e; // conflict: retried with fresh state
    }
  }
}
