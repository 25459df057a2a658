// The default-scheduler profile: kube-scheduler's default plugins in its
// order (filters stop at the first that refuses a node) and its score
// weights. Not here: ImageLocality (agents run commands, not images),
// NodeVolumeLimits (no CSI drivers or attachable volumes), DefaultPreemption
// (see preemption.ts, the README).
import type { ApiClient } from '../client/api.ts';
import type { Profile } from './framework.ts';
import { BalancedAllocation } from './plugins/balanced-allocation.ts';
import { InterPodAffinity } from './plugins/inter-pod-affinity.ts';
import { NodeAffinity } from './plugins/node-affinity.ts';
import { NodeName } from './plugins/node-name.ts';
import { NodePorts } from './plugins/node-ports.ts';
import { NodeResourcesFit } from './plugins/node-resources-fit.ts';
import { NodeUnschedulable } from './plugins/node-unschedulable.ts';
import { PodTopologySpread } from './plugins/pod-topology-spread.ts';
import { TaintToleration } from './plugins/taint-toleration.ts';
import { VolumeBinding } from './plugins/volume-binding.ts';
import { VolumeRestrictions } from './plugins/volume-restrictions.ts';
import { VolumeZone } from './plugins/volume-zone.ts';

export const DEFAULT_SCHEDULER_NAME = 'default-scheduler';

/** `client` lets VolumeBinding annotate claims before binding (absent: the algorithm alone, as in benchmarks). */
export function defaultProfile(client?: ApiClient): Profile {
  const fit = new NodeResourcesFit(1);
  const taints = new TaintToleration(3);
  const nodeAffinity = new NodeAffinity(2);
  const volumes = new VolumeBinding(client);
  const spread = new PodTopologySpread(2);
  const interPod = new InterPodAffinity(2);
  const ports = new NodePorts();
  const balanced = new BalancedAllocation(1);
  const restrictions = new VolumeRestrictions();
  const zone = new VolumeZone();
  return {
    schedulerName: DEFAULT_SCHEDULER_NAME,
    preFilter: [nodeAffinity, ports, restrictions, volumes, zone, spread, interPod],
    filter: [new NodeUnschedulable(), new NodeName(), taints, nodeAffinity, ports, fit, volumes, zone, spread, interPod],
    preScore: [nodeAffinity, interPod, spread, balanced],
    score: [taints, nodeAffinity, spread, interPod, fit, balanced],
    preBind: [volumes],
  };
}
