// Schemas shared by every kind: ObjectMeta, ListMeta, LabelSelector, object
// references and conditions, plus the builder of a kind's top-level schema.

import {
  CORE, META, any, arr, bool, describe, int, int64, listMap, named, obj, set, str, strMap, strings, time,
} from './dsl.ts';
import type { ObjectSchema, Schema } from './types.ts';

export const OwnerReference = obj({
  apiVersion: str({ description: 'API version of the referent.' }),
  kind: str({ description: 'Kind of the referent.' }),
  name: str({ description: 'Name of the referent.' }),
  uid: str({ description: 'UID of the referent.' }),
  controller: bool({ description: 'If true, this reference points to the managing controller.' }),
  blockOwnerDeletion: bool(),
}, { name: META('OwnerReference'), mapType: 'atomic',
  description: 'OwnerReference contains enough information to let you identify an owning object.' });

export const ManagedFieldsEntry = obj({
  manager: str(),
  operation: str(),
  apiVersion: str(),
  time: time(),
  fieldsType: str(),
  fieldsV1: named(META('FieldsV1'), any('FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format.')),
  subresource: str(),
}, { name: META('ManagedFieldsEntry'), description: 'ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of the resource that the fieldset applies to.' });

export const ObjectMeta = obj({
  name: str({ description: 'Name must be unique within a namespace. Cannot be updated.' }),
  generateName: str({ description: 'Optional prefix used by the server to generate a unique name if name is not provided.' }),
  namespace: str({ description: 'Namespace defines the space within which each name must be unique.' }),
  selfLink: str({ description: 'Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.' }),
  uid: str({ description: 'UID is the unique in time and space value for this object. Populated by the system. Read-only.' }),
  resourceVersion: str({ description: 'An opaque value that represents the internal version of this object. Populated by the system. Read-only.' }),
  generation: int64({ description: 'A sequence number representing a specific generation of the desired state. Populated by the system. Read-only.' }),
  creationTimestamp: time('CreationTimestamp is a timestamp representing the server time when this object was created.'),
  deletionTimestamp: time('DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted.'),
  deletionGracePeriodSeconds: int64({ description: 'Number of seconds allowed for this object to gracefully terminate before it will be removed from the system.' }),
  labels: strMap('Map of string keys and values that can be used to organize and categorize (scope and select) objects.'),
  annotations: strMap('Annotations is an unstructured key value map stored with a resource that may be set by external tools.'),
  ownerReferences: listMap(OwnerReference, ['uid'], { description: 'List of objects depended by this object.' }),
  finalizers: set(str(), { merge: true, description: 'Must be empty before the object is deleted from the registry.' }),
  managedFields: arr(ManagedFieldsEntry, { description: 'ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.' }),
}, { name: META('ObjectMeta'), description: 'ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.' });

export const ListMeta = obj({
  resourceVersion: str(),
  continue: str(),
  remainingItemCount: int64(),
  selfLink: str(),
}, { name: META('ListMeta'), description: 'ListMeta describes metadata that synthetic resources must have, including lists and various status objects.' });

export const LabelSelectorRequirement = obj({
  key: str({ description: 'key is the label key that the selector applies to.' }),
  operator: str({ description: "operator represents a key's relationship to a set of values. Valid operators are In, NotIn, Exists and DoesNotExist." }),
  values: strings('values is an array of string values.'),
}, { name: META('LabelSelectorRequirement'), required: ['key', 'operator'] });

export const LabelSelector = obj({
  matchLabels: strMap('matchLabels is a map of {key,value} pairs.'),
  matchExpressions: atomicOf(LabelSelectorRequirement, 'matchExpressions is a list of label selector requirements. The requirements are ANDed.'),
}, { name: META('LabelSelector'), mapType: 'atomic',
  description: 'A label selector is a label query over a set of resources. An empty label selector matches all objects. A null label selector matches no objects.' });

function atomicOf(item: Schema, description: string) {
  return arr(item, { listType: 'atomic', description });
}

/** metav1.Condition (Service, PVC... status conditions). */
export const Condition = obj({
  type: str(),
  status: str(),
  observedGeneration: int64(),
  lastTransitionTime: time(),
  reason: str(),
  message: str(),
}, { name: META('Condition'), required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'] });

/** A conditions list keyed by type (x-kubernetes-list-type: map, patch merge key type). */
export function conditions(item: Schema = Condition): Schema {
  return listMap(item, ['type']);
}

/**
 * A kind-specific condition (DeploymentCondition, PodCondition...): type and
 * status plus the usual reason/message/time fields and `extra`.
 */
export function conditionOf(name: string, times: string[], extra: Record<string, Schema> = {}): ObjectSchema {
  const props: Record<string, Schema> = { type: str(), status: str() };
  for (const t of times) props[t] = time();
  return obj({ ...props, reason: str(), message: str(), ...extra }, { name, required: ['type', 'status'] });
}

export const ObjectReference = obj({
  apiVersion: str(),
  kind: str(),
  name: str(),
  namespace: str(),
  uid: str(),
  resourceVersion: str(),
  fieldPath: str(),
}, { name: CORE('ObjectReference'), mapType: 'atomic', description: 'ObjectReference contains enough information to let you inspect or modify the referred object.' });

export const LocalObjectReference = obj({ name: str() }, { name: CORE('LocalObjectReference'), mapType: 'atomic' });

export const TypedLocalObjectReference = obj({
  apiGroup: str(), kind: str(), name: str(),
}, { name: CORE('TypedLocalObjectReference'), required: ['kind', 'name'], mapType: 'atomic' });

/** The OpenAPI package segment of a group: '' → core, apps → apps, rbac.authorization.k8s.io → rbac. */
export function apiPackage(group: string): string {
  return group === '' ? 'core' : group.split('.')[0];
}

/** The definition name of a kind: io.k8s.api.apps.v1.Deployment. */
export function definitionName(group: string, version: string, kind: string): string {
  return `io.k8s.api.${apiPackage(group)}.${version}.${kind}`;
}

/**
 * The top-level schema of a kind: apiVersion, kind and metadata, plus
 * `fields` (usually spec and status).
 */
export function kindSchema(
  gvk: { group: string; version: string; kind: string },
  fields: Record<string, Schema>,
  o: { required?: string[]; description?: string } = {},
): ObjectSchema {
  const about: Record<string, string> = {
    spec: `Specification of the desired behavior of the ${gvk.kind}.`,
    status: `Most recently observed status of the ${gvk.kind}. Populated by the system. Read-only.`,
  };
  const described = Object.fromEntries(Object.entries(fields).map(([k, s]) =>
    [k, about[k] && s.type === 'object' ? describe(s, about[k]) : s]));
  return obj({
    apiVersion: str({ description: 'APIVersion defines the versioned schema of this representation of an object.' }),
    kind: str({ description: 'Kind is a string value representing the REST resource this object represents.' }),
    metadata: describe(ObjectMeta, "Standard object's metadata."),
    ...described,
  }, { ...o, name: definitionName(gvk.group, gvk.version, gvk.kind) });
}

/** The Scale subresource object (autoscaling/v1 Scale). */
export const Scale = kindSchema({ group: 'autoscaling', version: 'v1', kind: 'Scale' }, {
  spec: obj({ replicas: int({ description: 'replicas is the desired number of instances for the scaled object.' }) },
    { name: 'io.k8s.api.autoscaling.v1.ScaleSpec' }),
  status: obj({
    replicas: int({ description: 'replicas is the actual number of observed instances of the scaled object.' }),
    selector: str({ description: 'selector is the label query over pods that should match the replicas count, in string form.' }),
  }, { name: 'io.k8s.api.autoscaling.v1.ScaleStatus', required: ['replicas'] }),
}, { description: 'Scale represents a scaling request for a resource.' });
