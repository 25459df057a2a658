// The DefaultStorageClass admission plugin: a claim created without
// spec.storageClassName (absent, not "") gets the cluster's default class.
import { kindByResource } from '../../api/kinds/index.ts';
import { pickDefaultStorageClass } from '../../api/kinds/storage.ts';
import type { KubeObject } from '../../api/schema/types.ts';
import { resourceKey } from '../command.ts';
import type { Registry } from '../registry.ts';

/** The annotation that named a claim's class before spec.storageClassName existed; its presence means "a class was chosen". */
const BETA_CLASS_ANNOTATION = 'volume.beta.kubernetes.io/storage-class';

const STORAGE_CLASSES = kindByResource('storage.k8s.io', 'v1', 'storageclasses')!;

/**
 * Sets spec.storageClassName of a new PersistentVolumeClaim to the default
 * class, read from this member's applied state (as Kubernetes reads its
 * informer cache). An explicit "" means "no class" and is kept.
 */
export function admitDefaultStorageClass(reg: Registry, pvc: KubeObject): void {
  const spec = (pvc.spec ??= {}) as Record<string, unknown>;
  if (spec.storageClassName !== undefined && spec.storageClassName !== null) return;
  if (pvc.metadata?.annotations?.[BETA_CLASS_ANNOTATION] !== undefined) return;
  const classes = reg.store.list(resourceKey(STORAGE_CLASSES.group, STORAGE_CLASSES.plural), undefined)
    .map(({ obj }) => JSON.parse(obj.json) as KubeObject);
  const def = pickDefaultStorageClass(classes);
  if (def) spec.storageClassName = def.metadata!.name;
}
