// NodeResourcesBalancedAllocation: prefers nodes where cpu and memory would
// be used in equal shares after placing the pod: (1 − the standard
// deviation of the used fractions) × 100, fractions capped at 1, counting
// the requests as they are (no defaults for missing ones), as Kubernetes does;
// best-effort pods are not scored.
import { MAX_NODE_SCORE, type ScorePlugin } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';

export function balancedScore(fractions: number[]): number {
  let std = 0;
  if (fractions.length === 2) std = Math.abs((fractions[0]! - fractions[1]!) / 2);
  else if (fractions.length > 2) {
    const mean = fractions.reduce((a, b) => a + b, 0) / fractions.length;
    std = Math.sqrt(fractions.reduce((a, f) => a + (f - mean) ** 2, 0) / fractions.length);
  }
  return Math.trunc((1 - std) * MAX_NODE_SCORE);
}

export class BalancedAllocation implements ScorePlugin {
  readonly name = 'NodeResourcesBalancedAllocation';
  constructor(readonly weight = 1, private readonly resources = ['cpu', 'memory']) {}

  score(_s: unknown, pod: PodInfo, node: NodeInfo): number {
    // A best-effort pod (no request of these resources) is not scored: it would pile onto one node (kubernetes#129138).
    let any = false;
    for (const r of this.resources) if (pod.requests[r]) any = true;
    if (!any) return 0;
    const fractions: number[] = [];
    for (const r of this.resources) {
      const alloc = node.allocatable[r] ?? 0;
      if (alloc <= 0) continue;
      const f = ((node.requested[r] ?? 0) + (pod.requests[r] ?? 0)) / alloc;
      fractions.push(f > 1 ? 1 : f);
    }
    return balancedScore(fractions);
  }
}
