// The ReplicaSet controller (Kubernetes' replica_set.go): keeps as many
// active pods as spec.replicas — creating in slow-start batches of at most
// `burstReplicas`, deleting the pods ranked first by compareForDeletion —
// adopts matching orphans and releases pods that stop matching, and writes
// status. Expectations make it wait until its cache has seen what it asked
// for, so a slow cache (or a failover onto a fresh cache) never creates or
// deletes twice.
import { ApiClientError, ApiConnectionError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import { type Informer, keyOf } from '../../informer/informer.ts';
import type { Pod, ReplicaSet } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import { ControllerExpectations } from '../expectations.ts';
import { CONTROLLER_UID_INDEX, claimObjects, controllerRef, indexByController, ownedOrOrphans, podFromTemplate, selectorMatches } from '../ownership.ts';
import { availableAt, isPodActive, isPodReady, podsToDelete } from './pods.ts';
import { settleLimited, slowStartBatch } from './slow-start.ts';
import { calculateStatus, statusChanged } from './status.ts';

const PODS = resolveKind('pods')!;
const REPLICASETS = resolveKind('replicasets')!;

/** Kubernetes' BurstReplicas: creations or deletions per sync. */
export const BURST_REPLICAS = 500;
/** Requests one ReplicaSet's sync keeps pending at once (see slow-start.ts). */
export const MAX_IN_FLIGHT = 64;

const isReplicaSetRef = (r: { apiVersion: string; kind: string } | undefined) => !!r && r.kind === 'ReplicaSet' && r.apiVersion.startsWith('apps/');

export class ReplicaSetController extends QueueController {
  readonly expectations: ControllerExpectations;
  private readonly replicaSets: Informer<ReplicaSet>;
  private readonly pods: Informer<Pod>;

  constructor(ctx: ControllerContext, private readonly burstReplicas = BURST_REPLICAS) {
    super(ctx, 'replicaset', { workers: ctx.config.replicaSetWorkers });
    this.expectations = new ControllerExpectations(ctx.now);
    this.replicaSets = ctx.informers.informer<ReplicaSet>('replicasets');
    this.pods = ctx.informers.informer<Pod>('pods');
    indexByController(this.replicaSets);
    indexByController(this.pods);
    this.handle(this.replicaSets, {
      onAdd: (rs) => this.enqueue(rs),
      onUpdate: (_o, rs) => this.enqueue(rs),
      onDelete: (rs) => {
        this.expectations.delete(keyOf(rs));
        this.enqueue(rs);
      },
    });
    this.handle(this.pods, { onAdd: (p) => this.podAdded(p), onUpdate: (o, p) => this.podUpdated(o, p), onDelete: (p) => this.podDeleted(p) });
  }

  /** The ReplicaSet a pod's controller reference names, if it is in the cache with that uid. */
  private ownerOf(pod: Pod): ReplicaSet | undefined {
    const ref = controllerRef(pod);
    if (!isReplicaSetRef(ref)) return undefined;
    const rs = this.replicaSets.get(pod.metadata.namespace ?? '', ref!.name);
    return rs && rs.metadata.uid === ref!.uid ? rs : undefined;
  }

  /** ReplicaSets whose selector matches an orphan (they may adopt it). */
  private matchingReplicaSets(pod: Pod): ReplicaSet[] {
    return this.replicaSets.byNamespace(pod.metadata.namespace ?? '').filter((rs) => selectorMatches(rs.spec?.selector, pod.metadata.labels));
  }

  private podAdded(pod: Pod): void {
    if (pod.metadata.deletionTimestamp) {
      this.podDeleted(pod);
      return;
    }
    if (controllerRef(pod)) {
      const rs = this.ownerOf(pod);
      if (!rs) return;
      this.expectations.creationObserved(keyOf(rs));
      this.enqueue(rs);
      return;
    }
    for (const rs of this.matchingReplicaSets(pod)) this.enqueue(rs);
  }

  private podUpdated(old: Pod, cur: Pod): void {
    if (old.metadata.resourceVersion === cur.metadata.resourceVersion) return;
    const labelsChanged = JSON.stringify(old.metadata.labels ?? {}) !== JSON.stringify(cur.metadata.labels ?? {});
    if (cur.metadata.deletionTimestamp) {
      // Graceful deletion: the pod no longer counts, so the deletion is observed now, not when it is gone.
      this.podDeleted(cur);
      if (labelsChanged) this.podDeleted(old);
      return;
    }
    const oldRef = controllerRef(old);
    const curRef = controllerRef(cur);
    if (oldRef && oldRef.uid !== curRef?.uid) {
      const rs = this.ownerOf(old);
      if (rs) this.enqueue(rs);
    }
    if (curRef) {
      const rs = this.ownerOf(cur);
      if (!rs) return;
      this.enqueue(rs);
      const minReady = (rs.spec?.minReadySeconds as number | undefined) ?? 0;
      if (minReady > 0 && !isPodReady(old) && isPodReady(cur)) this.enqueueAfter(rs, minReady * 1000 + 1000);
      return;
    }
    if (labelsChanged || oldRef) for (const rs of this.matchingReplicaSets(cur)) this.enqueue(rs);
  }

  private podDeleted(pod: Pod): void {
    const rs = this.ownerOf(pod);
    if (!rs) return;
    const key = keyOf(rs);
    this.expectations.deletionObserved(key, keyOf(pod));
    this.enqueue(key);
  }

  protected async reconcile(key: string): Promise<void> {
    const [ns, name] = key.split('/') as [string, string];
    const rs = this.replicaSets.get(ns, name);
    if (!rs) {
      this.expectations.delete(key);
      return;
    }
    // Whether the cache holds everything this controller asked for: only then
    // does it act, and only then does its status claim the generation (the
    // Deployment controller reads observedGeneration as "status.replicas
    // counts every pod this ReplicaSet may have"; see sizing.ts, unsettled).
    const observed = this.expectations.satisfied(key);
    const needsSync = observed && !rs.metadata.deletionTimestamp;
    const active = ownedOrOrphans(this.pods, rs).filter(isPodActive);
    const pods = await claimObjects(active, {
      client: this.ctx.client, kind: PODS, owner: rs, selector: rs.spec?.selector, canAdopt: () => this.stillExists(rs),
    });
    let failure: Error | undefined;
    if (needsSync) failure = await this.manageReplicas(rs, pods, key).catch((e: Error) => e);
    const now = this.ctx.now();
    const status = calculateStatus(rs, pods, failure, now);
    status.observedGeneration = observed ? rs.metadata.generation : rs.status?.observedGeneration;
    if (statusChanged(rs, status)) await this.writeStatus(rs, status);
    const minReady = (rs.spec?.minReadySeconds as number | undefined) ?? 0;
    if (!failure && minReady > 0) {
      const next = Math.min(...pods.map((p) => availableAt(p, minReady, now) ?? Infinity));
      if (Number.isFinite(next)) this.enqueueAfter(key, next - now + 1000);
    }
    if (failure) throw failure;
  }

  /** A fresh read: the ReplicaSet still exists with this uid and is not being deleted (before adopting). */
  private async stillExists(rs: ReplicaSet): Promise<boolean> {
    try {
      const fresh = await this.ctx.client.get<ReplicaSet>(resourcePath(REPLICASETS, rs.metadata.namespace, rs.metadata.name));
      return fresh.metadata.uid === rs.metadata.uid && !fresh.metadata.deletionTimestamp;
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return false;
      throw e;
    }
  }

  /** Creates or deletes pods towards spec.replicas; returns the first error (expectations already settled for it). */
  private async manageReplicas(rs: ReplicaSet, pods: Pod[], key: string): Promise<Error | undefined> {
    const want = rs.spec?.replicas ?? 1;
    const diff = pods.length - want;
    if (diff < 0) {
      const n = Math.min(-diff, this.burstReplicas);
      this.expectations.expectCreations(key, n);
      const template = rs.spec?.template ?? {};
      const { successes, error } = await slowStartBatch(n, 1, async () => {
        try {
          const pod = await this.ctx.client.create<Pod>(resourcePath(PODS, rs.metadata.namespace), podFromTemplate(template, rs));
          this.recorder.event(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`);
        } catch (e) {
          // A create whose outcome is unknown may still appear: leave it expected (the wait expires).
          if (e instanceof ApiConnectionError) return;
          this.recorder.event(rs, 'Warning', 'FailedCreate', `Error creating: ${(e as Error).message}`);
          throw e;
        }
      }, MAX_IN_FLIGHT);
      // Creations that failed or never started will not be seen: stop waiting for them.
      for (let i = successes; i < n; i++) this.expectations.creationObserved(key);
      return error;
    }
    if (diff > 0) {
      const n = Math.min(diff, this.burstReplicas);
      const victims = podsToDelete(pods, this.relatedPods(rs), n, this.ctx.now());
      this.expectations.expectDeletions(key, victims.map(keyOf));
      const results = await settleLimited(victims, MAX_IN_FLIGHT, async (p) => {
        try {
          await this.ctx.client.delete(resourcePath(PODS, p.metadata.namespace, p.metadata.name), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: p.metadata.uid } });
          this.recorder.event(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`);
        } catch (e) {
          // This deletion will not be seen (or already was): stop waiting for it.
          this.expectations.deletionObserved(key, keyOf(p));
          if (e instanceof ApiClientError && (e.code === 404 || e.code === 409)) return;
          this.recorder.event(rs, 'Warning', 'FailedDelete', `Error deleting: ${(e as Error).message}`);
          throw e;
        }
      });
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      return failed?.reason as Error | undefined;
    }
    return undefined;
  }

  /**
   * Pods whose node placement ranks a victim (getIndirectlyRelatedPods): the
   * pods of every ReplicaSet under the same controller (a Deployment's old and
   * new ReplicaSets), or this one's own pods.
   */
  private relatedPods(rs: ReplicaSet): Pod[] {
    const up = controllerRef(rs);
    const siblings = up ? this.replicaSets.byIndex(CONTROLLER_UID_INDEX, up.uid) : [rs];
    return siblings.flatMap((s) => (s.metadata.uid ? this.pods.byIndex(CONTROLLER_UID_INDEX, s.metadata.uid) : []));
  }

  private async writeStatus(rs: ReplicaSet, status: Record<string, unknown>): Promise<void> {
    const path = resourcePath(REPLICASETS, rs.metadata.namespace, rs.metadata.name, 'status');
    try {
      await this.ctx.client.update(path, { ...rs, status });
    } catch (e) {
      if (!(e instanceof ApiClientError && e.code === 409)) throw e;
      // One retry on a fresh copy (updateReplicaSetStatus); a newer spec is reconciled next time anyway.
      const fresh = await this.ctx.client.get<ReplicaSet>(resourcePath(REPLICASETS, rs.metadata.namespace, rs.metadata.name));
      await this.ctx.client.update(path, { ...fresh, status });
    }
  }
}
