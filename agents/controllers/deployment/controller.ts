// The Deployment controller (Kubernetes' pkg/controller/deployment): owns
// ReplicaSets named <deployment>-<pod-template-hash>, one per template it
// ever had, and moves pods from the old ones to the new one — RollingUpdate
// within maxSurge/maxUnavailable, Recreate by emptying the old ones first —
// resizes them proportionally when the Deployment is scaled mid-rollout,
// keeps revisionHistoryLimit old ones, and reports status and the
// Progressing/Available conditions kubectl rollout status and kubectl wait
// read. It only sizes ReplicaSets; the ReplicaSet controller makes the pods.
//
// Every write carries the resourceVersion the decision was made on, so a
// decision taken on a stale cache fails with 409 and is retried on fresh data.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import { type Informer, keyOf } from '../../informer/informer.ts';
import type { Deployment, Pod, ReplicaSet } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import { CONTROLLER_UID_INDEX, claimObjects, controllerRef, indexByController, newControllerRef, ownedOrOrphans, selectorMatches } from '../ownership.ts';
import { REVISION, maxRevision, revisionOf, setNewReplicaSetAnnotations, setReplicasAnnotations } from './annotations.ts';
import { isRollingUpdate, maxSurge, replicasOf } from './fenceposts.ts';
import { POD_TEMPLATE_HASH, computeHash, equalIgnoreHash } from './hash.ts';
import { active, activeOrLatest, byCreation, isSaturated, isScalingEvent, newRSNewReplicas, proportionalSizes, scaleDownOld, specReplicas } from './sizing.ts';
import {
  type DeploymentStatus, PROGRESSING, Reasons, calculateStatus, getCondition, hasProgressDeadline, isComplete, newCondition, recheckAfter, setCondition, statusDiffers, updateProgressing,
} from './status.ts';

const DEPLOYMENTS = resolveKind('deployments')!;
const REPLICASETS = resolveKind('replicasets')!;

const isDeploymentRef = (r: { apiVersion: string; kind: string } | undefined) => !!r && r.kind === 'Deployment' && r.apiVersion.startsWith('apps/');
const emptySelector = (d: Deployment) => {
  const s = d.spec?.selector;
  return !s || (!Object.keys(s.matchLabels ?? {}).length && !(s.matchExpressions ?? []).length);
};

export class DeploymentController extends QueueController {
  private readonly deployments: Informer<Deployment>;
  private readonly replicaSets: Informer<ReplicaSet>;
  private readonly pods: Informer<Pod>;

  constructor(ctx: ControllerContext) {
    super(ctx, 'deployment', { workers: ctx.config.deploymentWorkers });
    this.deployments = ctx.informers.informer<Deployment>('deployments');
    this.replicaSets = ctx.informers.informer<ReplicaSet>('replicasets');
    this.pods = ctx.informers.informer<Pod>('pods');
    indexByController(this.replicaSets);
    indexByController(this.pods);
    this.handle(this.deployments, { onAdd: (d) => this.enqueue(d), onUpdate: (_o, d) => this.enqueue(d), onDelete: (d) => this.enqueue(d) });
    this.handle(this.replicaSets, {
      onAdd: (rs) => this.replicaSetChanged(rs),
      onUpdate: (old, rs) => {
        const oldRef = controllerRef(old);
        if (oldRef && oldRef.uid !== controllerRef(rs)?.uid) this.replicaSetChanged(old);
        this.replicaSetChanged(rs);
      },
      onDelete: (rs) => this.replicaSetChanged(rs),
    });
    // Recreate waits for the old pods to be gone, which only pod deletions tell.
    this.handle(this.pods, {
      onDelete: (p) => {
        const ref = controllerRef(p);
        if (ref?.kind !== 'ReplicaSet') return;
        const rs = this.replicaSets.get(p.metadata.namespace ?? '', ref.name);
        const d = rs && this.ownerOf(rs);
        if (d && !isRollingUpdate(d)) this.enqueue(d);
      },
    });
  }

  private ownerOf(rs: ReplicaSet): Deployment | undefined {
    const ref = controllerRef(rs);
    if (!isDeploymentRef(ref)) return undefined;
    const d = this.deployments.get(rs.metadata.namespace ?? '', ref!.name);
    return d && d.metadata.uid === ref!.uid ? d : undefined;
  }

  private replicaSetChanged(rs: ReplicaSet): void {
    if (controllerRef(rs)) {
      const d = this.ownerOf(rs);
      if (d) this.enqueue(d);
      return;
    }
    // An orphan: any Deployment that selects it may adopt it.
    for (const d of this.deployments.byNamespace(rs.metadata.namespace ?? '')) {
      if (!emptySelector(d) && selectorMatches(d.spec?.selector, rs.metadata.labels)) this.enqueue(d);
    }
  }

  protected async reconcile(key: string): Promise<void> {
    const [ns, name] = key.split('/') as [string, string];
    const cached = this.deployments.get(ns, name);
    if (!cached) return;
    const d = structuredClone(cached);
    if (emptySelector(d)) {
      this.recorder.event(d, 'Warning', 'SelectingAll', 'This deployment is selecting all pods. A non-empty selector is required.');
      if ((d.metadata.generation ?? 0) > (d.status?.observedGeneration ?? 0)) {
        await this.writeStatus(d, { ...(d.status as DeploymentStatus), observedGeneration: d.metadata.generation });
      }
      return;
    }
    const rsList = await claimObjects(ownedOrOrphans(this.replicaSets, d), {
      client: this.ctx.client, kind: REPLICASETS, owner: d, selector: d.spec?.selector, canAdopt: () => this.stillExists(d),
    }) as ReplicaSet[];
    if (d.metadata.deletionTimestamp) {
      const { newRS, oldRSs } = await this.replicaSetsAndRevision(d, rsList, false);
      await this.syncStatus(d, [...oldRSs, ...(newRS ? [newRS] : [])], newRS);
      return;
    }
    await this.checkPausedCondition(d);
    if (d.spec?.paused) return this.sync(d, rsList);
    const { newRS, oldRSs } = this.split(d, rsList);
    if (isScalingEvent(d, newRS, oldRSs)) return this.sync(d, rsList);
    if (isRollingUpdate(d)) return this.rolloutRolling(d, rsList);
    return this.rolloutRecreate(d, rsList);
  }

  private async stillExists(d: Deployment): Promise<boolean> {
    try {
      const fresh = await this.ctx.client.get<Deployment>(resourcePath(DEPLOYMENTS, d.metadata.namespace, d.metadata.name));
      return fresh.metadata.uid === d.metadata.uid && !fresh.metadata.deletionTimestamp;
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return false;
      throw e;
    }
  }

  // ------------------------------------------------------------ strategies

  private async rolloutRolling(d: Deployment, rsList: ReplicaSet[]): Promise<void> {
    const all = await this.replicaSetsAndRevision(d, rsList, true);
    let newRS = all.newRS!;
    const oldRSs = all.oldRSs;
    // Grow the new ReplicaSet as far as the surge allows (reconcileNewReplicaSet).
    const want = replicasOf(d);
    if (specReplicas(newRS) !== want) {
      const target = specReplicas(newRS) > want ? want : newRSNewReplicas(d, [...oldRSs, newRS], newRS);
      if (target !== specReplicas(newRS)) {
        newRS = await this.scaleReplicaSet(newRS, target, d);
        return this.syncRolloutStatus(d, [...oldRSs, newRS], newRS);
      }
    }
    // Shrink the old ones as far as availability allows (reconcileOldReplicaSets).
    const sizes = scaleDownOld(d, oldRSs, newRS);
    if (sizes.size) {
      const scaled = await Promise.all(oldRSs.map((rs) => (sizes.has(rs.metadata.name) ? this.scaleReplicaSet(rs, sizes.get(rs.metadata.name)!, d) : rs)));
      return this.syncRolloutStatus(d, [...scaled, newRS], newRS);
    }
    if (isComplete(d, calculateStatus(d, [...oldRSs, newRS], newRS, this.ctx.now()))) await this.cleanup(d, oldRSs);
    return this.syncRolloutStatus(d, [...oldRSs, newRS], newRS);
  }

  private async rolloutRecreate(d: Deployment, rsList: ReplicaSet[]): Promise<void> {
    let { newRS, oldRSs } = await this.replicaSetsAndRevision(d, rsList, false);
    const toEmpty = active(oldRSs);
    if (toEmpty.length) {
      const scaled = await Promise.all(oldRSs.map((rs) => (specReplicas(rs) > 0 ? this.scaleReplicaSet(rs, 0, d) : rs)));
      return this.syncRolloutStatus(d, [...scaled, ...(newRS ? [newRS] : [])], newRS);
    }
    // Not one old pod may run (or be terminating) while a new one starts.
    if (this.oldPodsRunning(newRS, oldRSs)) return this.syncRolloutStatus(d, [...oldRSs, ...(newRS ? [newRS] : [])], newRS);
    if (!newRS) ({ newRS, oldRSs } = await this.replicaSetsAndRevision(d, rsList, true));
    let rs = newRS!;
    if (specReplicas(rs) !== replicasOf(d)) rs = await this.scaleReplicaSet(rs, replicasOf(d), d);
    if (isComplete(d, calculateStatus(d, [...oldRSs, rs], rs, this.ctx.now()))) await this.cleanup(d, oldRSs);
    return this.syncRolloutStatus(d, [...oldRSs, rs], rs);
  }

  private oldPodsRunning(newRS: ReplicaSet | undefined, oldRSs: ReplicaSet[]): boolean {
    if (oldRSs.some((rs) => (rs.status?.replicas ?? 0) > 0)) return true;
    return oldRSs.some((rs) => rs.metadata.uid !== newRS?.metadata.uid && !!rs.metadata.uid
      && this.pods.byIndex(CONTROLLER_UID_INDEX, rs.metadata.uid).some((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed'));
  }

  /** A scaling event or a paused Deployment: resize, never roll (sync in sync.go). */
  private async sync(d: Deployment, rsList: ReplicaSet[]): Promise<void> {
    const { newRS, oldRSs } = await this.replicaSetsAndRevision(d, rsList, false);
    const scaled = await this.scale(d, newRS, oldRSs);
    const cur = (rs: ReplicaSet) => scaled.get(rs.metadata.name) ?? rs;
    const news = newRS && cur(newRS);
    const olds = oldRSs.map(cur);
    if (d.spec?.paused) await this.cleanup(d, olds);
    await this.syncStatus(d, [...olds, ...(news ? [news] : [])], news);
  }

  /** Resizes ReplicaSets to spec.replicas (+ surge, shared proportionally); returns the rewritten ones by name. */
  private async scale(d: Deployment, newRS: ReplicaSet | undefined, oldRSs: ReplicaSet[]): Promise<Map<string, ReplicaSet>> {
    const out = new Map<string, ReplicaSet>();
    const put = (rs: ReplicaSet) => out.set(rs.metadata.name, rs);
    const one = activeOrLatest(newRS, oldRSs);
    if (one) {
      if (specReplicas(one) !== replicasOf(d)) put(await this.scaleReplicaSet(one, replicasOf(d), d));
      return out;
    }
    if (isSaturated(d, newRS)) {
      for (const rs of active(oldRSs)) put(await this.scaleReplicaSet(rs, 0, d));
      return out;
    }
    if (!isRollingUpdate(d)) return out;
    const sizes = proportionalSizes(d, newRS, oldRSs);
    await Promise.all(active([...oldRSs, newRS]).map(async (rs) => put(await this.scaleReplicaSet(rs, sizes.get(rs.metadata.name) ?? specReplicas(rs), d, true))));
    return out;
  }

  // ------------------------------------------------------------ ReplicaSets

  /** The ReplicaSet whose template is the Deployment's (the oldest such), and the others. */
  private split(d: Deployment, rsList: ReplicaSet[]): { newRS?: ReplicaSet; oldRSs: ReplicaSet[] } {
    const sorted = [...rsList].sort(byCreation);
    const newRS = sorted.find((rs) => equalIgnoreHash(rs.spec?.template, d.spec?.template));
    return { newRS, oldRSs: sorted.filter((rs) => rs !== newRS) };
  }

  /**
   * getAllReplicaSetsAndSyncRevision: the new ReplicaSet (created when
   * `create` and missing) with its revision one above the old ones, and the
   * Deployment's revision annotation and Progressing condition kept in step.
   */
  private async replicaSetsAndRevision(d: Deployment, rsList: ReplicaSet[], create: boolean): Promise<{ newRS?: ReplicaSet; oldRSs: ReplicaSet[] }> {
    const { newRS: existing, oldRSs } = this.split(d, rsList);
    const newRevision = maxRevision(oldRSs) + 1;
    const now = this.ctx.now();
    if (existing) {
      let rs = structuredClone(existing);
      const annotated = setNewReplicaSetAnnotations(d, rs, newRevision, true, maxSurge(d));
      const minReady = (d.spec?.minReadySeconds as number | undefined) ?? 0;
      const minReadyChanged = ((rs.spec?.minReadySeconds as number | undefined) ?? 0) !== minReady;
      if (annotated || minReadyChanged) {
        rs.spec = { ...rs.spec, minReadySeconds: minReady };
        rs = await this.ctx.client.update<ReplicaSet>(resourcePath(REPLICASETS, rs.metadata.namespace, rs.metadata.name), rs);
      }
      await this.setRevision(d, rs.metadata.annotations?.[REVISION]);
      if (!getCondition(d.status as DeploymentStatus, PROGRESSING) && hasProgressDeadline(d)) {
        const s = structuredClone((d.status ?? {}) as DeploymentStatus);
        setCondition(s, newCondition(PROGRESSING, 'True', Reasons.FoundNewReplicaSet, `Found new replica set "${rs.metadata.name}"`, now));
        await this.writeStatus(d, s);
      }
      return { newRS: rs, oldRSs };
    }
    if (!create) return { oldRSs };

    const collisionCount = (d.status?.collisionCount as number | undefined);
    const hash = computeHash(d.spec?.template ?? {}, collisionCount);
    const template = structuredClone(d.spec?.template ?? {});
    template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, [POD_TEMPLATE_HASH]: hash } };
    const selector = structuredClone(d.spec?.selector ?? {});
    selector.matchLabels = { ...selector.matchLabels, [POD_TEMPLATE_HASH]: hash };
    const draft: ReplicaSet = {
      apiVersion: 'apps/v1', kind: 'ReplicaSet',
      metadata: { name: `${d.metadata.name}-${hash}`, namespace: d.metadata.namespace, labels: template.metadata.labels, ownerReferences: [newControllerRef(d)] },
      spec: { replicas: 0, minReadySeconds: (d.spec?.minReadySeconds as number | undefined) ?? 0, selector, template },
    };
    draft.spec!.replicas = newRSNewReplicas(d, [...oldRSs, draft], draft);
    setNewReplicaSetAnnotations(d, draft, newRevision, false, maxSurge(d));
    let rs: ReplicaSet;
    let alreadyExists = false;
    try {
      rs = await this.ctx.client.create<ReplicaSet>(resourcePath(REPLICASETS, d.metadata.namespace), draft);
    } catch (e) {
      if (!(e instanceof ApiClientError && e.code === 409)) {
        const msg = `Failed to create new replica set "${draft.metadata.name}": ${(e as Error).message}`;
        if (hasProgressDeadline(d)) {
          const s = structuredClone((d.status ?? {}) as DeploymentStatus);
          setCondition(s, newCondition(PROGRESSING, 'False', Reasons.FailedRSCreate, msg, now));
          await this.writeStatus(d, s).catch(() => {});
        }
        this.recorder.event(d, 'Warning', 'FailedCreate', msg);
        throw e;
      }
      // It exists: ours with this template (an earlier round whose event we have not seen yet), or a hash collision.
      const found = await this.ctx.client.get<ReplicaSet>(resourcePath(REPLICASETS, d.metadata.namespace, draft.metadata.name));
      if (controllerRef(found)?.uid !== d.metadata.uid || !equalIgnoreHash(d.spec?.template, found.spec?.template)) {
        const s = structuredClone((d.status ?? {}) as DeploymentStatus);
        s.collisionCount = (collisionCount ?? 0) + 1;
        await this.writeStatus(d, s);
        throw new Error(`hash collision: replica set ${draft.metadata.name} already exists with another template; collisionCount is now ${s.collisionCount}`);
      }
      rs = found;
      alreadyExists = true;
    }
    if (!alreadyExists && specReplicas(rs) > 0) {
      this.recorder.event(d, 'Normal', 'ScalingReplicaSet', `Scaled up replica set ${rs.metadata.name} from 0 to ${specReplicas(rs)}`);
    }
    await this.setRevision(d, String(newRevision));
    if (!alreadyExists && hasProgressDeadline(d)) {
      const s = structuredClone((d.status ?? {}) as DeploymentStatus);
      setCondition(s, newCondition(PROGRESSING, 'True', Reasons.NewReplicaSetCreated, `Created new replica set "${rs.metadata.name}"`, now));
      await this.writeStatus(d, s);
    }
    return { newRS: rs, oldRSs };
  }

  /**
   * scaleReplicaSet: writes the size and the desired/max replicas
   * annotations; records ScalingReplicaSet when the size changed. With
   * `always`, rewrites annotations even at the same size (proportional scaling).
   */
  private async scaleReplicaSet(rs: ReplicaSet, size: number, d: Deployment, always = false): Promise<ReplicaSet> {
    if (!always && specReplicas(rs) === size) return rs;
    const next = structuredClone(rs);
    const from = specReplicas(rs);
    next.spec = { ...next.spec, replicas: size };
    const annotated = setReplicasAnnotations(next, replicasOf(d), replicasOf(d) + maxSurge(d));
    if (from === size && !annotated) return rs;
    const written = await this.ctx.client.update<ReplicaSet>(resourcePath(REPLICASETS, rs.metadata.namespace, rs.metadata.name), next);
    if (from !== size) {
      this.recorder.event(d, 'Normal', 'ScalingReplicaSet', `Scaled ${size > from ? 'up' : 'down'} replica set ${rs.metadata.name} from ${from} to ${size}`);
    }
    return written;
  }

  /** cleanupDeployment: deletes the oldest empty old ReplicaSets beyond revisionHistoryLimit. */
  private async cleanup(d: Deployment, oldRSs: ReplicaSet[]): Promise<void> {
    const limit = d.spec?.revisionHistoryLimit;
    if (limit === undefined || limit === null) return;
    const alive = oldRSs.filter((rs) => !rs.metadata.deletionTimestamp);
    const diff = alive.length - limit;
    if (diff <= 0) return;
    alive.sort((a, b) => revisionOf(a) - revisionOf(b) || byCreation(a, b));
    for (const rs of alive.slice(0, diff)) {
      if ((rs.status?.replicas ?? 0) !== 0 || specReplicas(rs) !== 0 || (rs.metadata.generation ?? 0) > (rs.status?.observedGeneration ?? 0)) continue;
      await this.ctx.client.delete(resourcePath(REPLICASETS, rs.metadata.namespace, rs.metadata.name), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: rs.metadata.uid } })
        .catch((e) => { if (!(e instanceof ApiClientError && (e.code === 404 || e.code === 409))) throw e; });
    }
  }

  // ------------------------------------------------------------ the Deployment

  /** Keeps the Deployment's revision annotation equal to its new ReplicaSet's (SetDeploymentRevision). */
  private async setRevision(d: Deployment, revision: string | undefined): Promise<void> {
    if (revision === undefined || d.metadata.annotations?.[REVISION] === revision) return;
    const written = await this.ctx.client.patch<Deployment>(resourcePath(DEPLOYMENTS, d.metadata.namespace, d.metadata.name), {
      metadata: { annotations: { [REVISION]: revision }, uid: d.metadata.uid },
    }, 'application/merge-patch+json');
    d.metadata.annotations = written.metadata.annotations;
    d.metadata.resourceVersion = written.metadata.resourceVersion;
  }

  /** Progressing Unknown with DeploymentPaused/DeploymentResumed as spec.paused changes (checkPausedConditions). */
  private async checkPausedCondition(d: Deployment): Promise<void> {
    if (!hasProgressDeadline(d)) return;
    const cond = getCondition(d.status as DeploymentStatus, PROGRESSING);
    if (cond?.reason === Reasons.TimedOut) return;
    const pausedCond = cond?.reason === Reasons.Paused;
    const s = structuredClone((d.status ?? {}) as DeploymentStatus);
    const now = this.ctx.now();
    if (d.spec?.paused && !pausedCond) setCondition(s, newCondition(PROGRESSING, 'Unknown', Reasons.Paused, 'Deployment is paused', now));
    else if (!d.spec?.paused && pausedCond) setCondition(s, newCondition(PROGRESSING, 'Unknown', Reasons.Resumed, 'Deployment is resumed', now));
    else return;
    await this.writeStatus(d, s);
  }

  /** syncDeploymentStatus: counts and Available, Progressing left as it is. */
  private async syncStatus(d: Deployment, allRSs: ReplicaSet[], newRS: ReplicaSet | undefined): Promise<void> {
    const s = calculateStatus(d, allRSs, newRS, this.ctx.now());
    if (statusDiffers(d, s)) await this.writeStatus(d, s);
  }

  /** syncRolloutStatus: counts, Available, Progressing (with the deadline) and ReplicaFailure. */
  private async syncRolloutStatus(d: Deployment, allRSs: ReplicaSet[], newRS: ReplicaSet | undefined): Promise<void> {
    const now = this.ctx.now();
    const s = calculateStatus(d, allRSs, newRS, now);
    updateProgressing(d, s, newRS, allRSs, now);
    if (!statusDiffers(d, s)) {
      const after = recheckAfter(d, s, now);
      // "Now" goes through the rate limiter (Kubernetes' enqueueRateLimited):
      // an immediate re-add from inside the reconcile would hand the key
      // straight back, and a pass that writes nothing never leaves the
      // microtask queue — the process stops turning its event loop.
      if (after === 0) this.queue.addRateLimited(keyOf(d));
      else if (after !== undefined) this.enqueueAfter(keyOf(d), after);
      return;
    }
    await this.writeStatus(d, s);
  }

  /** Writes status with the Deployment's resourceVersion, and keeps `d` current for the next write of this round. */
  private async writeStatus(d: Deployment, status: DeploymentStatus): Promise<void> {
    const written = await this.ctx.client.update<Deployment>(resourcePath(DEPLOYMENTS, d.metadata.namespace, d.metadata.name, 'status'), { ...d, status });
    d.status = written.status;
    d.metadata.resourceVersion = written.metadata.resourceVersion;
  }
}
