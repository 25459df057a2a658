// Where a DaemonSet's pods belong (Kubernetes' daemon controller
// NodeShouldRunDaemonPod and util/daemonset_util.go): a node runs the pod
// when the template's nodeName (if any), nodeSelector and required node
// affinity match it and the pod tolerates its NoSchedule and NoExecute
// taints, with the tolerations every daemon pod gets added; a pod keeps
// running while only its NoExecute taints are tolerated. Each pod is pinned
// to its node by a required node affinity on metadata.name, so that the
// scheduler binds it there (Kubernetes ≥ 1.12).
import { type Taint, type Toleration, TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE, TAINT_NODE_UNSCHEDULABLE, findUntoleratedTaint } from '../../../api/taints.ts';
import { type NodeSelector, nodeSelectorMatches } from '../../../api/node-selector.ts';
import type { Node, Pod, PodSpec } from '../../informer/types.ts';

/** The tolerations Kubernetes adds to every daemon pod (network-unavailable only with hostNetwork). */
export function daemonTolerations(hostNetwork: boolean): Toleration[] {
  const t: Toleration[] = [
    { key: TAINT_NODE_NOT_READY, operator: 'Exists', effect: 'NoExecute' },
    { key: TAINT_NODE_UNREACHABLE, operator: 'Exists', effect: 'NoExecute' },
    { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
    { key: TAINT_NODE_UNSCHEDULABLE, operator: 'Exists', effect: 'NoSchedule' },
  ];
  if (hostNetwork) t.push({ key: 'node.kubernetes.io/network-unavailable', operator: 'Exists', effect: 'NoSchedule' });
  return t;
}

/** The template's tolerations plus the daemon ones it lacks (same key and effect). */
export function withDaemonTolerations(spec: PodSpec): Toleration[] {
  const own = (spec.tolerations ?? []) as Toleration[];
  const added = daemonTolerations(spec.hostNetwork === true).filter((d) => !own.some((o) => o.key === d.key && o.effect === d.effect));
  return [...own, ...added];
}

type Affinity = { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: NodeSelector; [k: string]: unknown }; [k: string]: unknown };

export interface Placement {
  /** The node should run a daemon pod. */
  shouldRun: boolean;
  /** A daemon pod already there may stay. */
  shouldContinueRunning: boolean;
}

export function placement(spec: PodSpec, node: Node): Placement {
  const no = { shouldRun: false, shouldContinueRunning: false };
  if (spec.nodeName && spec.nodeName !== node.metadata.name) return no;
  const labels = node.metadata.labels ?? {};
  if (!Object.entries(spec.nodeSelector ?? {}).every(([k, v]) => labels[k] === v)) return no;
  const required = (spec.affinity as Affinity | undefined)?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (required && !nodeSelectorMatches(required, { name: node.metadata.name, labels })) return no;
  const taints = (node.spec?.taints ?? []) as Taint[];
  const tolerations = withDaemonTolerations(spec);
  const untolerated = (effects: string[]) => findUntoleratedTaint(taints, tolerations, (t) => effects.includes(t.effect));
  return {
    shouldRun: !untolerated(['NoSchedule', 'NoExecute']),
    shouldContinueRunning: !untolerated(['NoExecute']),
  };
}

/** The node a daemon pod is for: its nodeName, else its metadata.name affinity (Kubernetes' GetTargetNodeName). */
export function targetNode(pod: Pod): string | undefined {
  if (pod.spec?.nodeName) return pod.spec.nodeName;
  const terms = (pod.spec?.affinity as Affinity | undefined)?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  for (const t of terms) {
    for (const f of t.matchFields ?? []) if (f.key === 'metadata.name' && f.operator === 'In' && f.values?.length === 1) return f.values[0];
  }
  return undefined;
}

/** `spec` pinned to `node`: the required node affinity becomes metadata.name In [node] (ReplaceDaemonSetPodNodeNameNodeAffinity). */
export function pinToNode(spec: PodSpec, node: string): void {
  const affinity: Affinity = { ...(spec.affinity as Affinity | undefined) };
  affinity.nodeAffinity = {
    ...affinity.nodeAffinity,
    requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] },
  };
  spec.affinity = affinity;
  spec.tolerations = withDaemonTolerations(spec);
}
