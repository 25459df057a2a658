// One scheduling decision (kube-scheduler's schedulePod): PreFilter, Filter
// over the nodes — starting where the previous decision stopped and, in big
// clusters, stopping once enough feasible nodes are found
// (percentageOfNodesToScore's adaptive default) — then PreScore, Score,
// NormalizeScore, and the highest weighted sum wins (ties broken at random).
// A plugin whose PreFilter/PreScore says SKIP is not run for the pod. When
// no node fits, the FitError counts every node's reasons.
import { type ClusterView, type CycleState, type FilterPlugin, type Plugin, type Profile, SKIP, type Status } from './framework.ts';
import type { NodeInfo } from './node-info.ts';
import type { PodInfo } from './pod-info.ts';

export interface Decision {
  node: string;
  state: CycleState;
  feasible: number;
  evaluated: number;
}

export class FitError extends Error {
  constructor(readonly numAllNodes: number, readonly nodeReasons: Map<string, Status>, readonly preFilter?: Status) {
    super(fitErrorMessage(numAllNodes, nodeReasons, preFilter));
  }

  /** Whether every node was refused for a reason no cluster change short of a new node fixes. */
  get unresolvable(): boolean {
    return [...this.nodeReasons.values()].every((s) => s.code === 'UnschedulableAndUnresolvable');
  }
}

/**
 * kube-scheduler's FitError message: "0/N nodes are available: " then the
 * reasons with how many nodes gave each, sorted as strings ("2 Insufficient
 * cpu, 3 node(s) were unschedulable."), or the PreFilter's reason alone.
 */
export function fitErrorMessage(numAllNodes: number, nodeReasons: Map<string, Status>, preFilter?: Status): string {
  let msg = `0/${numAllNodes} nodes are available:`;
  if (preFilter) return `${msg} ${preFilter.reasons.join(', ')}.`;
  const hist = new Map<string, number>();
  for (const s of nodeReasons.values()) for (const r of s.reasons) hist.set(r, (hist.get(r) ?? 0) + 1);
  const parts = [...hist].map(([r, n]) => `${n} ${r}`).sort();
  if (parts.length) msg += ` ${parts.join(', ')}.`;
  return msg;
}

/** How many feasible nodes are enough (percentageOfNodesToScore = 0: 50 − nodes/125 %, at least 5 %, at least 100 nodes). */
export function numFeasibleNodesToFind(numAllNodes: number, percentage = 0): number {
  if (numAllNodes < 100 || percentage >= 100) return numAllNodes;
  let pct = percentage;
  if (pct <= 0) pct = Math.max(5, 50 - Math.trunc(numAllNodes / 125));
  return Math.max(100, Math.trunc((numAllNodes * pct) / 100));
}

export class Algorithm {
  private nextStartNodeIndex = 0;
  private readonly totalBuf: number[] = [];
  private readonly scoreBuf: number[] = [];
  constructor(readonly profile: Profile, private readonly o: { percentageOfNodesToScore?: number; random?: () => number } = {}) {}

  /** The node for the pod, or throws FitError. */
  schedule(pod: PodInfo, view: ClusterView): Decision {
    const nodes = view.nodes();
    const state: CycleState = new Map();
    if (!nodes.length) throw new FitError(0, new Map());
    const skipped = new Set<Plugin>();
    for (const p of this.profile.preFilter) {
      const s = p.preFilter(state, pod, view);
      if (s === SKIP) skipped.add(p);
      else if (s) throw new FitError(nodes.length, new Map(nodes.map((n) => [n.name, s])), { ...s, plugin: p.name });
    }
    const filters = skipped.size ? this.profile.filter.filter((f) => !skipped.has(f)) : this.profile.filter;
    const want = numFeasibleNodesToFind(nodes.length, this.o.percentageOfNodesToScore);
    const feasible: NodeInfo[] = [];
    const reasons = new Map<string, Status>();
    let i = 0;
    for (; i < nodes.length && feasible.length < want; i++) {
      const n = nodes[(this.nextStartNodeIndex + i) % nodes.length]!;
      const s = filterWithNominated(filters, state, pod, n, view);
      if (s) reasons.set(n.name, s);
      else feasible.push(n);
    }
    this.nextStartNodeIndex = (this.nextStartNodeIndex + i) % nodes.length;
    if (!feasible.length) throw new FitError(nodes.length, reasons);
    if (feasible.length === 1) return { node: feasible[0]!.name, state, feasible: 1, evaluated: i };
    return { node: this.select(state, pod, feasible, view), state, feasible: feasible.length, evaluated: i };
  }


  /** Why the pod does not fit on this one node as the cluster is now (PreFilter run afresh), undefined when it fits: preemption's check. */
  filterOnNode(pod: PodInfo, node: NodeInfo, view: ClusterView): Status | undefined {
    const state: CycleState = new Map();
    const skipped = new Set<Plugin>();
    for (const p of this.profile.preFilter) {
      const s = p.preFilter(state, pod, view);
      if (s === SKIP) skipped.add(p);
      else if (s) return s;
    }
    return filterWithNominated(this.profile.filter.filter((f) => !skipped.has(f)), state, pod, node, view);
  }

  /** The weighted score of every feasible node; the best one (reservoir sampling among ties). */
  private select(state: CycleState, pod: PodInfo, feasible: NodeInfo[], view: ClusterView): string {
    const skipped = new Set<Plugin>();
    for (const p of this.profile.preScore) if (p.preScore(state, pod, feasible, view) === SKIP) skipped.add(p);
    // Two buffers reused across decisions: scoring hundreds of nodes per pod should not feed the GC.
    const n = feasible.length;
    const total = this.totalBuf;
    const scores = this.scoreBuf;
    total.length = n;
    total.fill(0);
    for (const sp of this.profile.score) {
      if (skipped.has(sp)) continue;
      scores.length = n;
      for (let i = 0; i < n; i++) scores[i] = sp.score(state, pod, feasible[i]!);
      sp.normalize?.(state, pod, scores, feasible);
      for (let i = 0; i < n; i++) total[i]! += scores[i]! * sp.weight;
    }
    const random = this.o.random ?? Math.random;
    let best = 0;
    let ties = 1;
    for (let i = 1; i < total.length; i++) {
      if (total[i]! > total[best]!) {
        best = i;
        ties = 1;
      } else if (total[i] === total[best]) {
        ties++;
        if (random() * ties < 1) best = i;
      }
    }
    return feasible[best]!.name;
  }
}

/**
 * The filters on a node as it will be once the pods nominated to it (by
 * preemption) with at least this pod's priority are placed: the room
 * preemption made for them is not taken by others (kube-scheduler adds them
 * to the node the same way; it also checks without them, for affinity).
 */
export function filterWithNominated(filters: readonly FilterPlugin[], state: CycleState, pod: PodInfo, node: NodeInfo, view: ClusterView): Status | undefined {
  const nominated = view.nominatedPods(node.name).filter((p) => p.key !== pod.key && p.priority >= pod.priority && !node.pods.has(p.key));
  if (!nominated.length) return runFilters(filters, state, pod, node);
  for (const p of nominated) node.addPod(p);
  try {
    return runFilters(filters, state, pod, node);
  } finally {
    for (const p of nominated) node.removePod(p.key);
  }
}

/** The first filter that refuses the node (undefined: it fits). */
export function runFilters(filters: readonly FilterPlugin[], state: CycleState, pod: PodInfo, node: NodeInfo): Status | undefined {
  for (const f of filters) {
    const s = f.filter(state, pod, node);
    if (s) return { ...s, plugin: f.name };
  }
  return undefined;
}
