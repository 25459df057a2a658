// NodePorts: a pod's host ports (protocol, port, host IP) must be free on the node.
import { type FilterPlugin, type Status, unschedulable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';

export const ERR_PORTS = "node(s) didn't have free ports for the requested pod ports";

export class NodePorts implements FilterPlugin {
  readonly name = 'NodePorts';
  filter(_s: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    return pod.hostPorts.some((hp) => node.portConflicts(hp)) ? unschedulable(ERR_PORTS) : undefined;
  }
}
