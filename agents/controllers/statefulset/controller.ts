// The StatefulSet controller (Kubernetes' pkg/controller/statefulset): pods
// with stable identities `<set>-0 … <set>-(N-1)`, each with its own claims
// from volumeClaimTemplates (kept when the set scales down: the Retain
// policy). OrderedReady creates in ordinal order, each pod only once the
// previous ones are Running and Ready, and removes from the highest
// ordinal, one at a time; Parallel creates and removes all at once.
// RollingUpdate replaces pods whose revision is not the update revision from
// the highest ordinal down to the partition, one at a time, each once the
// previous one is ready again; OnDelete leaves that to the user.
//
// One pod per ordinal: the pod's name is its ordinal, so the API refuses a
// second (409 AlreadyExists) for as long as the first exists, terminating or
// not; on top of that a create waits until the cache has seen the previous
// ones (expectations), so a slow cache does not even try.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { KubeObject, Pod } from '../../informer/types.ts';
import { availableAt, isPodAvailable } from '../availability.ts';
import { canonical } from '../conditions.ts';
import type { ControllerContext } from '../context.ts';
import { requeueOnConflict } from '../conflict.ts';
import { QueueController } from '../controller.ts';
import { isPodReady } from '../endpoints/pods.ts';
import { ControllerExpectations } from '../expectations.ts';
import {
  CONTROLLER_REVISION_HASH, type ControllerRevision, syncRevisions, templateOf, truncateHistory,
} from '../history/revisions.ts';
import { claimObjects, ownerStillThere, controllerRef } from '../ownership.ts';
import { type StatefulSetObj, claimOwnerRefs, claimsFor, newStatefulPod, ordinalOf, podName } from './pods.ts';

const SETS = resolveKind('statefulsets')!;
const PODS = resolveKind('pods')!;
const CLAIMS = resolveKind('persistentvolumeclaims')!;

const isTerminating = (p: Pod) => !!p.metadata.deletionTimestamp;
const isRunningAndReady = (p: Pod) => p.status?.phase === 'Running' && isPodReady(p);
const isFinished = (p: Pod) => p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded';
const revisionOf = (p: Pod) => p.metadata.labels?.[CONTROLLER_REVISION_HASH] ?? '';

export class StatefulSetController extends QueueController {
  private readonly sets: Informer<StatefulSetObj>;
  private readonly pods: Informer<Pod>;
  private readonly claims: Informer<KubeObject>;
  private readonly revisions: Informer<ControllerRevision>;
  readonly expectations: ControllerExpectations;

  constructor(ctx: ControllerContext) {
    super(ctx, 'statefulset');
    this.expectations = new ControllerExpectations(ctx.now);
    this.sets = ctx.informers.informer<StatefulSetObj>('statefulsets');
    this.pods = ctx.informers.informer<Pod>('pods');
    this.claims = ctx.informers.informer('persistentvolumeclaims');
    this.revisions = ctx.informers.informer<ControllerRevision>('controllerrevisions');
    this.handle(this.sets, {
      onAdd: (s) => this.enqueue(s),
      onUpdate: (_o, s) => this.enqueue(s),
      onDelete: (s) => this.expectations.delete(`${s.metadata.namespace}/${s.metadata.name}`),
    });
    const owner = (p: Pod) => {
      const ref = controllerRef(p);
      if (ref?.kind === 'StatefulSet') return `${p.metadata.namespace}/${ref.name}`;
      return undefined;
    };
    this.handle(this.pods, {
      onAdd: (p) => {
        const k = owner(p);
        if (!k) return this.orphan(p);
        this.expectations.creationObserved(k);
        this.enqueue(k);
      },
      onUpdate: (o, p) => {
        const k = owner(p) ?? owner(o);
        if (k) this.enqueue(k);
        else this.orphan(p);
      },
      onDelete: (p) => {
        const k = owner(p);
        if (k) this.enqueue(k);
      },
    });
  }

  /** An orphan named like a member of a set may be adopted. */
  private orphan(p: Pod): void {
    for (const s of this.sets.byNamespace(p.metadata.namespace ?? '')) if (ordinalOf(s.metadata.name, p.metadata.name) !== undefined) this.enqueue(s);
  }

  protected reconcile(key: string): Promise<void> {
    return requeueOnConflict(this, key, () => this.sync(key));
  }

  private async sync(key: string): Promise<void> {
    const cached = this.sets.getByKey(key);
    if (!cached || cached.metadata.deletionTimestamp) return;
    const set = structuredClone(cached);
    const ns = set.metadata.namespace ?? '';
    const before = canonical(set.status ?? {});
    const candidates = this.pods.byNamespace(ns).filter((p) => ordinalOf(set.metadata.name, p.metadata.name) !== undefined || controllerRef(p)?.uid === set.metadata.uid);
    const pods = await claimObjects(candidates, {
      client: this.ctx.client, kind: PODS, owner: set, selector: set.spec?.selector,
      canAdopt: ownerStillThere(this.ctx.client, SETS, set),
    });
    const revs = await syncRevisions(this.ctx, this.revisions, set, SETS);
    const update = revs.update;
    const current = revs.all.find((r) => r.metadata.name === set.status?.currentRevision) ?? update;
    const now = this.ctx.now();
    await this.manage(key, set, pods, current, update, now);
    this.computeStatus(set, pods, current, update, now);
    if (canonical(set.status) !== before) await this.writeStatus(set);
    const keep = new Set([current.metadata.name, update.metadata.name]);
    await truncateHistory(this.ctx, revs.all, keep, new Set(pods.map(revisionOf)), set.spec?.revisionHistoryLimit ?? 10);
  }

  /** Creates, deletes and replaces pods: the steps of Kubernetes' updateStatefulSet. */
  private async manage(key: string, set: StatefulSetObj, pods: Pod[], current: ControllerRevision, update: ControllerRevision, now: number): Promise<void> {
    const replicas = set.spec?.replicas ?? 1;
    const start = set.spec?.ordinals?.start ?? 0;
    const monotonic = set.spec?.podManagementPolicy !== 'Parallel';
    const minReady = set.spec?.minReadySeconds ?? 0;
    const healthy = (p: Pod) => isRunningAndReady(p) && isPodAvailable(p, minReady, now);
    const recheck = (p: Pod) => {
      const at = availableAt(p, minReady, now);
      if (at !== undefined) this.enqueueAfter(key, at - now + 50);
    };
    const slots: (Pod | undefined)[] = Array.from({ length: replicas });
    const condemned: Pod[] = [];
    for (const p of pods) {
      const ord = ordinalOf(set.metadata.name, p.metadata.name);
      if (ord !== undefined && ord >= start && ord < start + replicas) slots[ord - start] = p;
      else condemned.push(p);
    }
    condemned.sort((a, b) => (ordinalOf(set.metadata.name, a.metadata.name) ?? -1) - (ordinalOf(set.metadata.name, b.metadata.name) ?? -1));
    if (!this.expectations.satisfied(key)) return;
    await this.syncClaimOwners(set, slots, condemned);

    // 1. Every ordinal gets its pod (in order, each ready before the next, unless Parallel).
    const toCreate: number[] = [];
    for (let i = 0; i < replicas; i++) {
      const p = slots[i];
      const ord = start + i;
      if (!p) {
        toCreate.push(ord);
        if (monotonic) break;
        continue;
      }
      if (isFinished(p) && !isTerminating(p)) {
        // A pod that ended is replaced (deleted, then made again under the same name).
        await this.deletePod(set, p);
        if (monotonic) return;
        continue;
      }
      if (isTerminating(p)) {
        if (monotonic) return;
        continue;
      }
      if (monotonic && !healthy(p)) {
        recheck(p);
        return;
      }
    }
    if (toCreate.length) {
      this.expectations.expectCreations(key, toCreate.length);
      const partition = set.spec?.updateStrategy?.type === 'RollingUpdate' ? (set.spec.updateStrategy.rollingUpdate?.partition ?? 0) : 0;
      await Promise.all(toCreate.map((ord) => {
        // Below the partition, a pod is made at the current revision (Kubernetes' newVersionedStatefulSetPod).
        const rev = set.spec?.updateStrategy?.type === 'RollingUpdate' && ord - start < partition ? current : update;
        return this.createPod(key, set, rev, ord);
      }));
      return;
    }

    // 2. Ordinals beyond replicas go, the highest first (one at a time, once the rest is healthy, unless Parallel).
    if (condemned.length) {
      const unhealthy = [...slots, ...condemned].filter((p) => p && !isTerminating(p) && !healthy(p)) as Pod[];
      for (let i = condemned.length - 1; i >= 0; i--) {
        const p = condemned[i]!;
        if (isTerminating(p)) {
          if (monotonic) return;
          continue;
        }
        if (monotonic && unhealthy.some((u) => u !== p)) return;
        await this.deletePod(set, p);
        if (monotonic) return;
      }
      return;
    }

    // 3. RollingUpdate: from the highest ordinal down to the partition, one pod at a time.
    if (set.spec?.updateStrategy?.type === 'OnDelete') return;
    const partition = set.spec?.updateStrategy?.rollingUpdate?.partition ?? 0;
    for (let i = replicas - 1; i >= partition; i--) {
      const p = slots[i]!;
      if (revisionOf(p) !== update.metadata.name && !isTerminating(p)) {
        await this.deletePod(set, p);
        return;
      }
      if (!healthy(p)) {
        recheck(p);
        return;
      }
    }
  }

  /** Gives the claims of existing pods the owners the retention policy asks for. */
  private async syncClaimOwners(set: StatefulSetObj, slots: (Pod | undefined)[], condemned: Pod[]): Promise<void> {
    const ns = set.metadata.namespace ?? '';
    const check = async (pod: Pod, isCondemned: boolean) => {
      if (isTerminating(pod)) return;
      const ord = ordinalOf(set.metadata.name, pod.metadata.name);
      if (ord === undefined) return;
      for (const want of claimsFor(set, ord)) {
        const claim = this.claims.get(ns, want.metadata!.name!);
        if (!claim) continue;
        const refs = claimOwnerRefs(claim, set, pod, isCondemned);
        const now = (claim.metadata as { ownerReferences?: unknown[] }).ownerReferences ?? [];
        if (canonical(refs) === canonical(now)) continue;
        await this.ctx.client.patch(resourcePath(CLAIMS, ns, claim.metadata!.name), {
          metadata: { ownerReferences: refs.length ? refs : null, resourceVersion: claim.metadata!.resourceVersion },
        }, 'application/merge-patch+json');
      }
    };
    for (const p of slots) if (p) await check(p, false);
    for (const p of condemned) await check(p, true);
  }

  private async createPod(key: string, set: StatefulSetObj, rev: ControllerRevision, ordinal: number): Promise<void> {
    const pod = newStatefulPod(set, templateOf(rev), rev.metadata.name, ordinal);
    const ns = set.metadata.namespace;
    const name = podName(set, ordinal);
    try {
      for (const claim of claimsFor(set, ordinal)) {
        if (this.claims.get(ns ?? '', claim.metadata!.name!)) continue;
        if (set.spec?.persistentVolumeClaimRetentionPolicy?.whenDeleted === 'Delete') {
          claim.metadata!.ownerReferences = claimOwnerRefs(claim, set, pod, false);
        }
        try {
          await this.ctx.client.create(resourcePath(CLAIMS, ns), claim);
          this.recorder.event(set, 'Normal', 'SuccessfulCreate', `create Claim ${claim.metadata!.name} Pod ${name} in StatefulSet ${set.metadata.name} success`);
        } catch (e) {
          if (!(e instanceof ApiClientError && e.code === 409)) {
            this.recorder.event(set, 'Warning', 'FailedCreate', `create Claim ${claim.metadata!.name} for Pod ${name} in StatefulSet ${set.metadata.name} failed error: ${(e as Error).message}`);
            throw e;
          }
        }
      }
      await this.ctx.client.create(resourcePath(PODS, ns), pod);
      this.recorder.event(set, 'Normal', 'SuccessfulCreate', `create Pod ${name} in StatefulSet ${set.metadata.name} successful`);
    } catch (e) {
      this.expectations.creationObserved(key);
      // The name is taken: the previous pod of this ordinal still exists (terminating, or not in our cache yet).
      if (e instanceof ApiClientError && e.code === 409) return;
      this.recorder.event(set, 'Warning', 'FailedCreate', `create Pod ${name} in StatefulSet ${set.metadata.name} failed error: ${(e as Error).message}`);
      throw e;
    }
  }

  private async deletePod(set: StatefulSetObj, p: Pod): Promise<void> {
    try {
      await this.ctx.client.delete(resourcePath(PODS, p.metadata.namespace, p.metadata.name), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: p.metadata.uid } });
      this.recorder.event(set, 'Normal', 'SuccessfulDelete', `delete Pod ${p.metadata.name} in StatefulSet ${set.metadata.name} successful`);
    } catch (e) {
      if (e instanceof ApiClientError && (e.code === 404 || e.code === 409)) return;
      this.recorder.event(set, 'Warning', 'FailedDelete', `delete Pod ${p.metadata.name} in StatefulSet ${set.metadata.name} failed error: ${(e as Error).message}`);
      throw e;
    }
  }

  /** Kubernetes' computeReplicaStatus, and the end of a rolling update (current := update). */
  private computeStatus(set: StatefulSetObj, pods: Pod[], current: ControllerRevision, update: ControllerRevision, now: number): void {
    const minReady = set.spec?.minReadySeconds ?? 0;
    const s = { ...set.status };
    s.observedGeneration = set.metadata.generation;
    s.replicas = pods.length;
    s.readyReplicas = pods.filter(isRunningAndReady).length;
    s.availableReplicas = pods.filter((p) => isRunningAndReady(p) && isPodAvailable(p, minReady, now)).length;
    const live = pods.filter((p) => !isTerminating(p));
    s.currentReplicas = live.filter((p) => revisionOf(p) === current.metadata.name).length;
    s.updatedReplicas = live.filter((p) => revisionOf(p) === update.metadata.name).length;
    s.currentRevision = current.metadata.name;
    s.updateRevision = update.metadata.name;
    const replicas = set.spec?.replicas ?? 1;
    if (set.spec?.updateStrategy?.type !== 'OnDelete' && s.updatedReplicas === replicas && s.readyReplicas === replicas && s.replicas === replicas) {
      s.currentRevision = update.metadata.name;
      s.currentReplicas = s.updatedReplicas;
    }
    s.collisionCount ??= 0;
    set.status = s;
  }

  private async writeStatus(set: StatefulSetObj): Promise<void> {
    await this.ctx.client.update(resourcePath(SETS, set.metadata.namespace, set.metadata.name, 'status'), set);
  }
}
