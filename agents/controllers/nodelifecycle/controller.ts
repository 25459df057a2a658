// The node lifecycle controller (kube-controller-manager's nodelifecycle):
// every --node-monitor-period it checks when each node was last heard from
// (its Lease in kube-node-lease, renewed by the node agent, or its status
// heartbeat). A node silent for --node-monitor-grace-period gets all its
// conditions Unknown; its pods are marked not Ready (they drop out of
// service endpoints); and it is tainted node.kubernetes.io/unreachable
// (not-ready for Ready=False) with NoSchedule at once and NoExecute at a rate
// limited per zone (--node-eviction-rate; slower or stopped when a zone is
// largely down, suspended when every zone is: then the fault is more likely
// the control plane's than the nodes'). The taint eviction controller
// (taint-eviction.ts) deletes the pods whose tolerations run out. A node that
// reports Ready again is untainted.
import { deepEqual } from '../../../api/kinds/common.ts';
import type { Taint } from '../../../api/taints.ts';
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { Lease, Node, Pod } from '../../informer/types.ts';
import type { EventRecorder } from '../../recorder/recorder.ts';
import type { ControllerContext } from '../context.ts';
import type { Controller } from '../controller.ts';
import { isPodReady, isPodTerminal } from '../endpoints/pods.ts';
import {
  type NoExecuteAction, type Probe, TokenBucket, applyNoExecute, noExecuteAction, observe, readyCondition, readyStatus,
  silentNodeConditions, withNoScheduleTaints, zoneKey, zoneRate, zoneState,
} from './health.ts';
import { type NodeLifecycleMetrics, nodeLifecycleMetrics } from './metrics.ts';

const NODES = resolveKind('nodes')!;
const PODS = resolveKind('pods')!;
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';

export class NodeLifecycleController implements Controller {
  readonly name = 'nodelifecycle';
  private readonly nodes: Informer<Node>;
  private readonly leases: Informer<Lease>;
  private readonly pods: Informer<Pod>;
  private readonly recorder: EventRecorder;
  private readonly log: ControllerContext['log'];
  private readonly probes = new Map<string, Probe>();
  private readonly lastReady = new Map<string, string>();
  private readonly buckets = new Map<string, TokenBucket>();
  private suspended = false;
  private readonly metrics: NodeLifecycleMetrics;

  constructor(private readonly ctx: ControllerContext) {
    this.metrics = nodeLifecycleMetrics(ctx.registry);
    this.nodes = ctx.informers.informer<Node>('nodes');
    this.leases = ctx.informers.informer<Lease>('leases');
    this.pods = ctx.informers.informer<Pod>('pods');
    this.recorder = ctx.recorder('node-controller');
    this.log = ctx.log.child({ controller: this.name });
  }

  async run(signal: AbortSignal): Promise<void> {
    await this.ctx.informers.start();
    while (!signal.aborted) {
      try {
        await this.monitor();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'node health pass failed; next pass retries');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.ctx.config.nodeMonitorPeriodMs);
        signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
      });
    }
  }

  /** One pass over every node (Kubernetes' monitorNodeHealth). */
  async monitor(): Promise<void> {
    const cfg = this.ctx.config;
    const now = this.ctx.now();
    const nodes = this.nodes.list().sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    const names = new Set(nodes.map((n) => n.metadata.name));
    for (const n of [...this.probes.keys()]) if (!names.has(n)) { this.probes.delete(n); this.lastReady.delete(n); }
    const current: Node[] = [];
    for (const node of nodes) {
      const name = node.metadata.name;
      const probe = observe(this.probes.get(name), node, this.leases.get(NODE_LEASE_NAMESPACE, name), now);
      this.probes.set(name, probe);
      let cur = node;
      const grace = readyCondition(node) ? cfg.nodeMonitorGracePeriodMs : cfg.nodeStartupGracePeriodMs;
      if (now - probe.at > grace) {
        const conditions = silentNodeConditions(node, now);
        if (conditions) {
          cur = await this.write(() => this.ctx.client.update<Node>(resourcePath(NODES, '', name, 'status'), { ...node, status: { ...node.status, conditions } })) ?? node;
          this.log.info({ node: name, silentMs: now - probe.at }, 'node stopped posting status: conditions Unknown');
        }
      }
      const ready = readyStatus(cur);
      const prev = this.lastReady.get(name);
      if (prev !== undefined && prev !== ready) {
        const status = ready === 'True' ? 'NodeReady' : 'NodeNotReady';
        this.recorder.event(cur, 'Normal', status, `Node ${name} status is now: ${status}`);
      }
      this.lastReady.set(name, ready);
      if (ready !== 'True') await this.markPodsNotReady(name);
      current.push(cur);
    }
    this.updateZones(current);
    for (const node of current) await this.reconcileTaints(node, now);
  }

  /** Sets each zone's tainting rate from its state; suspends tainting when every zone is fully disrupted. */
  private updateZones(nodes: Node[]): void {
    const cfg = this.ctx.config;
    const zones = new Map<string, string[]>();
    for (const n of nodes) zones.set(zoneKey(n), [...(zones.get(zoneKey(n)) ?? []), readyStatus(n)]);
    const states = new Map([...zones].map(([z, s]) => [z, zoneState(s, cfg.unhealthyZoneThreshold)]));
    const suspend = states.size > 0 && [...states.values()].every((s) => s === 'FullDisruption');
    if (suspend !== this.suspended) {
      this.log.warn(suspend
        ? 'no node is ready in any zone: entering full disruption mode, NoExecute taints lifted and evictions stopped'
        : 'some node is ready again: leaving full disruption mode');
      this.suspended = suspend;
    }
    for (const [zone, state] of states) {
      const statuses = zones.get(zone)!;
      const unhealthy = statuses.filter((x) => x !== 'True').length;
      this.metrics.zoneSize.set({ zone }, statuses.length);
      this.metrics.unhealthyNodes.set({ zone }, unhealthy);
      this.metrics.zoneHealth.set({ zone }, (100 * (statuses.length - unhealthy)) / statuses.length);
      const rate = suspend ? 0 : zoneRate(state, zones.get(zone)!.length, { normal: cfg.nodeEvictionRate, secondary: cfg.secondaryNodeEvictionRate, largeClusterThreshold: cfg.largeClusterSizeThreshold });
      let b = this.buckets.get(zone);
      if (!b) this.buckets.set(zone, (b = new TokenBucket(rate)));
      b.setRate(rate);
    }
  }

  private async reconcileTaints(node: Node, now: number): Promise<void> {
    const before = (node.spec?.taints ?? []) as Taint[];
    let taints = withNoScheduleTaints(node, before);
    let action: NoExecuteAction = noExecuteAction(node, taints, this.suspended);
    if (action.kind === 'add' && !this.buckets.get(zoneKey(node))?.tryAccept(now)) {
      this.log.debug({ node: node.metadata.name, taint: action.key }, 'NoExecute taint waits for the zone\'s eviction rate');
      action = { kind: 'none' };
    }
    taints = applyNoExecute(taints, action, now);
    if (deepEqual(taints, before)) return;
    const written = await this.write(() => this.ctx.client.update(resourcePath(NODES, '', node.metadata.name), { ...node, spec: { ...node.spec, taints } }));
    if (written && action.kind !== 'none') this.log.info({ node: node.metadata.name, action }, 'node NoExecute taints changed');
  }

  /** Marks the pods of a node that is not ready as not Ready (Kubernetes' MarkPodsNotReady), so endpoints drop them. */
  private async markPodsNotReady(nodeName: string): Promise<void> {
    const iso = new Date(this.ctx.now()).toISOString().replace(/\.\d+Z$/, 'Z');
    for (const pod of this.pods.byNode(nodeName)) {
      if (!isPodReady(pod) || isPodTerminal(pod)) continue;
      const conditions = (pod.status?.conditions ?? []).map((c) => (c.type === 'Ready' ? { ...c, status: 'False', lastTransitionTime: iso } : c));
      const ok = await this.write(() => this.ctx.client.update(resourcePath(PODS, pod.metadata.namespace, pod.metadata.name, 'status'), { ...pod, status: { ...pod.status, conditions } }));
      if (ok) this.recorder.event(pod, 'Warning', 'NodeNotReady', 'Node is not ready');
    }
  }

  /** A write from the cache: a conflict or a vanished object waits for the next pass, anything else is logged. */
  private async write<T>(fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ApiClientError && (e.code === 409 || e.code === 404)) return undefined;
      this.log.warn({ err: (e as Error).message }, 'node lifecycle write failed');
      return undefined;
    }
  }
}
