// The declarative description of an API kind: one definition per kind feeds
// validation, defaulting, OpenAPI documents, strategic merge patch,
// server-side apply, discovery and kubectl's table output.

/** A structural schema node (a subset of OpenAPI v3 with Kubernetes' extensions). */
export type Schema =
  | StringSchema
  | { type: 'integer'; format?: 'int32' | 'int64'; minimum?: number; maximum?: number; description?: string; default?: number }
  | { type: 'number'; minimum?: number; maximum?: number; description?: string }
  | { type: 'boolean'; description?: string; default?: boolean }
  | ObjectSchema
  | ArraySchema
  /** x-kubernetes-int-or-string (ports, maxSurge: 1 or "25%"). */
  | { type: 'int-or-string'; description?: string }
  /** A resource quantity ("100m", "1Gi", 2). */
  | { type: 'quantity'; description?: string }
  /** Free-form JSON (x-kubernetes-preserve-unknown-fields). */
  | { type: 'any'; description?: string };

export interface StringSchema {
  type: 'string';
  format?: 'date-time' | 'byte' | 'dns1123-label' | 'dns1123-subdomain';
  enum?: string[];
  pattern?: string;
  maxLength?: number;
  description?: string;
  default?: string;
}

export interface ObjectSchema {
  type: 'object';
  /** Known fields. An object with `properties` rejects unknown fields (strict validation). */
  properties?: Record<string, Schema>;
  required?: string[];
  /** A map with values of this schema (labels: string → string). */
  additionalProperties?: Schema;
  description?: string;
  /** x-kubernetes-map-type: atomic objects are replaced whole by merges. */
  mapType?: 'atomic' | 'granular';
}

export interface ArraySchema {
  type: 'array';
  items: Schema;
  /**
   * x-kubernetes-list-type. 'map' lists are merged by `mergeKey`/`listMapKeys`
   * in strategic merge patch and server-side apply (containers by name, ports by
   * containerPort); 'set' lists of scalars are unioned; 'atomic' lists are replaced.
   */
  listType?: 'atomic' | 'set' | 'map';
  /** x-kubernetes-patch-merge-key (strategic merge patch). */
  mergeKey?: string;
  /** x-kubernetes-list-map-keys (server-side apply). Defaults to [mergeKey]. */
  listMapKeys?: string[];
  /** x-kubernetes-patch-strategy. */
  patchStrategy?: 'merge' | 'replace' | 'merge,retainKeys';
  description?: string;
}

/** One problem found in a request body, as Kubernetes reports it in Status.details.causes. */
export interface Cause {
  /** FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueDuplicate, FieldValueTypeInvalid, FieldValueForbidden, FieldValueTooLong, FieldValueUnknown (unknown field) */
  reason: string;
  message: string;
  /** JSON path like "spec.containers[0].image" or "metadata.name". */
  field: string;
}

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [k: string]: unknown;
};

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: ManagedFieldsEntry[];
  [k: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Record<string, unknown>;
  subresource?: string;
}

/** A column of `kubectl get` output (Table), like Kubernetes' printers. */
export interface Column {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  format?: string;
  description: string;
  /** 0: always shown; 1: only with -o wide. */
  priority: 0 | 1;
  /** The cell for one object; `now` (ms) makes ages deterministic in tests. */
  cell(obj: KubeObject, now: number): string | number | boolean | null;
}

export interface KindDef {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  namespaced: boolean;
  categories: string[];
  /** Subresources served: status, scale, binding (pods), log (pods), finalize? */
  subresources: ('status' | 'scale' | 'binding' | 'log' | 'finalize' | 'eviction' | 'token')[];
  /** The object's schema, including apiVersion, kind and metadata. */
  schema: ObjectSchema;
  /** Kubernetes defaulting: fills unset fields in place (on create and update). */
  default(obj: KubeObject): void;
  /** Semantic validation beyond the schema (names, ranges, cross-field rules); `old` on update. */
  validate(obj: KubeObject, old?: KubeObject): Cause[];
  /** Table columns (kubectl get), after NAME (and NAMESPACE with -A), which the server adds. */
  columns: Column[];
  /** scale subresource: where replicas and the selector live. */
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
  /** Whether the kind has a status stanza that the main resource ignores on update (status subresource). */
  hasStatus: boolean;
}
