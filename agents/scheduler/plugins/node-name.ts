// NodeName: a pod that names its node (spec.nodeName) fits only there.
import { type FilterPlugin, type Status, unresolvable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';

export const ERR_NODE_NAME = "node(s) didn't match the requested node name";

export class NodeName implements FilterPlugin {
  readonly name = 'NodeName';
  filter(_s: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    const want = pod.pod.spec?.nodeName;
    return want && want !== node.name ? unresolvable(ERR_NODE_NAME) : undefined;
  }
}
