// storage.k8s.io/v1: StorageClass, and the annotations the default class and
// the volume binder share between the server (admission) and the controllers.

import { atomic, bool, obj, oneOf, str, strMap, strings } from '../schema/dsl.ts';
import type { Cause, KindDef } from '../schema/types.ts';
import { child, forbidden, invalidEach, isQualifiedName, notSupported, required, tooLong } from '../schema/validate.ts';
import { type Obj, ageColumn, column, deepEqual, defineKind, dflt, immutableFields, rec } from './common.ts';

/** Marks a StorageClass as the one a claim without storageClassName gets. */
export const DEFAULT_CLASS_ANNOTATION = 'storageclass.kubernetes.io/is-default-class';
/** The pre-GA spelling, still honoured by Kubernetes' admission. */
export const BETA_DEFAULT_CLASS_ANNOTATION = 'storageclass.beta.kubernetes.io/is-default-class';

/** Whether a StorageClass carries the default-class annotation (value "true"). */
export function isDefaultStorageClass(sc: Obj): boolean {
  const a = rec(sc.metadata?.annotations) ?? {};
  return a[DEFAULT_CLASS_ANNOTATION] === 'true' || a[BETA_DEFAULT_CLASS_ANNOTATION] === 'true';
}

/**
 * The class a claim without storageClassName gets (GetDefaultClass): among the
 * classes marked default, the newest; ties go to the name that sorts first.
 */
export function pickDefaultStorageClass(classes: readonly Obj[]): Obj | undefined {
  const defaults = classes.filter(isDefaultStorageClass);
  defaults.sort((a, b) => {
    const ta = Date.parse(a.metadata?.creationTimestamp ?? '') || 0;
    const tb = Date.parse(b.metadata?.creationTimestamp ?? '') || 0;
    if (ta !== tb) return tb - ta;
    return String(a.metadata?.name) < String(b.metadata?.name) ? -1 : 1;
  });
  return defaults[0];
}

const TopologySelectorTerm = obj({
  matchLabelExpressions: atomic(obj({ key: str(), values: strings() }, { name: 'io.k8s.api.core.v1.TopologySelectorLabelRequirement', required: ['key', 'values'] })),
}, { name: 'io.k8s.api.core.v1.TopologySelectorTerm', mapType: 'atomic' });

const MAX_PROVISIONER_LENGTH = 63;
const MAX_PARAMETERS = 512;
const MAX_PARAMETERS_BYTES = 256 * 1024;

/** validateProvisioner: at most 63 characters, a qualified name (the schema reports it missing). */
function validateProvisioner(p: unknown): Cause[] {
  if (!p) return [];
  const s = String(p);
  const out: Cause[] = [];
  if (s.length > MAX_PROVISIONER_LENGTH) out.push(tooLong('provisioner', MAX_PROVISIONER_LENGTH));
  out.push(...invalidEach('provisioner', s, isQualifiedName(s.toLowerCase())));
  return out;
}

function validateParameters(params: unknown): Cause[] {
  const p = rec(params) ?? {};
  const keys = Object.keys(p);
  const out: Cause[] = [];
  if (keys.length > MAX_PARAMETERS) out.push({ reason: 'FieldValueTooMany', field: 'parameters', message: `Too many: ${keys.length}: must have at most ${MAX_PARAMETERS} items` });
  let size = 0;
  for (const k of keys) {
    if (!k) out.push(invalidEach('parameters', k, ['field can not be empty.'])[0]);
    size += k.length + String(p[k] ?? '').length;
  }
  if (size > MAX_PARAMETERS_BYTES) out.push(tooLong('parameters', MAX_PARAMETERS_BYTES));
  return out;
}

export const storageClass = defineKind({
  group: 'storage.k8s.io', version: 'v1', kind: 'StorageClass', plural: 'storageclasses', shortNames: ['sc'], namespaced: false,
  description: 'StorageClass describes the parameters for a class of storage for which PersistentVolumes can be dynamically provisioned.',
  required: ['provisioner'],
  fields: {
    provisioner: str({ description: 'provisioner indicates the type of the provisioner.' }),
    parameters: strMap('parameters holds the parameters for the provisioner that should create volumes of this storage class.'),
    reclaimPolicy: oneOf('Delete', 'Recycle', 'Retain'),
    mountOptions: strings('mountOptions controls the mountOptions for dynamically provisioned PersistentVolumes of this storage class.'),
    allowVolumeExpansion: bool(),
    volumeBindingMode: oneOf('Immediate', 'WaitForFirstConsumer'),
    allowedTopologies: atomic(TopologySelectorTerm, 'allowedTopologies restrict the node topologies where volumes can be dynamically provisioned.'),
  },
  default(sc) {
    dflt(sc, 'reclaimPolicy', 'Delete');
    dflt(sc, 'volumeBindingMode', 'Immediate');
  },
  validate(sc, old) {
    const out = [...validateProvisioner(sc.provisioner), ...validateParameters(sc.parameters)];
    if (sc.reclaimPolicy !== undefined && !['Delete', 'Retain'].includes(sc.reclaimPolicy)) {
      out.push(notSupported('reclaimPolicy', sc.reclaimPolicy, ['Delete', 'Retain']));
    }
    if (sc.volumeBindingMode === undefined || sc.volumeBindingMode === null) out.push(required('volumeBindingMode'));
    else if (!['Immediate', 'WaitForFirstConsumer'].includes(sc.volumeBindingMode)) {
      out.push(notSupported('volumeBindingMode', sc.volumeBindingMode, ['Immediate', 'WaitForFirstConsumer']));
    }
    sc.allowedTopologies?.forEach?.((t: Obj, i: number) => {
      if (!Array.isArray(t?.matchLabelExpressions) || !t.matchLabelExpressions.length) {
        out.push(required(child(`allowedTopologies[${i}]`, 'matchLabelExpressions'), 'must have at least one label expression'));
      }
    });
    if (old) {
      // ValidateStorageClassUpdate: what a class promises to its volumes never changes.
      if (!deepEqual(sc.parameters, old.parameters)) out.push(forbidden('parameters', 'updates to parameters are forbidden.'));
      if (sc.provisioner !== old.provisioner) out.push(forbidden('provisioner', 'updates to provisioner are forbidden.'));
      if (sc.reclaimPolicy !== old.reclaimPolicy) out.push(forbidden('reclaimPolicy', 'updates to reclaimPolicy are forbidden.'));
      out.push(...immutableFields(sc, old, ['volumeBindingMode']));
    }
    return out;
  },
  columns: [
    column('Provisioner', (sc) => sc.provisioner ?? '', { description: 'Indicates the type of the provisioner.' }),
    column('ReclaimPolicy', (sc) => sc.reclaimPolicy ?? 'Delete', { description: 'Dynamically provisioned PersistentVolumes of this storage class are created with this reclaimPolicy. Defaults to Delete.' }),
    column('VolumeBindingMode', (sc) => sc.volumeBindingMode ?? 'Immediate', { description: 'VolumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound. When unset, VolumeBindingImmediate is used.' }),
    column('AllowVolumeExpansion', (sc) => sc.allowVolumeExpansion === true, { type: 'boolean', description: 'AllowVolumeExpansion shows whether the storage class allow volume expand.' }),
    ageColumn,
  ],
});

export const STORAGE_KINDS: KindDef[] = [storageClass];
