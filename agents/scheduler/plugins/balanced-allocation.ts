// NodeResourcesBalancedAllocation: prefers nodes where cpu and memory would
// be used in equal shares after placing the pod: (1 − the standard
// deviation of the used fractions) × 100, fractions capped at 1, counting
// the requests as they are (no defaults for missing ones), as Kubernetes does;
// best-effort pods are not scored.
import { MAX_NODE_SCORE, type PreScorePlugin, SKIP, type ScorePlugin } from '../framework.ts';
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

export class BalancedAllocation implements PreScorePlugin, ScorePlugin {
  readonly name = 'NodeResourcesBalancedAllocation';
  /** Reused for every node (scores run synchronously, one at a time). */
  private readonly fractions: number[] = [];
  constructor(readonly weight = 1, private readonly resources = ['cpu', 'memory']) {}

  /** A best-effort pod (no request of these resources) is not scored: it would pile onto one node (kubernetes#129138). */
  preScore(_s: unknown, pod: PodInfo): typeof SKIP | undefined {
    return this.resources.some((r) => pod.requests[r]) ? undefined : SKIP;
  }

  score(_s: unknown, pod: PodInfo, node: NodeInfo): number {
    const fractions = this.fractions;
    fractions.length = 0;
    for (const r of this.resources) {
      const alloc = node.allocatable[r] ?? 0;
      if (alloc <= 0) continue;
      const f = ((node.requested[r] ?? 0) + (pod.requests[r] ?? 0)) / alloc;
      fractions.push(f > 1 ? 1 : f);
    }
    return balancedScore(fractions);
  }
}
