// TaintToleration: the filter refuses a node with a NoSchedule or NoExecute
// taint the pod does not tolerate (naming the first such taint); the score
// counts the PreferNoSchedule taints it does not tolerate (tolerations with
// that effect or none), fewer being better.
import { findUntoleratedTaint, tolerationsTolerateTaint } from '../../../api/taints.ts';
import { type FilterPlugin, type ScorePlugin, type Status, defaultNormalize, unresolvable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';

export class TaintToleration implements FilterPlugin, ScorePlugin {
  readonly name = 'TaintToleration';
  constructor(readonly weight = 3) {}

  filter(_s: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    const taint = findUntoleratedTaint(node.taints, pod.tolerations, (t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute');
    return taint ? unresolvable(`node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`) : undefined;
  }

  score(_s: unknown, pod: PodInfo, node: NodeInfo): number {
    if (!node.taints.length) return 0;
    const tolerations = pod.tolerations.filter((t) => !t.effect || t.effect === 'PreferNoSchedule');
    return node.taints.filter((t) => t.effect === 'PreferNoSchedule' && !tolerationsTolerateTaint(tolerations, t)).length;
  }

  normalize(_s: unknown, _p: PodInfo, scores: number[]): void {
    defaultNormalize(scores, true);
  }
}
