// VolumeBinding, lite. A pod's claims (persistentVolumeClaim volumes and the
// claims of its ephemeral volumes) must exist; a bound claim's volume with a
// node affinity restricts the pod to the nodes it matches; an unbound claim
// of a WaitForFirstConsumer class waits for the pod: a node fits when the
// class can provision there (its allowedTopologies) or, for a class without
// a provisioner, when an available volume of the class, big enough, is
// reachable from it. Before the binding, such claims get the
// volume.kubernetes.io/selected-node annotation for the PV binder and the
// provisioner, and the binding waits (the pod stays assumed on the node)
// until the PV binder or the provisioner has bound them, as kube-scheduler's
// PreBind does, so the node agent never sees a pod whose volume is missing;
// past the bind timeout the binding fails and the pod is retried. Unbound
// claims of Immediate classes keep the pod pending.
import { nodeSelectorMatches, type NodeSelector } from '../../../api/node-selector.ts';
import type { ApiClient } from '../../client/api.ts';
import { resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import { ANN_SELECTED_NODE } from '../../controllers/volume/annotations.ts';
import type { KubeObject } from '../../informer/types.ts';
import { type ClusterView, type CycleState, type FilterPlugin, type PreBindPlugin, type PreFilterPlugin, SKIP, type Status, unresolvable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';
import { quantity } from '../resources.ts';

export const ERR_VOLUME_NODE_CONFLICT = 'node(s) had volume node affinity conflict';
export const ERR_VOLUME_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind";
export const ERR_UNBOUND_IMMEDIATE = 'pod has unbound immediate PersistentVolumeClaims';
const NO_PROVISIONER = 'kubernetes.io/no-provisioner';
const PVCS = resolveKind('persistentvolumeclaims')!;

interface Delayed {
  claim: KubeObject;
  storageClass: any;
  /** Volumes a class without provisioner could bind the claim to. */
  candidates?: any[];
}

interface State {
  boundAffinities: NodeSelector[];
  delayed: Delayed[];
  view: ClusterView;
}

export interface VolumeBindingOptions {
  /** How long PreBind waits for delayed claims to be bound (kube-scheduler's bindTimeoutSeconds: 600 s). */
  bindTimeoutMs?: number;
  /** How often PreBind looks at the claims in the cache. */
  pollMs?: number;
}

const KEY = 'VolumeBinding';

/** The claim names a pod uses (persistentVolumeClaim volumes, and <pod>-<volume> for ephemeral ones). */
export function podClaimNames(pod: PodInfo): string[] {
  const vols = ((pod.pod.spec as any)?.volumes ?? []) as any[];
  const out: string[] = [];
  for (const v of vols) {
    if (v.persistentVolumeClaim?.claimName) out.push(v.persistentVolumeClaim.claimName);
    else if (v.ephemeral) out.push(`${pod.pod.metadata.name}-${v.name}`);
  }
  return out;
}

function storageRequest(claim: any): number {
  return quantity('storage', claim.spec?.resources?.requests?.storage);
}

export class VolumeBinding implements PreFilterPlugin, FilterPlugin, PreBindPlugin {
  readonly name = 'VolumeBinding';
  private readonly bindTimeoutMs: number;
  private readonly pollMs: number;
  constructor(private readonly client?: ApiClient, o: VolumeBindingOptions = {}) {
    this.bindTimeoutMs = o.bindTimeoutMs ?? 600_000;
    this.pollMs = o.pollMs ?? 100;
  }

  preFilter(state: CycleState, pod: PodInfo, view: ClusterView): Status | typeof SKIP | undefined {
    const names = podClaimNames(pod);
    if (!names.length) return SKIP;
    const s: State = { boundAffinities: [], delayed: [], view };
    let immediate = false;
    for (const name of names) {
      const claim = view.get('persistentvolumeclaims', pod.namespace, name) as any;
      if (!claim) return unresolvable(`persistentvolumeclaim "${name}" not found`);
      if (claim.metadata.deletionTimestamp) return unresolvable(`persistentvolumeclaim "${name}" is being deleted`);
      const volumeName = claim.spec?.volumeName;
      if (volumeName) {
        const pv = view.get('persistentvolumes', '', volumeName) as any;
        if (!pv) return unresolvable(`persistentvolume "${volumeName}" not found`);
        const req = pv.spec?.nodeAffinity?.required;
        if (req) s.boundAffinities.push(req);
        continue;
      }
      const className = claim.metadata.annotations?.['volume.beta.kubernetes.io/storage-class'] ?? claim.spec?.storageClassName;
      const sc = className ? (view.get('storageclasses', '', className) as any) : undefined;
      if (sc?.volumeBindingMode !== 'WaitForFirstConsumer') {
        immediate = true;
        continue;
      }
      const d: Delayed = { claim, storageClass: sc };
      if (sc.provisioner === NO_PROVISIONER) {
        const want = storageRequest(claim);
        d.candidates = view.list('persistentvolumes').filter((pv: any) => !pv.spec?.claimRef && pv.status?.phase !== 'Released' && pv.status?.phase !== 'Failed'
          && (pv.spec?.storageClassName ?? '') === className && quantity('storage', pv.spec?.capacity?.storage) >= want);
      }
      s.delayed.push(d);
    }
    if (immediate) return unresolvable(ERR_UNBOUND_IMMEDIATE);
    state.set(KEY, s);
    return undefined;
  }

  filter(state: CycleState, _pod: PodInfo, node: NodeInfo): Status | undefined {
    const s = state.get(KEY) as State | undefined;
    if (!s) return undefined;
    const n = { name: node.name, labels: node.labels };
    for (const a of s.boundAffinities) if (!nodeSelectorMatches(a, n)) return unresolvable(ERR_VOLUME_NODE_CONFLICT);
    for (const d of s.delayed) {
      if (d.candidates) {
        if (!d.candidates.some((pv) => !pv.spec?.nodeAffinity?.required || nodeSelectorMatches(pv.spec.nodeAffinity.required, n))) return unresolvable(ERR_VOLUME_BIND_CONFLICT);
        continue;
      }
      const topologies = d.storageClass.allowedTopologies as { matchLabelExpressions?: { key: string; values: string[] }[] }[] | undefined;
      if (topologies?.length) {
        const sel: NodeSelector = { nodeSelectorTerms: topologies.map((t) => ({ matchExpressions: (t.matchLabelExpressions ?? []).map((e) => ({ key: e.key, operator: 'In', values: e.values })) })) };
        if (!nodeSelectorMatches(sel, n)) return unresolvable(ERR_VOLUME_NODE_CONFLICT);
      }
    }
    return undefined;
  }

  async preBind(state: CycleState, _pod: PodInfo, node: string): Promise<void> {
    const s = state.get(KEY) as State | undefined;
    if (!s?.delayed.length || !this.client) return;
    for (const d of s.delayed) {
      const m = d.claim.metadata!;
      if (m.annotations?.[ANN_SELECTED_NODE] === node) continue;
      await this.client.patch(resourcePath(PVCS, m.namespace, m.name), { metadata: { annotations: { [ANN_SELECTED_NODE]: node } } }, 'application/merge-patch+json');
    }
    // The claims' bindings arrive through the scheduler's own claim informer.
    const deadline = Date.now() + this.bindTimeoutMs;
    for (;;) {
      const unbound = s.delayed.filter((d) => {
        const cur = s.view.get('persistentvolumeclaims', d.claim.metadata!.namespace ?? '', d.claim.metadata!.name ?? '') as any;
        if (!cur) throw new Error(`persistentvolumeclaim "${d.claim.metadata!.name}" was deleted while the pod waited for it`);
        return !cur.spec?.volumeName;
      });
      if (!unbound.length) return;
      if (Date.now() >= deadline) {
        throw new Error(`binding volumes: timed out waiting for the condition (claims not bound: ${unbound.map((d) => d.claim.metadata!.name).join(', ')})`);
      }
      await new Promise((r) => setTimeout(r, this.pollMs));
    }
  }
}
