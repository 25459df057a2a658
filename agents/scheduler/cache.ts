// The scheduler's cache (kube-scheduler's internal/cache): nodes and the pods
// counted on them, fed by the informers, plus ASSUMED pods — a pod counts on
// its chosen node from the moment of the decision, before its binding has
// gone through the log, so the next decision already sees it and a burst of
// pipelined bindings never over-commits a node. When the binding's event
// arrives the assumption is confirmed; a failed binding forgets it; an
// assumption whose binding succeeded but whose event never came expires.
//
// Decisions read this cache directly: a scheduling cycle is one synchronous
// run of the event loop, so no informer event can change it half-way —
// what kube-scheduler needs a copied snapshot for.
import type { Node, Pod } from '../informer/types.ts';
import { NodeInfo } from './node-info.ts';
import { PodInfo } from './pod-info.ts';

interface PodState {
  info: PodInfo;
  node: string;
  assumed: boolean;
  /** Binding done (assumed pods): expire at this time (ms) unless confirmed. */
  deadline?: number;
}

export class SchedulerCache {
  private readonly nodes = new Map<string, NodeInfo>();
  private readonly pods = new Map<string, PodState>();
  private list?: NodeInfo[];

  /** How long an assumed pod whose binding succeeded waits for its event (ms). */
  constructor(private readonly assumedTtlMs = 30_000) {}

  /** The nodes that exist (a Node object), in a stable order. */
  nodeInfos(): NodeInfo[] {
    this.list ??= [...this.nodes.values()].filter((n) => n.node).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return this.list;
  }

  nodeInfo(name: string): NodeInfo | undefined {
    const n = this.nodes.get(name);
    return n?.node ? n : undefined;
  }

  get nodeCount(): number {
    return this.nodeInfos().length;
  }

  get podCount(): number {
    return this.pods.size;
  }

  private slot(name: string): NodeInfo {
    let n = this.nodes.get(name);
    if (!n) {
      n = new NodeInfo(name);
      this.nodes.set(name, n);
    }
    return n;
  }

  addOrUpdateNode(node: Node): void {
    const had = this.nodes.get(node.metadata.name)?.node;
    this.slot(node.metadata.name).setNode(node);
    if (!had) this.list = undefined;
  }

  removeNode(name: string): void {
    const n = this.nodes.get(name);
    if (!n) return;
    this.list = undefined;
    // Pods still bound to a deleted node keep a node-less entry until they go, as kube-scheduler does.
    if (n.pods.size) n.node = undefined;
    else this.nodes.delete(name);
  }

  isAssumed(key: string): boolean {
    return this.pods.get(key)?.assumed === true;
  }

  /** Counts the pod on `node` now (its binding is about to be sent). */
  assume(info: PodInfo, node: string): void {
    if (this.pods.has(info.key)) throw new Error(`pod ${info.key} is already in the cache`);
    this.slot(node).addPod(info);
    this.pods.set(info.key, { info, node, assumed: true });
  }

  /** The binding succeeded: the assumption now waits for the pod's event, at most the TTL. */
  finishBinding(key: string, now: number): void {
    const s = this.pods.get(key);
    if (s?.assumed) s.deadline = now + this.assumedTtlMs;
  }

  /** The binding failed: the pod no longer counts anywhere. */
  forget(key: string): void {
    const s = this.pods.get(key);
    if (!s?.assumed) return;
    this.removeFrom(s.node, key);
    this.pods.delete(key);
  }

  /** A bound, non-terminal pod from the informer (confirms an assumption). */
  addOrUpdatePod(pod: Pod): void {
    const info = new PodInfo(pod);
    const node = pod.spec!.nodeName!;
    const cur = this.pods.get(info.key);
    if (cur) this.removeFrom(cur.node, info.key);
    this.slot(node).addPod(info);
    this.pods.set(info.key, { info, node, assumed: false });
  }

  /** A pod that was deleted, became terminal or (impossibly) lost its node. */
  removePod(key: string): void {
    const s = this.pods.get(key);
    if (!s) return;
    this.removeFrom(s.node, key);
    this.pods.delete(key);
  }

  /** Forgets assumed pods whose binding succeeded but whose event never came. */
  expire(now: number): string[] {
    const gone: string[] = [];
    for (const [key, s] of this.pods) {
      if (s.assumed && s.deadline !== undefined && s.deadline <= now) {
        this.removeFrom(s.node, key);
        this.pods.delete(key);
        gone.push(key);
      }
    }
    return gone;
  }

  private removeFrom(node: string, key: string): void {
    const n = this.nodes.get(node);
    if (!n) return;
    n.removePod(key);
    if (!n.node && !n.pods.size) this.nodes.delete(node);
  }
}
