// Which PersistentVolume a claim gets (FindMatchingVolume): a volume
// pre-bound to the claim first, else the smallest Available volume of the
// claim's class whose capacity, access modes, volume mode and labels (the
// claim's selector) fit, and whose node affinity admits the selected node
// when binding waits for the first consumer.
import { parseQuantity } from '../../../api/schema/validate.ts';
import { labelSelectorMatches } from '../../../api/selectors.ts';
import { type NodeSelector, nodeSelectorMatches } from '../../../api/node-selector.ts';
import type { LabelSelector } from '../../informer/types.ts';
import { ANN_BETA_STORAGE_CLASS } from './annotations.ts';

export interface ObjectRef {
  kind?: string;
  apiVersion?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  resourceVersion?: string;
}

export interface PersistentVolume {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string; deletionTimestamp?: string; [k: string]: unknown };
  spec: {
    capacity?: Record<string, string>;
    accessModes?: string[];
    claimRef?: ObjectRef;
    persistentVolumeReclaimPolicy?: string;
    storageClassName?: string;
    volumeMode?: string;
    nodeAffinity?: { required?: NodeSelector };
    hostPath?: { path: string; type?: string };
    [k: string]: unknown;
  };
  status?: { phase?: string; message?: string; reason?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface PersistentVolumeClaim {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string; deletionTimestamp?: string; [k: string]: unknown };
  spec: {
    accessModes?: string[];
    selector?: LabelSelector;
    resources?: { requests?: Record<string, string> };
    volumeName?: string;
    storageClassName?: string;
    volumeMode?: string;
    [k: string]: unknown;
  };
  status?: { phase?: string; capacity?: Record<string, string>; accessModes?: string[]; [k: string]: unknown };
  [k: string]: unknown;
}

/** The claim's class: the beta annotation if present, else spec.storageClassName, else "" (GetPersistentVolumeClaimClass). */
export function claimClass(c: PersistentVolumeClaim): string {
  const ann = c.metadata.annotations?.[ANN_BETA_STORAGE_CLASS];
  if (ann !== undefined) return ann;
  return c.spec.storageClassName ?? '';
}

/** The volume's class, likewise (GetPersistentVolumeClass). */
export function volumeClass(v: PersistentVolume): string {
  const ann = v.metadata.annotations?.[ANN_BETA_STORAGE_CLASS];
  if (ann !== undefined) return ann;
  return v.spec.storageClassName ?? '';
}

export const capacityOf = (v: PersistentVolume): number => quantity(v.spec.capacity?.storage);
export const requestOf = (c: PersistentVolumeClaim): number => quantity(c.spec.resources?.requests?.storage);

function quantity(q: string | number | undefined): number {
  if (q === undefined) return 0;
  try {
    return parseQuantity(q);
  } catch {
    return 0;
  }
}

/** Whether the volume offers every access mode the claim asks for. */
export function accessModesFit(v: PersistentVolume, c: PersistentVolumeClaim): boolean {
  const offered = new Set(v.spec.accessModes ?? []);
  return (c.spec.accessModes ?? []).every((m) => offered.has(m));
}

/** Whether the volume is pre-bound to this claim (claimRef names it, with its uid or no uid). */
export function isVolumeBoundToClaim(v: PersistentVolume, c: PersistentVolumeClaim): boolean {
  const r = v.spec.claimRef;
  if (!r) return false;
  if (r.namespace !== c.metadata.namespace || r.name !== c.metadata.name) return false;
  return !r.uid || r.uid === c.metadata.uid;
}

export interface MatchOptions {
  /** The node the first consumer was scheduled to (WaitForFirstConsumer); the volume's node affinity must admit it. */
  node?: { name: string; labels?: Record<string, string> };
}

/** Why a volume does not fit a claim (undefined: it fits). */
export function mismatch(v: PersistentVolume, c: PersistentVolumeClaim, o: MatchOptions = {}): string | undefined {
  if ((v.spec.volumeMode ?? 'Filesystem') !== (c.spec.volumeMode ?? 'Filesystem')) return 'volume mode';
  if (capacityOf(v) < requestOf(c)) return 'capacity';
  if (volumeClass(v) !== claimClass(c)) return 'storage class';
  if (!accessModesFit(v, c)) return 'access modes';
  if (c.spec.selector && !labelSelectorMatches(c.spec.selector, v.metadata.labels)) return 'selector';
  if (o.node && v.spec.nodeAffinity?.required && !nodeSelectorMatches(v.spec.nodeAffinity.required, o.node)) return 'node affinity';
  return undefined;
}

/**
 * The volume the claim should bind to, or undefined. A volume pre-bound to
 * the claim wins if it is big enough; otherwise the smallest fitting Available,
 * unclaimed, not deleted volume (ties: the name that sorts first, so every
 * controller replica picks the same one).
 */
export function findBestMatch(volumes: readonly PersistentVolume[], c: PersistentVolumeClaim, o: MatchOptions = {}): PersistentVolume | undefined {
  let best: PersistentVolume | undefined;
  for (const v of volumes) {
    if (v.metadata.deletionTimestamp) continue;
    if (isVolumeBoundToClaim(v, c)) {
      // A pre-bound pair needs only the size and mode to fit (class, modes and selector are the user's call),
      // and a node that the volume admits: otherwise the claim cannot use this node at all.
      if ((v.spec.volumeMode ?? 'Filesystem') !== (c.spec.volumeMode ?? 'Filesystem') || capacityOf(v) < requestOf(c)) continue;
      if (o.node && v.spec.nodeAffinity?.required && !nodeSelectorMatches(v.spec.nodeAffinity.required, o.node)) return undefined;
      return v;
    }
    if (v.spec.claimRef) continue;
    // Volumes on their way to Available are left for the next pass: binding them now mostly buys conflicts.
    if (v.status?.phase !== 'Available') continue;
    if (mismatch(v, c, o)) continue;
    if (!best || capacityOf(v) < capacityOf(best) || (capacityOf(v) === capacityOf(best) && v.metadata.name < best.metadata.name)) best = v;
  }
  return best;
}
