// NodeResourcesFit: the pod's requests must fit in what the node's
// status.allocatable leaves after the pods counted on it (bound and
// assumed); one more pod must fit in allocatable pods. Every resource short
// is a reason ("Insufficient cpu", "Too many pods"). Its score is
// LeastAllocated: the share of cpu and memory left free after placing the
// pod, with missing requests counted as 100m / 200Mi so empty pods spread.
import { type FilterPlugin, MAX_NODE_SCORE, type ScorePlugin, type Status, unschedulable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';

export const NAME = 'NodeResourcesFit';

/** The reasons the pod does not fit on the node (empty: it fits). */
export function insufficientResources(pod: PodInfo, node: NodeInfo): string[] {
  const out: string[] = [];
  const allowedPods = node.allocatable.pods ?? 0;
  if (node.pods.size + 1 > allowedPods) out.push('Too many pods');
  for (const [r, want] of pod.requestList) {
    const free = (node.allocatable[r] ?? 0) - (node.requested[r] ?? 0);
    if (want > free) out.push(`Insufficient ${r}`);
  }
  return out;
}

/** The same check without building reasons (the path taken for almost every node). */
function fits(pod: PodInfo, node: NodeInfo): boolean {
  if (node.pods.size + 1 > (node.allocatable.pods ?? 0)) return false;
  const reqs = pod.requestList;
  for (let i = 0; i < reqs.length; i++) {
    const [r, want] = reqs[i]!;
    if (want > (node.allocatable[r] ?? 0) - (node.requested[r] ?? 0)) return false;
  }
  return true;
}

/** (allocatable − requested) × 100 / allocatable, integer, 0 when over or nothing allocatable. */
export function leastRequestedScore(requested: number, allocatable: number): number {
  if (allocatable === 0 || requested > allocatable) return 0;
  return Math.trunc(((allocatable - requested) * MAX_NODE_SCORE) / allocatable);
}

export class NodeResourcesFit implements FilterPlugin, ScorePlugin {
  readonly name = NAME;
  constructor(readonly weight = 1, private readonly resources: { name: string; weight: number }[] = [{ name: 'cpu', weight: 1 }, { name: 'memory', weight: 1 }]) {}

  filter(_s: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    if (fits(pod, node)) return undefined;
    return unschedulable(...insufficientResources(pod, node));
  }

  score(_s: unknown, pod: PodInfo, node: NodeInfo): number {
    let score = 0;
    let weights = 0;
    const rs = this.resources;
    for (let i = 0; i < rs.length; i++) {
      const { name, weight } = rs[i]!;
      const alloc = node.allocatable[name] ?? 0;
      const requested = (node.nonZeroRequested[name] ?? node.requested[name] ?? 0) + (pod.nonZero[name] ?? 0);
      score += leastRequestedScore(requested, alloc) * weight;
      weights += weight;
    }
    return weights ? Math.trunc(score / weights) : 0;
  }
}
