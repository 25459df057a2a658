// VolumeZone: a pod whose bound claims' volumes carry zone or region labels
// (topology.kubernetes.io/zone|region, or the deprecated failure-domain
// labels; a value may list several zones joined by "__", as Kubernetes
// writes them) fits only the nodes labelled with one of those values.
// Claims not bound yet are VolumeBinding's business.
import { podClaimNames } from './volume-binding.ts';
import { type ClusterView, type CycleState, type FilterPlugin, type PreFilterPlugin, SKIP, type Status, unresolvable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';

export const ERR_VOLUME_ZONE = 'node(s) had no available volume zone';
const TOPOLOGY_LABELS = [
  'topology.kubernetes.io/zone', 'topology.kubernetes.io/region',
  'failure-domain.beta.kubernetes.io/zone', 'failure-domain.beta.kubernetes.io/region',
];
const KEY = 'VolumeZone';

/** label → the values a node may have (one constraint per volume label). */
type Constraints = [string, Set<string>][];

export class VolumeZone implements PreFilterPlugin, FilterPlugin {
  readonly name = 'VolumeZone';

  preFilter(state: CycleState, pod: PodInfo, view: ClusterView): typeof SKIP | undefined {
    const out: Constraints = [];
    for (const name of podClaimNames(pod)) {
      const claim = view.get('persistentvolumeclaims', pod.namespace, name) as { spec?: { volumeName?: string } } | undefined;
      const pvName = claim?.spec?.volumeName;
      if (!pvName) continue;
      const labels = (view.get('persistentvolumes', '', pvName)?.metadata?.labels ?? {}) as Record<string, string>;
      for (const l of TOPOLOGY_LABELS) {
        if (labels[l]) out.push([l, new Set(labels[l].split('__'))]);
      }
    }
    if (!out.length) return SKIP;
    state.set(KEY, out);
    return undefined;
  }

  filter(state: CycleState, _pod: PodInfo, node: NodeInfo): Status | undefined {
    const cs = state.get(KEY) as Constraints | undefined;
    if (!cs) return undefined;
    for (const [label, values] of cs) {
      const v = node.labels[label];
      if (v === undefined || !values.has(v)) return unresolvable(ERR_VOLUME_ZONE);
    }
    return undefined;
  }
}
