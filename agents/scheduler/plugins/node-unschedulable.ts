// NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods
// that tolerate the node.kubernetes.io/unschedulable:NoSchedule taint.
import { TAINT_NODE_UNSCHEDULABLE, tolerationsTolerateTaint } from '../../../api/taints.ts';
import { type FilterPlugin, type Status, unresolvable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';

export const ERR_UNSCHEDULABLE = 'node(s) were unschedulable';

export class NodeUnschedulable implements FilterPlugin {
  readonly name = 'NodeUnschedulable';
  filter(_s: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    if (!node.node?.spec?.unschedulable) return undefined;
    const tolerated = tolerationsTolerateTaint(pod.tolerations, { key: TAINT_NODE_UNSCHEDULABLE, effect: 'NoSchedule' });
    return tolerated ? undefined : unresolvable(ERR_UNSCHEDULABLE);
  }
}
