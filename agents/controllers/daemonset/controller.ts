// The DaemonSet controller (Kubernetes' pkg/controller/daemon): one pod on
// every node that should run it (placement.ts), none elsewhere; failed pods
// are replaced, extra pods on a node removed. Updates: RollingUpdate
// replaces old pods node by node, never more than maxUnavailable nodes
// without an available pod, or — with maxSurge — starts the new pod beside
// the old one and removes the old one once the new one is available;
// OnDelete replaces a pod only when it is deleted. Pods are pinned to their
// node by node affinity and bound by the scheduler (or a stand-in).
import { resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { LabelSelector, Node, Pod, PodTemplate, Stored } from '../../informer/types.ts';
import { availableAt, isPodAvailable } from '../availability.ts';
import { canonical } from '../conditions.ts';
import type { ControllerContext } from '../context.ts';
import { requeueOnConflict } from '../conflict.ts';
import { QueueController } from '../controller.ts';
import { scaledValue } from '../disruption/budget.ts';
import { isPodReady } from '../endpoints/pods.ts';
import { ControllerExpectations } from '../expectations.ts';
import {
  CONTROLLER_REVISION_HASH, type ControllerRevision, syncRevisions, truncateHistory,
} from '../history/revisions.ts';
import { PodControl } from '../podcontrol.ts';
import { claimObjects, ownerStillThere, controllerRef, podFromTemplate } from '../ownership.ts';
import { pinToNode, placement, targetNode } from './placement.ts';

const DAEMONSETS = resolveKind('daemonsets')!;
const PODS = resolveKind('pods')!;
/** Label of daemon pods with their DaemonSet's generation (deprecated in Kubernetes, still set). */
const TEMPLATE_GENERATION = 'pod-template-generation';

export interface DaemonSetObj extends Stored {
  spec?: {
    selector?: LabelSelector;
    template?: PodTemplate;
    updateStrategy?: { type?: 'RollingUpdate' | 'OnDelete'; rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string } };
    minReadySeconds?: number;
    revisionHistoryLimit?: number;
  };
  status?: Record<string, unknown> & { collisionCount?: number };
}

const live = (p: Pod) => !p.metadata.deletionTimestamp;
const byAge = (a: Pod, b: Pod) => Date.parse(a.metadata.creationTimestamp ?? '') - Date.parse(b.metadata.creationTimestamp ?? '') || a.metadata.name.localeCompare(b.metadata.name);

export class DaemonSetController extends QueueController {
  private readonly sets: Informer<DaemonSetObj>;
  private readonly pods: Informer<Pod>;
  private readonly nodes: Informer<Node>;
  private readonly revisions: Informer<ControllerRevision>;
  readonly expectations: ControllerExpectations;
  private readonly podControl: PodControl;

  constructor(ctx: ControllerContext) {
    super(ctx, 'daemonset');
    this.expectations = new ControllerExpectations(ctx.now);
    this.podControl = new PodControl(ctx, this.recorder, this.expectations);
    this.sets = ctx.informers.informer<DaemonSetObj>('daemonsets');
    this.pods = ctx.informers.informer<Pod>('pods');
    this.nodes = ctx.informers.informer<Node>('nodes');
    this.revisions = ctx.informers.informer<ControllerRevision>('controllerrevisions');
    this.handle(this.sets, {
      onAdd: (s) => this.enqueue(s),
      onUpdate: (_o, s) => this.enqueue(s),
      onDelete: (s) => this.expectations.delete(`${s.metadata.namespace}/${s.metadata.name}`),
    });
    const owner = (p: Pod) => {
      const ref = controllerRef(p);
      return ref?.kind === 'DaemonSet' ? `${p.metadata.namespace}/${ref.name}` : undefined;
    };
    this.handle(this.pods, {
      onAdd: (p) => {
        const k = owner(p);
        if (!k) return;
        this.expectations.creationObserved(k);
        this.enqueue(k);
      },
      onUpdate: (o, p) => {
        const k = owner(p);
        if (!k) return;
        if (p.metadata.deletionTimestamp && !o.metadata.deletionTimestamp) this.expectations.deletionObserved(k, `${p.metadata.namespace}/${p.metadata.name}`);
        this.enqueue(k);
      },
      onDelete: (p) => {
        const k = owner(p);
        if (!k) return;
        this.expectations.deletionObserved(k, `${p.metadata.namespace}/${p.metadata.name}`);
        this.enqueue(k);
      },
    });
    // A node's labels, taints or existence decide where daemon pods go.
    const all = () => {
      for (const s of this.sets.list()) this.enqueue(s);
    };
    this.handle(this.nodes, {
      onAdd: all,
      onUpdate: (o, n) => {
        if (canonical([o.metadata.labels, o.spec]) !== canonical([n.metadata.labels, n.spec])) all();
      },
      onDelete: all,
    });
  }

  protected reconcile(key: string): Promise<void> {
    return requeueOnConflict(this, key, () => this.sync(key));
  }

  private async sync(key: string): Promise<void> {
    const cached = this.sets.getByKey(key);
    if (!cached || cached.metadata.deletionTimestamp) return;
    const ds = structuredClone(cached);
    const ns = ds.metadata.namespace ?? '';
    const before = canonical(ds.status ?? {});
    const pods = await claimObjects(this.pods.byNamespace(ns), {
      client: this.ctx.client, kind: PODS, owner: ds, selector: ds.spec?.selector,
      canAdopt: ownerStillThere(this.ctx.client, DAEMONSETS, ds),
    });
    const revs = await syncRevisions(this.ctx, this.revisions, ds, DAEMONSETS);
    const hash = revs.update.metadata.labels?.[CONTROLLER_REVISION_HASH] ?? '';
    const now = this.ctx.now();
    const byNode = new Map<string, Pod[]>();
    for (const p of pods) {
      const n = targetNode(p);
      if (n) byNode.set(n, [...(byNode.get(n) ?? []), p]);
    }
    const nodes = this.nodes.list();
    if (this.expectations.satisfied(key)) {
      await this.manage(key, ds, nodes, byNode, hash, now);
    }
    this.computeStatus(ds, nodes, byNode, hash, now);
    if (canonical(ds.status) !== before) await this.ctx.client.update(resourcePath(DAEMONSETS, ns, ds.metadata.name, 'status'), ds);
    const inUse = new Set(pods.map((p) => p.metadata.labels?.[CONTROLLER_REVISION_HASH] ?? ''));
    await truncateHistory(this.ctx, revs.all, new Set([revs.update.metadata.name]), inUse, ds.spec?.revisionHistoryLimit ?? 10);
  }

  private isNew(p: Pod, hash: string): boolean {
    return p.metadata.labels?.[CONTROLLER_REVISION_HASH] === hash;
  }

  /** Kubernetes' manage + rollingUpdate: the pods each node should have, then the update step. */
  private async manage(key: string, ds: DaemonSetObj, nodes: Node[], byNode: Map<string, Pod[]>, hash: string, now: number): Promise<void> {
    const spec = ds.spec?.template?.spec ?? { containers: [] };
    const minReady = ds.spec?.minReadySeconds ?? 0;
    const available = (p: Pod) => isPodAvailable(p, minReady, now);
    const rolling = ds.spec?.updateStrategy?.type !== 'OnDelete';
    const surge = rolling ? this.maxSurge(ds, nodes) : 0;
    const create: string[] = [];
    const remove: Pod[] = [];
    const wanted = new Set<string>();
    for (const node of nodes) {
      const name = node.metadata.name;
      const { shouldRun, shouldContinueRunning } = placement(spec, node);
      const pods = (byNode.get(name) ?? []).filter(live);
      if (shouldRun) wanted.add(name);
      if (!shouldContinueRunning || (!shouldRun && !pods.length)) {
        remove.push(...pods);
        continue;
      }
      if (!shouldRun && pods.length) continue; // tolerated NoExecute only: the pods stay, none is added
      // Failed pods go (and are replaced on a later pass); the others count.
      const failed = pods.filter((p) => p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded');
      remove.push(...failed);
      const running = pods.filter((p) => !failed.includes(p)).sort(byAge);
      if (!running.length) {
        if (!failed.length) create.push(name);
        continue;
      }
      if (running.length > 1) {
        const fresh = running.find((p) => this.isNew(p, hash));
        if (surge > 0 && fresh) {
          // Surge: the old pods go once the new one is available.
          if (available(fresh)) remove.push(...running.filter((p) => p !== fresh));
          else this.recheck(key, fresh, minReady, now);
        } else remove.push(...running.slice(1));
      }
    }
    if (rolling && !create.length && !remove.length) this.rollingUpdate(key, ds, nodes, wanted, byNode, hash, surge, now, create, remove);
    if (remove.length) await this.podControl.delete(key, ds, remove);
    if (create.length) {
      this.expectations.expectCreations(key, create.length);
      await Promise.all(create.map((n) => this.createPod(key, ds, n, hash)));
    }
  }

  private maxSurge(ds: DaemonSetObj, nodes: Node[]): number {
    const ru = ds.spec?.updateStrategy?.rollingUpdate;
    return ru?.maxSurge === undefined ? 0 : scaledValue(ru.maxSurge, this.desired(ds, nodes));
  }

  private desired(ds: DaemonSetObj, nodes: Node[]): number {
    const spec = ds.spec?.template?.spec ?? { containers: [] };
    return nodes.filter((n) => placement(spec, n).shouldRun).length;
  }

  /**
   * One step of a rolling update (Kubernetes' rollingUpdate): without surge,
   * delete old pods — unavailable ones at once, available ones while fewer
   * than maxUnavailable nodes lack an available pod; with surge, start new
   * pods beside old ones on at most maxSurge nodes at a time.
   */
  private rollingUpdate(key: string, ds: DaemonSetObj, nodes: Node[], wanted: Set<string>, byNode: Map<string, Pod[]>, hash: string, surge: number, now: number, create: string[], remove: Pod[]): void {
    const minReady = ds.spec?.minReadySeconds ?? 0;
    const available = (p: Pod) => isPodAvailable(p, minReady, now);
    const desired = wanted.size;
    const maxUnavailable = scaledValue(ds.spec?.updateStrategy?.rollingUpdate?.maxUnavailable ?? 1, desired);
    if (surge === 0) {
      let unavailable = 0;
      const candidates: Pod[] = [];
      for (const name of wanted) {
        const pods = (byNode.get(name) ?? []).filter(live);
        const fresh = pods.find((p) => this.isNew(p, hash));
        const old = pods.find((p) => !this.isNew(p, hash));
        if (fresh) {
          if (!available(fresh)) {
            unavailable++;
            this.recheck(key, fresh, minReady, now);
          }
          continue;
        }
        if (!old) {
          unavailable++;
          continue;
        }
        if (!available(old)) remove.push(old); // not serving anyway: replace at once
        else candidates.push(old);
      }
      const budget = Math.max(0, (maxUnavailable || 1) - unavailable - remove.length);
      remove.push(...candidates.sort(byAge).slice(0, budget));
      return;
    }
    let inFlight = 0;
    const candidates: string[] = [];
    for (const name of wanted) {
      const pods = (byNode.get(name) ?? []).filter(live);
      const fresh = pods.find((p) => this.isNew(p, hash));
      const old = pods.find((p) => !this.isNew(p, hash));
      if (fresh && old) inFlight++;
      else if (old && !fresh) {
        if (!available(old)) create.push(name); // nothing to keep serving: replace at once
        else candidates.push(name);
      }
    }
    create.push(...candidates.sort().slice(0, Math.max(0, surge - inFlight)));
  }

  private recheck(key: string, p: Pod, minReady: number, now: number): void {
    const at = availableAt(p, minReady, now);
    if (at !== undefined) this.enqueueAfter(key, at - now + 50);
  }

  private async createPod(key: string, ds: DaemonSetObj, node: string, hash: string): Promise<void> {
    const pod = podFromTemplate(ds.spec!.template!, ds) as Pod;
    pod.metadata.labels = { ...pod.metadata.labels, [CONTROLLER_REVISION_HASH]: hash, [TEMPLATE_GENERATION]: String(ds.metadata.generation ?? 1) };
    pinToNode(pod.spec!, node);
    await this.podControl.create(key, ds, pod);
  }

  /** Kubernetes' updateDaemonSetStatus: counts by node, from the oldest live pod of each. */
  private computeStatus(ds: DaemonSetObj, nodes: Node[], byNode: Map<string, Pod[]>, hash: string, now: number): void {
    const spec = ds.spec?.template?.spec ?? { containers: [] };
    const minReady = ds.spec?.minReadySeconds ?? 0;
    let desired = 0;
    let current = 0;
    let misscheduled = 0;
    let ready = 0;
    let available = 0;
    let updated = 0;
    for (const node of nodes) {
      const pods = (byNode.get(node.metadata.name) ?? []).filter(live).sort(byAge);
      const { shouldRun } = placement(spec, node);
      if (shouldRun) desired++;
      if (!pods.length) continue;
      if (!shouldRun) {
        misscheduled++;
        continue;
      }
      current++;
      const p = pods[0]!;
      if (isPodReady(p)) {
        ready++;
        if (isPodAvailable(p, minReady, now)) available++;
      }
      if (this.isNew(p, hash)) updated++;
    }
    ds.status = {
      ...ds.status,
      desiredNumberScheduled: desired, currentNumberScheduled: current, numberMisscheduled: misscheduled,
      numberReady: ready, numberAvailable: available, numberUnavailable: desired - available,
      updatedNumberScheduled: updated, observedGeneration: ds.metadata.generation,
    };
    if (!ds.status.numberAvailable) delete ds.status.numberAvailable;
    if (!ds.status.numberUnavailable) delete ds.status.numberUnavailable;
    if (!ds.status.updatedNumberScheduled) delete ds.status.updatedNumberScheduled;
  }
}
