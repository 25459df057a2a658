// The disruption controller: keeps each PodDisruptionBudget's status
// (expected, desired and current healthy pods, disruptions allowed, the
// DisruptionAllowed condition) current as pods and their controllers change.
// On an error it fails safe, as Kubernetes does: no disruption allowed.
import { resourcePath } from '../../client/api.ts';
import { kindForObject } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { Deployment, KubeObject, Pod, ReplicaSet, StatefulSet } from '../../informer/types.ts';
import { labelSelectorMatches } from '../../../api/selectors.ts';
import type { LabelSelector } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import {
  type OwnerRef, type PodDisruptionBudget, type ScaleFinder, countHealthy, disruptedPods, disruptionsAllowed, expectedCounts,
} from './budget.ts';

const PDBS = { group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', namespaced: true };

type Owned = KubeObject & { metadata: { uid?: string; ownerReferences?: (OwnerRef & { controller?: boolean })[] }; spec?: { replicas?: number } };

/** JSON with sorted keys: the stored status and the computed one compare equal whatever their key order. */
const canonical = (v: unknown): string => JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));

const controllerOf = (o: Owned) => o.metadata.ownerReferences?.find((r) => r.controller);

export class DisruptionController extends QueueController {
  private readonly pdbs: Informer<PodDisruptionBudget>;
  private readonly pods: Informer<Pod>;
  private readonly replicaSets: Informer<ReplicaSet>;
  private readonly deployments: Informer<Deployment>;
  private readonly statefulSets: Informer<StatefulSet>;

  constructor(ctx: ControllerContext) {
    super(ctx, 'disruption');
    this.pdbs = ctx.informers.informer<PodDisruptionBudget>('poddisruptionbudgets');
    this.pods = ctx.informers.informer<Pod>('pods');
    this.replicaSets = ctx.informers.informer<ReplicaSet>('replicasets');
    this.deployments = ctx.informers.informer<Deployment>('deployments');
    this.statefulSets = ctx.informers.informer<StatefulSet>('statefulsets');
    this.handle(this.pdbs, { onAdd: (p) => this.enqueue(p), onUpdate: (_o, p) => this.enqueue(p) });
    const pod = (p: Pod) => this.enqueueBudgetsOf(p);
    this.handle(this.pods, {
      onAdd: pod,
      onUpdate: (o, p) => {
        pod(p);
        if (JSON.stringify(o.metadata.labels) !== JSON.stringify(p.metadata.labels)) pod(o);
      },
      onDelete: pod,
    });
    // A controller's scale is the denominator of percentages and of maxUnavailable.
    const namespace = (o: KubeObject) => {
      for (const b of this.pdbs.byNamespace(o.metadata?.namespace ?? '')) this.enqueue(b);
    };
    for (const inf of [this.replicaSets, this.deployments, this.statefulSets] as Informer<KubeObject>[]) {
      this.handle(inf, { onAdd: namespace, onUpdate: (_o, n) => namespace(n), onDelete: namespace });
    }
  }

  private enqueueBudgetsOf(p: Pod): void {
    for (const b of this.pdbs.byNamespace(p.metadata.namespace ?? '')) {
      if (labelSelectorMatches(b.spec?.selector as LabelSelector | undefined, p.metadata.labels)) this.enqueue(b);
    }
  }

  protected async reconcile(key: string): Promise<void> {
    const [ns, name] = key.split('/');
    const cached = this.pdbs.get(ns, name);
    if (!cached) return;
    const pdb = structuredClone(cached);
    const now = this.ctx.now();
    const pods = this.pods.byNamespace(ns).filter((p) => labelSelectorMatches(pdb.spec?.selector as LabelSelector | undefined, p.metadata.labels));
    if (!pods.length) this.recorder.event(pdb, 'Normal', 'NoPods', 'No matching pods found');
    let counts;
    try {
      counts = await expectedCounts(pdb, pods, this.finder);
    } catch (e) {
      this.recorder.event(pdb, 'Warning', 'CalculateExpectedPodCountFailed', `Failed to calculate the number of expected pods: ${(e as Error).message}`);
      await this.failSafe(pdb, (e as Error).message, now);
      return;
    }
    if (counts.unmanaged.length) {
      this.recorder.event(pdb, 'Normal', 'UnmanagedPods', `Pods selected by this PodDisruptionBudget (selector: ${JSON.stringify(pdb.spec?.selector ?? null)}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set ".spec.minAvailable" field of the PDB to an integer value.`);
    }
    const disrupted = disruptedPods(pdb, pods, now);
    const currentHealthy = countHealthy(pods, disrupted.map, now);
    const allowed = disruptionsAllowed(currentHealthy, counts.desiredHealthy, counts.expected);
    await this.writeStatus(pdb, {
      currentHealthy, desiredHealthy: counts.desiredHealthy, expectedPods: counts.expected, disruptionsAllowed: allowed, disruptedPods: disrupted.map,
    }, allowed > 0
      ? { status: 'True', reason: 'SufficientPods', message: `${allowed} disruption(s) allowed` }
      : { status: 'False', reason: 'InsufficientPods', message: `${currentHealthy} healthy of ${counts.desiredHealthy} desired: no disruption allowed` }, now);
    if (disrupted.recheckAt !== undefined) this.enqueueAfter(key, disrupted.recheckAt - now);
  }

  /** Finds a pod's controller and its scale: ReplicaSet (or the Deployment above it), StatefulSet, or any kind with a /scale. */
  private readonly finder: ScaleFinder = async (ref, ns) => {
    const same = (o: Owned | undefined) => (o && o.metadata.uid === ref.uid ? o : undefined);
    if (ref.kind === 'ReplicaSet' && ref.apiVersion.startsWith('apps/')) {
      const rs = same(this.replicaSets.get(ns, ref.name) as Owned | undefined);
      if (!rs) return undefined;
      const up = controllerOf(rs);
      if (up?.kind === 'Deployment') {
        const d = this.deployments.get(ns, up.name) as Owned | undefined;
        return d && d.metadata.uid === up.uid ? { uid: up.uid, scale: d.spec?.replicas ?? 0 } : undefined;
      }
      return { uid: ref.uid, scale: rs.spec?.replicas ?? 0 };
    }
    if (ref.kind === 'StatefulSet' && ref.apiVersion.startsWith('apps/')) {
      const s = same(this.statefulSets.get(ns, ref.name) as Owned | undefined);
      return s ? { uid: ref.uid, scale: s.spec?.replicas ?? 0 } : undefined;
    }
    const kind = kindForObject(ref.apiVersion, ref.kind);
    if (!kind?.scale) return undefined;
    const scale = await this.ctx.client.get<KubeObject & { spec?: { replicas?: number } }>(resourcePath(kind, ns, ref.name, 'scale'));
    return scale.metadata?.uid === ref.uid ? { uid: ref.uid, scale: scale.spec?.replicas ?? 0 } : undefined;
  };

  private async failSafe(pdb: PodDisruptionBudget, message: string, now: number): Promise<void> {
    const st = pdb.status ?? {};
    await this.writeStatus(pdb, {
      currentHealthy: st.currentHealthy ?? 0, desiredHealthy: st.desiredHealthy ?? 0, expectedPods: st.expectedPods ?? 0, disruptionsAllowed: 0, disruptedPods: st.disruptedPods ?? {},
    }, { status: 'False', reason: 'SyncFailed', message }, now);
  }

  private async writeStatus(
    pdb: PodDisruptionBudget, counts: { currentHealthy: number; desiredHealthy: number; expectedPods: number; disruptionsAllowed: number; disruptedPods: Record<string, string> },
    cond: { status: string; reason: string; message: string }, now: number,
  ): Promise<void> {
    const before = canonical(pdb.status ?? {});
    const conditions = (pdb.status?.conditions ?? []).filter((c) => c.type !== 'DisruptionAllowed');
    const old = pdb.status?.conditions?.find((c) => c.type === 'DisruptionAllowed');
    const transition = old && old.status === cond.status ? old.lastTransitionTime : new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
    conditions.push({ type: 'DisruptionAllowed', ...cond, lastTransitionTime: transition, observedGeneration: pdb.metadata.generation });
    pdb.status = { ...counts, observedGeneration: pdb.metadata.generation, conditions };
    if (!Object.keys(counts.disruptedPods).length) delete pdb.status.disruptedPods;
    if (canonical(pdb.status) === before) return;
    await this.ctx.client.update(resourcePath(PDBS, pdb.metadata.namespace, pdb.metadata.name, 'status'), pdb);
  }
}
