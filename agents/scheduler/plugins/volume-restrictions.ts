// VolumeRestrictions, for the volume kinds Flotilla has: a claim with the
// ReadWriteOncePod access mode may be used by one pod in the whole cluster,
// so a second pod using it fits no node while the first one (placed, or
// assumed in this burst) is not finished. kube-scheduler's disk conflicts
// (GCE PD, AWS EBS, RBD, iSCSI) concern volume types Flotilla does not run.
import { podClaimNames } from './volume-binding.ts';
import { type ClusterView, type PreFilterPlugin, SKIP, type Status, unresolvable } from '../framework.ts';
import type { PodInfo } from '../pod-info.ts';

export const ERR_RWOP_CONFLICT = 'node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode';

export class VolumeRestrictions implements PreFilterPlugin {
  readonly name = 'VolumeRestrictions';

  preFilter(_state: unknown, pod: PodInfo, view: ClusterView): Status | typeof SKIP | undefined {
    const ns = pod.namespace;
    const rwop = new Set(podClaimNames(pod).filter((name) => {
      const claim = view.get('persistentvolumeclaims', ns, name) as { spec?: { accessModes?: string[] } } | undefined;
      return claim?.spec?.accessModes?.includes('ReadWriteOncePod');
    }));
    if (!rwop.size) return SKIP;
    // Every placed pod: the claim may be used by a pod of any labels. Rare enough
    // (only pods with such claims get here) that a scan beats an index.
    for (const [other] of view.podsFor([])) {
      if (other.key === pod.key || other.namespace !== ns) continue;
      const phase = (other.pod.status as { phase?: string } | undefined)?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') continue;
      if (podClaimNames(other).some((c) => rwop.has(c))) return unresolvable(ERR_RWOP_CONFLICT);
    }
    return undefined;
  }
}
