// NodePorts: a pod's host ports (protocol, port, host IP) must be free on the node.
import { type FilterPlugin, type PreFilterPlugin, SKIP, type Status, unschedulable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';

export const ERR_PORTS = "node(s) didn't have free ports for the requested pod ports";

export class NodePorts implements PreFilterPlugin, FilterPlugin {
  readonly name = 'NodePorts';
  preFilter(_s: unknown, pod: PodInfo): typeof SKIP | undefined {
    return pod.hostPorts.length ? undefined : SKIP;
  }

  filter(_s: unknown, pod: PodInfo, node: NodeInfo): Status | undefined {
    return pod.hostPorts.some((hp) => node.portConflicts(hp)) ? unschedulable(ERR_PORTS) : undefined;
  }
}
