// Small builders to write structural schemas (types.ts) concisely.
//
// Two pieces of information do not fit the Schema type and are kept on the
// side, keyed by the schema object's identity:
//  - the OpenAPI definition name of a schema (`io.k8s.api.core.v1.Container`),
//    which openapi.ts turns into `$ref`s and component/definition entries;
//  - whether a list-map tolerates duplicate keys (env vars, container ports:
//    Kubernetes accepts duplicates there with a warning).

import type { ArraySchema, ObjectSchema, Schema, StringSchema } from './types.ts';

const NAMES = new WeakMap<object, string>();
const CANONICAL = new Map<string, Schema>();
const DUPLICATES_TOLERATED = new WeakSet<object>();

/** Gives `schema` an OpenAPI definition name; returns the same object. The first schema named so defines it. */
export function named<T extends Schema>(name: string, schema: T): T {
  NAMES.set(schema, name);
  if (!CANONICAL.has(name)) CANONICAL.set(name, schema);
  return schema;
}

/** The schema that defines a name (copies made by `describe` only change the description). */
export function canonicalSchema(name: string): Schema | undefined {
  return CANONICAL.get(name);
}

/** The OpenAPI definition name given by `named`, if any. */
export function schemaName(schema: Schema): string | undefined {
  return NAMES.get(schema);
}

/** Whether duplicate keys in this list-map are accepted (see `listMap`'s `tolerateDuplicates`). */
export function toleratesDuplicates(schema: ArraySchema): boolean {
  return DUPLICATES_TOLERATED.has(schema);
}

/** API package prefixes of definition names. */
export const CORE = (n: string) => `io.k8s.api.core.v1.${n}`;
export const META = (n: string) => `io.k8s.apimachinery.pkg.apis.meta.v1.${n}`;

type Described = { description?: string };

// ---- scalars ----------------------------------------------------------------

export function str(o: Omit<StringSchema, 'type'> = {}): StringSchema {
  return { type: 'string', ...o };
}

/** A string restricted to `values` (reported as FieldValueNotSupported). */
export function oneOf(...values: string[]): StringSchema {
  return { type: 'string', enum: values };
}

/** int32 unless `format: 'int64'`. */
export function int(o: { format?: 'int32' | 'int64'; minimum?: number; maximum?: number; default?: number } & Described = {}): Schema {
  return { type: 'integer', format: 'int32', ...o };
}

export function int64(o: { minimum?: number; maximum?: number } & Described = {}): Schema {
  return { type: 'integer', format: 'int64', ...o };
}

export function num(o: { minimum?: number; maximum?: number } & Described = {}): Schema {
  return { type: 'number', ...o };
}

export function bool(o: { default?: boolean } & Described = {}): Schema {
  return { type: 'boolean', ...o };
}

/** x-kubernetes-int-or-string (ports, maxSurge). */
export function intOrString(description?: string): Schema {
  return named(
    'io.k8s.apimachinery.pkg.util.intstr.IntOrString',
    description ? { type: 'int-or-string', description } : { type: 'int-or-string' },
  );
}

/** A resource quantity ("100m", "1Gi", 2). */
export function quantity(description?: string): Schema {
  return named('io.k8s.apimachinery.pkg.api.resource.Quantity', description ? { type: 'quantity', description } : { type: 'quantity' });
}

/** Free-form JSON (x-kubernetes-preserve-unknown-fields). */
export function any(description?: string): Schema {
  return description ? { type: 'any', description } : { type: 'any' };
}

/** RFC 3339 timestamp (metav1.Time). */
export function time(description?: string): StringSchema {
  return named(META('Time'), str({ format: 'date-time', ...(description ? { description } : {}) }));
}

/** RFC 3339 timestamp with microseconds (metav1.MicroTime). */
export function microTime(description?: string): StringSchema {
  return named(META('MicroTime'), str({ format: 'date-time', ...(description ? { description } : {}) }));
}

/** Base64-encoded bytes ([]byte). */
export function bytes(description?: string): StringSchema {
  return str({ format: 'byte', ...(description ? { description } : {}) });
}

// ---- composites ---------------------------------------------------------------

export interface ObjOptions extends Described {
  required?: string[];
  /** OpenAPI definition name. */
  name?: string;
  mapType?: 'atomic' | 'granular';
}

/** An object with known fields; unknown fields are rejected. */
export function obj(properties: Record<string, Schema>, o: ObjOptions = {}): ObjectSchema {
  const s: ObjectSchema = { type: 'object', properties };
  if (o.required?.length) s.required = o.required;
  if (o.description) s.description = o.description;
  if (o.mapType) s.mapType = o.mapType;
  return o.name ? named(o.name, s) : s;
}

/** A map from string keys to `values` (labels, data, resource lists). */
export function map(values: Schema, o: Described & { mapType?: 'atomic' | 'granular' } = {}): ObjectSchema {
  return { type: 'object', additionalProperties: values, ...o };
}

export interface ArrOptions extends Described {
  listType?: 'atomic' | 'set' | 'map';
  mergeKey?: string;
  listMapKeys?: string[];
  patchStrategy?: 'merge' | 'replace' | 'merge,retainKeys';
}

export function arr(items: Schema, o: ArrOptions = {}): ArraySchema {
  const s: ArraySchema = { type: 'array', items };
  if (o.listType) s.listType = o.listType;
  if (o.mergeKey) s.mergeKey = o.mergeKey;
  if (o.listMapKeys) s.listMapKeys = o.listMapKeys;
  if (o.patchStrategy) s.patchStrategy = o.patchStrategy;
  if (o.description) s.description = o.description;
  return s;
}

export interface ListMapOptions extends Described {
  /** x-kubernetes-patch-merge-key; defaults to the first key. */
  mergeKey?: string;
  /** Defaults to 'merge'; `null` for list-maps that strategic merge patch replaces. */
  patchStrategy?: 'merge' | 'merge,retainKeys' | null;
  /** Kubernetes accepts duplicate keys in this list (with a warning). */
  tolerateDuplicates?: boolean;
}

/** A list keyed by `keys` (x-kubernetes-list-type: map): containers by name, ports by containerPort+protocol. */
export function listMap(items: Schema, keys: string[], o: ListMapOptions = {}): ArraySchema {
  const s = arr(items, {
    listType: 'map',
    mergeKey: o.patchStrategy === null ? undefined : (o.mergeKey ?? keys[0]),
    listMapKeys: keys,
    patchStrategy: o.patchStrategy === null ? undefined : (o.patchStrategy ?? 'merge'),
    description: o.description,
  });
  if (o.tolerateDuplicates) DUPLICATES_TOLERATED.add(s);
  return s;
}

/** A list of unique scalars (x-kubernetes-list-type: set). `merge` adds patch-strategy merge (finalizers). */
export function set(items: Schema, o: Described & { merge?: boolean } = {}): ArraySchema {
  return arr(items, { listType: 'set', patchStrategy: o.merge ? 'merge' : undefined, description: o.description });
}

/** A list replaced whole by merges (x-kubernetes-list-type: atomic). */
export function atomic(items: Schema, description?: string): ArraySchema {
  return arr(items, { listType: 'atomic', description });
}

/** A list of strings replaced whole by merges (command, args, accessModes). */
export function strings(description?: string): ArraySchema {
  return atomic(str(), description);
}

/** A map of string → string (labels, nodeSelector, data). */
export function strMap(description?: string): ObjectSchema {
  return map(str(), description ? { description } : {});
}

/** A copy of `s` with a different description (keeps the definition name). */
export function describe<T extends Schema>(s: T, description: string): T {
  const copy = { ...s, description } as T;
  const n = schemaName(s);
  return n ? named(n, copy) : copy;
}
