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
import type { LabelRequirement } from '../../api/selectors.ts';
import type { Node, Pod } from '../informer/types.ts';
import type { ClusterView } from './framework.ts';
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
  /** "key=value" → the counted pods with that label: candidates for an affinity term's selector. */
  private readonly byLabel = new Map<string, Set<PodState>>();
  /**
   * Counted pods with required anti-affinity terms (every decision checks
   * whether one selects the new pod), filed under each term's required label
   * value, or under '' for a term without one.
   */
  private readonly antiAffinityByLabel = new Map<string, Set<PodState>>();
  /** Pending pods nominated to a node by preemption: node → key → pod (kube-scheduler's nominator). */
  private readonly nominated = new Map<string, Map<string, PodInfo>>();
  private readonly nominatedNode = new Map<string, string>();
  /** Counted pods with any inter-pod (anti-)affinity term (their terms may attract or repel the next pod). */
  private readonly withAffinity = new Set<PodState>();

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
    this.index({ info, node, assumed: true });
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
    this.unindex(s);
  }

  /** A bound, non-terminal pod from the informer (confirms an assumption). */
  addOrUpdatePod(pod: Pod): void {
    const info = new PodInfo(pod);
    const node = pod.spec!.nodeName!;
    const cur = this.pods.get(info.key);
    if (cur) this.unindex(cur);
    this.slot(node).addPod(info);
    this.index({ info, node, assumed: false });
  }

  /** A pod that was deleted, became terminal or (impossibly) lost its node. */
  removePod(key: string): void {
    const s = this.pods.get(key);
    if (!s) return;
    this.unindex(s);
  }

  /**
   * Runs `fn` with these counted pods taken out of the cache, then puts
   * them back as they were (preemption's "what if these were gone").
   * `fn` may put one back early and take it out again (trying to reprieve
   * a victim).
   */
  withoutPods<T>(keys: readonly string[], fn: (h: { restore(key: string): void; remove(key: string): void }) => T): T {
    const out = new Map<string, PodState>();
    const remove = (k: string) => {
      const s = this.pods.get(k);
      if (!s || out.has(k)) return;
      this.unindex(s);
      out.set(k, s);
    };
    const restore = (k: string) => {
      const s = out.get(k);
      if (!s) return;
      out.delete(k);
      this.slot(s.node).addPod(s.info);
      this.index(s);
    };
    for (const k of keys) remove(k);
    try {
      return fn({ restore, remove });
    } finally {
      for (const k of [...out.keys()]) restore(k);
    }
  }

  /** Forgets assumed pods whose binding succeeded but whose event never came. */
  expire(now: number): string[] {
    const gone: string[] = [];
    for (const [key, s] of this.pods) {
      if (s.assumed && s.deadline !== undefined && s.deadline <= now) {
        this.unindex(s);
        gone.push(key);
      }
    }
    return gone;
  }

  /**
   * The counted pods a selector may match, with their nodes: when the
   * selector requires a label value ("app=web", "app in (web)"), only the
   * pods carrying it; otherwise every pod. Callers still match each one.
   */
  *podsFor(selector: readonly LabelRequirement[] | null): Iterable<[PodInfo, NodeInfo]> {
    if (selector === null) return;
    let best: Set<PodState> | undefined;
    for (const r of selector) {
      if (!((r.operator === '=' || r.operator === '==' || r.operator === 'in') && r.values.length === 1)) continue;
      const s = this.byLabel.get(`${r.key}=${r.values[0]}`);
      if (!s) return;
      if (!best || s.size < best.size) best = s;
    }
    for (const s of best ?? this.pods.values()) {
      const n = this.nodeInfo(s.node);
      if (n) yield [s.info, n];
    }
  }

  /** The counted pods with a required anti-affinity term that may select a pod with these labels, with their nodes. */
  *podsWithRequiredAntiAffinity(labels: Record<string, string>): Iterable<[PodInfo, NodeInfo]> {
    const seen = new Set<PodState>();
    for (const key of ['', ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)]) {
      for (const s of this.antiAffinityByLabel.get(key) ?? []) {
        if (seen.has(s)) continue;
        seen.add(s);
        const n = this.nodeInfo(s.node);
        if (n) yield [s.info, n];
      }
    }
  }

  /** Records the node a pending pod was nominated to (status.nominatedNodeName). */
  nominate(info: PodInfo, node: string): void {
    this.unnominate(info.key);
    let m = this.nominated.get(node);
    if (!m) this.nominated.set(node, (m = new Map()));
    m.set(info.key, info);
    this.nominatedNode.set(info.key, node);
  }

  /** The pod is no longer nominated (bound, deleted, or its nomination cleared). */
  unnominate(key: string): void {
    const was = this.nominatedNode.get(key);
    if (!was) return;
    this.nominated.get(was)?.delete(key);
    if (!this.nominated.get(was)?.size) this.nominated.delete(was);
    this.nominatedNode.delete(key);
  }

  /** The pending pods nominated to a node. */
  nominatedPods(node: string): PodInfo[] {
    const m = this.nominated.get(node);
    return m ? [...m.values()] : [];
  }

  /** The counted pods with any inter-pod (anti-)affinity term, with their nodes. */
  *podsWithAffinity(): Iterable<[PodInfo, NodeInfo]> {
    for (const s of this.withAffinity) {
      const n = this.nodeInfo(s.node);
      if (n) yield [s.info, n];
    }
  }

  /** Where a term is filed: a label value its selector requires, or ''. */
  private static termLabel(selector: readonly LabelRequirement[] | null): string {
    for (const r of selector ?? []) {
      if ((r.operator === '=' || r.operator === '==' || r.operator === 'in') && r.values.length === 1) return `${r.key}=${r.values[0]}`;
    }
    return '';
  }

  private index(s: PodState): void {
    this.pods.set(s.info.key, s);
    for (const [k, v] of Object.entries(s.info.labels)) {
      const key = `${k}=${v}`;
      let set = this.byLabel.get(key);
      if (!set) this.byLabel.set(key, (set = new Set()));
      set.add(s);
    }
    if (s.info.hasAffinity) this.withAffinity.add(s);
    for (const t of s.info.requiredAntiAffinity) {
      const key = SchedulerCache.termLabel(t.selector);
      let set = this.antiAffinityByLabel.get(key);
      if (!set) this.antiAffinityByLabel.set(key, (set = new Set()));
      set.add(s);
    }
  }

  private unindex(s: PodState): void {
    this.removeFrom(s.node, s.info.key);
    this.pods.delete(s.info.key);
    for (const [k, v] of Object.entries(s.info.labels)) {
      const key = `${k}=${v}`;
      const set = this.byLabel.get(key);
      set?.delete(s);
      if (set && !set.size) this.byLabel.delete(key);
    }
    this.withAffinity.delete(s);
    for (const t of s.info.requiredAntiAffinity) {
      const key = SchedulerCache.termLabel(t.selector);
      const set = this.antiAffinityByLabel.get(key);
      set?.delete(s);
      if (set && !set.size) this.antiAffinityByLabel.delete(key);
    }
  }

  private removeFrom(node: string, key: string): void {
    const n = this.nodes.get(node);
    if (!n) return;
    n.removePod(key);
    if (!n.node && !n.pods.size) this.nodes.delete(node);
  }
}

/** The ClusterView plugins read: this cache's nodes and pods, and the other listers. */
export function clusterView(cache: SchedulerCache, listers: Pick<ClusterView, 'namespaceLabels' | 'get' | 'list'>): ClusterView {
  return {
    nodes: () => cache.nodeInfos(),
    nodeInfo: (n) => cache.nodeInfo(n),
    podsFor: (sel) => cache.podsFor(sel),
    podsWithRequiredAntiAffinity: (labels) => cache.podsWithRequiredAntiAffinity(labels),
    podsWithAffinity: () => cache.podsWithAffinity(),
    nominatedPods: (node) => cache.nominatedPods(node),
    ...listers,
  };
}
