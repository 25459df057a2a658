// NodeAffinity: spec.nodeSelector (every label equal) and the required
// node affinity (api/node-selector.ts: terms ORed, expressions ANDed) must
// match the node; the score sums the weights of the preferred terms the
// node matches, scaled so the best node gets 100.
import { nodeSelectorMatches, type NodeSelector, type NodeSelectorTerm } from '../../../api/node-selector.ts';
import { type FilterPlugin, type PreFilterPlugin, type PreScorePlugin, SKIP, type ScorePlugin, type Status, defaultNormalize, unresolvable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';

export const ERR_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector";

/** Whether the node satisfies the pod's nodeSelector and required node affinity (also used by PodTopologySpread). */
export function podMatchesNodeSelectorAndAffinity(pod: PodInfo, node: NodeInfo): boolean {
  const spec = pod.pod.spec as { nodeSelector?: Record<string, string>; affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: NodeSelector } } } | undefined;
  const labels = node.labels;
  for (const [k, v] of Object.entries(spec?.nodeSelector ?? {})) if (labels[k] !== v) return false;
  const required = spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  return !required || nodeSelectorMatches(required, { name: node.name, labels });
}

const affinityOf = (pod: PodInfo) => (pod.pod.spec as any)?.affinity?.nodeAffinity;

export class NodeAffinity implements PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin {
  readonly name = 'NodeAffinity';
  constructor(readonly weight = 2) {}

  preFilter(_s: unknown, pod: PodInfo): typeof SKIP | undefined {
    const sel = pod.pod.spec?.nodeSelector;
    return (sel && Object.keys(sel).length) || affinityOf(pod)?.requiredDuringSchedulingIgnoredDuringExecution ? undefined : SKIP;
  }

  preScore(_s: unknown, pod: PodInfo): typeof SKIP | undefined {
    return affinityOf(pod)?.preferredDuringSchedulingIgnoredDuringExecution?.length ? undefined : SKIP;
  }

  filter(_s: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    return podMatchesNodeSelectorAndAffinity(pod, node) ? undefined : unresolvable(ERR_NODE_AFFINITY);
  }

  score(_s: unknown, pod: PodInfo, node: NodeInfo): number {
    const preferred = (affinityOf(pod)?.preferredDuringSchedulingIgnoredDuringExecution ?? []) as { weight: number; preference: NodeSelectorTerm }[];
    let sum = 0;
    for (const p of preferred) {
      if (p.weight && nodeSelectorMatches({ nodeSelectorTerms: [p.preference ?? {}] }, { name: node.name, labels: node.labels })) sum += p.weight;
    }
    return sum;
  }

  normalize(_s: unknown, _p: PodInfo, scores: number[]): void {
    defaultNormalize(scores, false);
  }
}
