// Shared machinery of the kind definitions: the `defineKind` builder, access
// to untyped JSON, metadata and label-selector validation, immutability checks,
// and table-column helpers (kubectl's printers).

import { kindSchema } from '../schema/meta.ts';
import type { Cause, Column, KindDef, ObjectSchema, Schema } from '../schema/types.ts';
import {
  child, forbidden, immutable, index, invalid, invalidEach, isDNS1123Label, isDNS1123Subdomain,
  isQualifiedName, isValidLabelValue, maskTrailingDash, notSupported, parseQuantity, required,
} from '../schema/validate.ts';

// ---- untyped JSON access -------------------------------------------------------

/** A decoded JSON object; fields are read defensively since bodies may be malformed. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `v` if it is an object, else undefined. */
export const rec = (v: unknown): Obj | undefined => (isObj(v) ? v : undefined);

/** `v` if it is an array, else []. */
export const list = (v: unknown): Obj[] => (Array.isArray(v) ? v : []);

/** Objects of a list (skips non-object entries) with their index. */
export function entries(v: unknown): [Obj, number][] {
  return list(v).map((x, i) => [x, i] as [Obj, number]).filter(([x]) => isObj(x));
}

/** Reads a dotted path ("spec.template.spec"); undefined when any step is missing. */
export function get(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const k of path.split('.').filter(Boolean)) {
    if (!isObj(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/** The object at `key` of `o`, created when missing or not an object. */
export function ensure(o: Obj, key: string): Obj {
  if (!isObj(o[key])) o[key] = {};
  return o[key] as Obj;
}

/** Sets `o[key] = value` when it is unset (undefined, null or '' — Go's zero value of a string). */
export function dflt(o: Obj | undefined, key: string, value: unknown): void {
  if (o && (o[key] === undefined || o[key] === null || o[key] === '')) {
    o[key] = typeof value === 'object' && value !== null ? structuredClone(value) : value;
  }
}

/** Applies `defaults` (shallow) to `o`. */
export function defaults(o: Obj | undefined, values: Obj): void {
  for (const [k, v] of Object.entries(values)) dflt(o, k, v);
}

const isEmpty = (v: unknown) =>
  v === undefined || v === null || (Array.isArray(v) && !v.length) || (isObj(v) && !Object.keys(v).length);

/** Semantic equality: unset, null, [] and {} are equal, as in apimachinery's Semantic.DeepEqual. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (isEmpty(a) && isEmpty(b)) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) if (!deepEqual(a[k], b[k])) return false;
    return true;
  }
  return a === b;
}

// ---- kind definitions -------------------------------------------------------------

export type NameValidator = (name: string) => string[];

export interface KindSpec {
  group: string;
  version: string;
  kind: string;
  plural: string;
  shortNames?: string[];
  namespaced?: boolean;
  categories?: string[];
  subresources?: KindDef['subresources'];
  /** Fields besides apiVersion, kind and metadata. */
  fields: Record<string, Schema>;
  required?: string[];
  description?: string;
  /** Validates metadata.name; DNS-1123 subdomain by default. */
  name?: NameValidator;
  default?: (obj: Obj) => void;
  /** Kind-specific rules; metadata is validated by defineKind. */
  validate?: (obj: Obj, old?: Obj) => Cause[];
  columns?: Column[];
  scale?: KindDef['scale'];
}

/** Builds a KindDef: derives names and the schema, and adds metadata validation. */
export function defineKind(s: KindSpec): KindDef {
  const namespaced = s.namespaced ?? true;
  const nameFn = s.name ?? isDNS1123Subdomain;
  const schema: ObjectSchema = kindSchema(s, s.fields, { required: s.required, description: s.description });
  return {
    group: s.group,
    version: s.version,
    kind: s.kind,
    listKind: `${s.kind}List`,
    plural: s.plural,
    singular: s.kind.toLowerCase(),
    shortNames: s.shortNames ?? [],
    namespaced,
    categories: s.categories ?? [],
    subresources: s.subresources ?? [],
    schema,
    default: (o) => s.default?.(o as Obj),
    validate(o, old) {
      const causes = validateObjectMeta(o.metadata, { namespaced, name: nameFn });
      if (old) causes.push(...validateObjectMetaUpdate(o.metadata, old.metadata));
      if (s.validate) causes.push(...s.validate(o as Obj, old as Obj | undefined));
      return causes;
    },
    columns: s.columns ?? [ageColumn],
    scale: s.scale,
    hasStatus: (s.subresources ?? []).includes('status'),
  };
}

/** Scale paths of the replicated workloads. */
export const REPLICAS_SCALE: KindDef['scale'] = {
  specReplicasPath: '.spec.replicas',
  statusReplicasPath: '.status.replicas',
  labelSelectorPath: '.status.selector',
};

// ---- metadata validation -------------------------------------------------------------

/** ValidateLabels: keys are qualified names, values label values. */
export function validateLabels(labels: unknown, path: string): Cause[] {
  const out: Cause[] = [];
  for (const [k, v] of Object.entries(rec(labels) ?? {})) {
    out.push(...invalidEach(path, k, isQualifiedName(k)));
    if (typeof v === 'string') out.push(...invalidEach(path, v, isValidLabelValue(v)));
  }
  return out;
}

const TOTAL_ANNOTATION_SIZE = 256 * 1024;

export function validateAnnotations(annotations: unknown, path: string): Cause[] {
  const out: Cause[] = [];
  let size = 0;
  for (const [k, v] of Object.entries(rec(annotations) ?? {})) {
    out.push(...invalidEach(path, k, isQualifiedName(k.toLowerCase())));
    size += Buffer.byteLength(k) + (typeof v === 'string' ? Buffer.byteLength(v) : 0);
  }
  if (size > TOTAL_ANNOTATION_SIZE) {
    out.push({ reason: 'FieldValueTooLong', field: path, message: `Too long: must have at most ${TOTAL_ANNOTATION_SIZE} bytes` });
  }
  return out;
}

function validateOwnerReferences(refs: unknown, path: string): Cause[] {
  const out: Cause[] = [];
  const controllers: string[] = [];
  for (const [r] of entries(refs)) {
    if (!r.apiVersion) out.push(invalid(child(path, 'apiVersion'), r.apiVersion ?? '', 'version must not be empty'));
    if (!r.kind) out.push(invalid(child(path, 'kind'), r.kind ?? '', 'kind must not be empty'));
    if (!r.name) out.push(invalid(child(path, 'name'), r.name ?? '', 'name must not be empty'));
    if (!r.uid) out.push(invalid(child(path, 'uid'), r.uid ?? '', 'uid must not be empty'));
    if (r.controller === true) controllers.push(`${r.kind}/${r.name}`);
  }
  if (controllers.length > 1) {
    out.push(invalid(path, refs, `Only one reference can have Controller set to true. Found "true" in references for ${controllers.join(' and ')}`));
  }
  return out;
}

/** ValidateObjectMeta: name or generateName, namespace rules, labels, annotations, owners, finalizers. */
export function validateObjectMeta(meta: unknown, o: { namespaced: boolean; name: NameValidator }, path = 'metadata'): Cause[] {
  const m = rec(meta) ?? {};
  const out: Cause[] = [];
  if (m.generateName) out.push(...invalidEach(child(path, 'generateName'), m.generateName, o.name(maskTrailingDash(String(m.generateName)))));
  if (!m.name && !m.generateName) out.push(required(child(path, 'name'), 'name or generateName is required'));
  else if (m.name) out.push(...invalidEach(child(path, 'name'), m.name, o.name(String(m.name))));
  if (o.namespaced) {
    if (!m.namespace) out.push(required(child(path, 'namespace')));
    else out.push(...invalidEach(child(path, 'namespace'), m.namespace, isDNS1123Label(String(m.namespace))));
  } else if (m.namespace) {
    out.push(forbidden(child(path, 'namespace'), 'not allowed on this type'));
  }
  if (typeof m.generation === 'number' && m.generation < 0) out.push(invalid(child(path, 'generation'), m.generation, 'must be greater than or equal to 0'));
  out.push(...validateLabels(m.labels, child(path, 'labels')));
  out.push(...validateAnnotations(m.annotations, child(path, 'annotations')));
  out.push(...validateOwnerReferences(m.ownerReferences, child(path, 'ownerReferences')));
  list(m.finalizers).forEach((f, i) => {
    if (typeof f === 'string') out.push(...invalidEach(index(child(path, 'finalizers'), i), f, isQualifiedName(f)));
  });
  return out;
}

/** ValidateObjectMetaUpdate: identity fields cannot change; no finalizers added during deletion. */
export function validateObjectMetaUpdate(meta: unknown, oldMeta: unknown, path = 'metadata'): Cause[] {
  const m = rec(meta) ?? {};
  const old = rec(oldMeta) ?? {};
  const out: Cause[] = [];
  for (const f of ['name', 'namespace', 'uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds']) {
    if (m[f] !== undefined && m[f] !== null && old[f] !== undefined && m[f] !== old[f]) out.push(immutable(child(path, f), m[f]));
  }
  if (old.deletionTimestamp) {
    const before = new Set(list(old.finalizers));
    const added = list(m.finalizers).filter((f) => !before.has(f));
    if (added.length) {
      out.push(forbidden(child(path, 'finalizers'), `no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`));
    }
  }
  return out;
}

/** Whether `spec` differs from `old` in a field other than the `mutable` ones. */
export function changedExcept(spec: unknown, old: unknown, mutable: string[]): boolean {
  const strip = (o: unknown) => Object.fromEntries(Object.entries(rec(o) ?? {}).filter(([k]) => !mutable.includes(k)));
  return !deepEqual(strip(spec), strip(old));
}

/** ValidateImmutableField for each dotted path that changed between `obj` and `old`. */
export function immutableFields(obj: Obj, old: Obj | undefined, paths: string[]): Cause[] {
  if (!old) return [];
  return paths.filter((p) => !deepEqual(get(obj, p), get(old, p))).map((p) => immutable(p, get(obj, p) ?? null));
}

export function nonNegative(v: unknown, path: string): Cause[] {
  return typeof v === 'number' && v < 0 ? [invalid(path, v, 'must be greater than or equal to 0')] : [];
}

export function positive(v: unknown, path: string): Cause[] {
  return typeof v === 'number' && v <= 0 ? [invalid(path, v, 'must be greater than 0')] : [];
}

/** A NotSupported cause when `v` is set and not one of `values`. */
export function oneOfValues(v: unknown, values: readonly string[], path: string): Cause[] {
  return v !== undefined && v !== null && !values.includes(String(v)) ? [notSupported(path, v, values)] : [];
}

// ---- label selectors ------------------------------------------------------------------

/**
 * The values rules of a selector requirement for the set-based operators: In
 * and NotIn need values, Exists and DoesNotExist take none. Undefined for other
 * operators (the caller's own: Gt/Lt for node selectors, invalid for labels).
 */
export function requirementValues(r: Obj, path: string): Cause[] | undefined {
  const values = list(r.values);
  switch (r.operator) {
    case 'In': case 'NotIn':
      return values.length ? [] : [required(child(path, 'values'), "must be specified when `operator` is 'In' or 'NotIn'")];
    case 'Exists': case 'DoesNotExist':
      return values.length ? [forbidden(child(path, 'values'), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")] : [];
  }
  return undefined;
}

/** ValidateLabelSelector (metav1): operators, values, keys and matchLabels. */
export function validateLabelSelector(sel: unknown, path: string): Cause[] {
  const s = rec(sel);
  if (!s) return [];
  const out = validateLabels(s.matchLabels, child(path, 'matchLabels'));
  for (const [r, i] of entries(s.matchExpressions)) {
    const p = index(child(path, 'matchExpressions'), i);
    const values = list(r.values);
    out.push(...(requirementValues(r, p) ?? [invalid(child(p, 'operator'), r.operator ?? '', 'not a valid selector operator')]));
    out.push(...invalidEach(child(p, 'key'), r.key ?? '', isQualifiedName(String(r.key ?? ''))));
    values.forEach((v, j) => {
      if (typeof v === 'string') out.push(...invalidEach(index(child(p, 'values'), j), v, isValidLabelValue(v)));
    });
  }
  return out;
}

/** Whether a metav1.LabelSelector selects `labels`. A missing selector selects nothing; an empty one everything. */
export function selectorMatches(sel: unknown, labels: unknown): boolean {
  const s = rec(sel);
  if (!s) return false;
  const l = (rec(labels) ?? {}) as Record<string, string>;
  for (const [k, v] of Object.entries(rec(s.matchLabels) ?? {})) if (l[k] !== v) return false;
  for (const r of list(s.matchExpressions)) {
    const has = Object.hasOwn(l, r.key);
    const values = list(r.values) as unknown as string[];
    switch (r.operator) {
      case 'In': if (!has || !values.includes(l[r.key])) return false; break;
      case 'NotIn': if (has && values.includes(l[r.key])) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      default: return false;
    }
  }
  return true;
}

/** Whether a selector has no requirements (matches everything). */
export function selectorEmpty(sel: unknown): boolean {
  const s = rec(sel) ?? {};
  return !Object.keys(rec(s.matchLabels) ?? {}).length && !list(s.matchExpressions).length;
}

/**
 * The string form of a label selector, as labels.Selector.String(): requirements
 * sorted by key, "k=v", "k in (a,b)", "k notin (a,b)", "k", "!k". '' when empty.
 */
export function selectorString(sel: unknown): string {
  const s = rec(sel);
  if (!s) return '';
  const reqs: [string, string][] = [];
  for (const [k, v] of Object.entries(rec(s.matchLabels) ?? {})) reqs.push([k, `${k}=${v}`]);
  for (const r of list(s.matchExpressions)) {
    const vals = [...new Set(list(r.values) as unknown as string[])].sort().join(',');
    const k = String(r.key);
    const text = { In: `${k} in (${vals})`, NotIn: `${k} notin (${vals})`, Exists: k, DoesNotExist: `!${k}` }[String(r.operator)];
    if (text !== undefined) reqs.push([k, text]);
  }
  return reqs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((r) => r[1]).join(',');
}

/** metav1.FormatLabelSelector: the selector string, or "<none>". */
export function formatLabelSelector(sel: unknown): string {
  return selectorString(sel) || '<none>';
}

/** labels.FormatLabels: "k=v,k2=v2" sorted by key, or "<none>". */
export function formatLabels(labels: unknown): string {
  const e = Object.entries(rec(labels) ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(',') : '<none>';
}

// ---- printing -------------------------------------------------------------------------

/**
 * k8s.io/apimachinery/pkg/util/duration.HumanDuration: "5s", "3m2s", "15m",
 * "4h30m", "10h", "2d3h", "45d", "2y10d", "9y".
 */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.trunc(ms / 60000);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.trunc(ms / 3600000);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.trunc(hours / 24) % 365;
    const y = Math.trunc(hours / 24 / 365);
    return dy === 0 ? `${y}y` : `${y}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

/** translateTimestampSince: the age of an RFC 3339 timestamp, or "<unknown>". */
export function since(ts: unknown, now: number): string {
  if (typeof ts !== 'string' || !ts) return '<unknown>';
  const t = Date.parse(ts);
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}

type Cell = ReturnType<Column['cell']>;

/** A table column; `wide` ones show only with -o wide. */
export function column(
  name: string,
  cell: (o: Obj, now: number) => Cell,
  o: { type?: Column['type']; wide?: boolean; description?: string; format?: string } = {},
): Column {
  const c: Column = {
    name,
    type: o.type ?? 'string',
    description: o.description ?? name,
    priority: o.wide ? 1 : 0,
    cell: (obj, now) => cell(obj as Obj, now),
  };
  if (o.format) c.format = o.format;
  return c;
}

export const ageColumn = column('Age', (o, now) => since(o.metadata?.creationTimestamp, now), {
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
});

/** An integer column read from a dotted path (0 when unset). */
export const intColumn = (name: string, path: string, o: { wide?: boolean; description?: string } = {}) =>
  column(name, (obj) => Number(get(obj, path) ?? 0), { ...o, type: 'integer' });

/** Containers and Images (-o wide) of a pod template at `spec.template.spec`. */
export function templateColumns(path = 'spec.template.spec'): Column[] {
  const containers = (o: Obj) => list(get(o, `${path}.containers`));
  return [
    column('Containers', (o) => containers(o).map((c) => c.name).join(','), { wide: true, description: 'Names of each container in the template.' }),
    column('Images', (o) => containers(o).map((c) => c.image).join(','), { wide: true, description: 'Images referenced by each container in the template.' }),
  ];
}

export const selectorColumn = column('Selector', (o) => formatLabelSelector(o.spec?.selector), {
  wide: true, description: 'The label selector of the controlled objects.',
});

/** A quantity compared semantically (NaN when malformed or unset). */
export function quantityValue(q: unknown): number {
  try {
    return typeof q === 'string' || typeof q === 'number' ? parseQuantity(q) : NaN;
  } catch {
    return NaN;
  }
}
