// Server-side apply (Content-Type: application/apply-patch+yaml) and field
// ownership (metadata.managedFields), modelled on Kubernetes'
// sigs.k8s.io/structured-merge-diff and the apiserver's fieldmanager chain.
//
// Field sets. A field set is a set of paths into an object. Path elements are
// written as in fieldsV1: `f:<field>` for a map/struct field, `k:{"name":"web"}`
// for an item of an associative list (listType "map", keyed by its
// listMapKeys/mergeKey, key fields in sorted order, missing keys taken from
// the item schema's default), `v:<json>` for an item of a set, `i:<n>` for an
// item we could not key. The set of an applied configuration contains every
// leaf (scalar, atomic list or map, null), every list item, and every key of
// a map that is not a declared struct field (labels, free-form objects) —
// exactly what structured-merge-diff's ToFieldSet produces. Serialised as
// fieldsV1, a path that is itself a member and has children gets a ".": {}.
//
// Apply (serverSideApply):
//   1. the applied configuration is merged into the live object: maps and
//      structs recursively, associative lists and sets item by item (in
//      Kubernetes' order), everything atomic is replaced; an explicit null
//      claims the field and removes it from the object;
//   2. fields this manager applied last time, no longer applies, and nobody
//      else owns are removed from the object (a removed struct field, map key or
//      list item takes its subtree with it);
//   3. the result is compared with the live object; a changed or added field
//      owned by another manager is a conflict. Without force the apply fails
//      with the conflicts; with force the other managers lose those fields;
//   4. every other manager loses the fields removed from the object, and the
//      manager's Apply entry becomes the applied field set.
// As in Kubernetes: an object with no managedFields first gets a
// "before-first-apply" Update entry owning all its fields; for manager
// "kubectl", conflicts on fields that still hold the value recorded in the
// kubectl.kubernetes.io/last-applied-configuration annotation are taken over
// silently (migration from client-side apply) and that annotation is kept in
// sync with the applied configuration; apiVersion, kind, metadata.name,
// namespace, uid, resourceVersion, generation, creationTimestamp,
// managedFields and selfLink are never recorded as owned.
//
// Update (updateManagedFieldsForUpdate) records a create/update/patch: the
// fields it added or changed move to the manager's Update entry (from whoever
// owned them), removed fields are dropped from every entry.
//
// Schema interpretation: an ObjectSchema with `properties` is a struct (its
// properties are "named fields"), with `mapType: "atomic"` it is a leaf;
// `additionalProperties` gives the value schema of other keys. An ArraySchema is
// a list-map when listType is "map" (or, without listType, when it has a
// mergeKey/listMapKeys), a set when listType is "set" (or, without listType,
// patchStrategy "merge" without a key), atomic otherwise. Type "any" and parts
// the schema does not describe are "deduced": objects are granular maps, lists
// are atomic.

import type { ArraySchema, KubeObject, ManagedFieldsEntry, Schema } from '../../api/schema/types.ts';
import { PatchError } from './errors.ts';
import { jsonEqual } from './json-patch.ts';
import { isObject, has, put, clone, type JsonObject } from './json.ts';

type Sch = Schema | undefined;

export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';
/** The Update manager that owns the fields of an object applied to for the first time without managedFields. */
export const BEFORE_FIRST_APPLY_MANAGER = 'before-first-apply';

// ---------------------------------------------------------------------------
// small helpers





/** JSON with object keys sorted, so equal values always serialise alike. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isObject(v)) {
    return `{${Object.keys(v).filter((k) => v[k] !== undefined).sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function isEmptyContainer(v: unknown): boolean {
  if (Array.isArray(v)) return v.length === 0;
  if (isObject(v)) return Object.keys(v).every((k) => v[k] === undefined);
  return false;
}

// ---------------------------------------------------------------------------
// path elements

/** Sort rank of a path element: fields, then keys, then values, then indexes (as structured-merge-diff). */
function peRank(pe: string): number {
  switch (pe[0]) {
    case 'f': return 0;
    case 'k': return 1;
    case 'v': return 2;
    default: return 3;
  }
}

function comparePE(a: string, b: string): number {
  const ra = peRank(a);
  const rb = peRank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 3) return Number(a.slice(2)) - Number(b.slice(2));
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `.spec.containers[name="web"].image` for a path of fieldsV1 elements. */
export function pathToString(path: readonly string[]): string {
  return path.map((pe) => {
    const body = pe.slice(2);
    switch (pe[0]) {
      case 'f': return `.${body}`;
      case 'k': {
        const key = JSON.parse(body) as JsonObject;
        return `[${Object.keys(key).map((k) => `${k}=${JSON.stringify(key[k])}`).join(',')}]`;
      }
      case 'v': return `[=${body}]`;
      default: return `[${body}]`;
    }
  }).join('');
}

/** Normalise one fieldsV1 key (re-serialising key and value JSON canonically); undefined if malformed. */
function normalizePE(key: string): string | undefined {
  const kind = key.slice(0, 2);
  const body = key.slice(2);
  try {
    switch (kind) {
      case 'f:': return key;
      case 'k:': {
        const v = JSON.parse(body) as unknown;
        return isObject(v) ? `k:${canonicalJson(v)}` : undefined;
      }
      case 'v:': return `v:${canonicalJson(JSON.parse(body))}`;
      case 'i:': return /^\d+$/.test(body) ? `i:${Number(body)}` : undefined;
      default: return undefined;
    }
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// field sets

/** A set of field paths (structured-merge-diff's fieldpath.Set). */
export class FieldSet {
  /** Last path elements of the member paths ending at this node. */
  readonly members = new Set<string>();
  readonly children = new Map<string, FieldSet>();

  static fromPaths(paths: Iterable<readonly string[]>): FieldSet {
    const s = new FieldSet();
    for (const p of paths) s.insert(p);
    return s;
  }

  /** Parse a fieldsV1 object; throws on a malformed one. */
  static fromFieldsV1(v: unknown): FieldSet {
    const s = new FieldSet();
    if (!isObject(v)) throw new Error('fieldsV1 must be an object');
    for (const [key, child] of Object.entries(v)) {
      if (key === '.') continue;
      const pe = normalizePE(key);
      if (pe === undefined || !isObject(child)) throw new Error(`invalid fieldsV1 key ${JSON.stringify(key)}`);
      const keys = Object.keys(child);
      if (keys.length === 0 || has(child, '.')) s.members.add(pe);
      if (keys.some((k) => k !== '.')) {
        const c = FieldSet.fromFieldsV1(child);
        if (!c.isEmpty()) s.children.set(pe, c);
      }
    }
    return s;
  }

  insert(path: readonly string[]): void {
    if (path.length === 0) return;
    let node: FieldSet = this;
    for (let i = 0; i < path.length - 1; i++) {
      let next = node.children.get(path[i]);
      if (!next) {
        next = new FieldSet();
        node.children.set(path[i], next);
      }
      node = next;
    }
    node.members.add(path[path.length - 1]);
  }

  has(path: readonly string[]): boolean {
    if (path.length === 0) return false;
    let node: FieldSet | undefined = this;
    for (let i = 0; i < path.length - 1 && node; i++) node = node.children.get(path[i]);
    return node !== undefined && node.members.has(path[path.length - 1]);
  }

  isEmpty(): boolean {
    if (this.members.size > 0) return false;
    for (const c of this.children.values()) if (!c.isEmpty()) return false;
    return true;
  }

  union(o: FieldSet): FieldSet {
    const out = new FieldSet();
    for (const m of this.members) out.members.add(m);
    for (const m of o.members) out.members.add(m);
    for (const [pe, c] of this.children) out.children.set(pe, c.union(o.children.get(pe) ?? EMPTY));
    for (const [pe, c] of o.children) if (!out.children.has(pe)) out.children.set(pe, c.union(EMPTY));
    return out;
  }

  /** Paths of this set that are not in `o` (children of a removed member stay). */
  difference(o: FieldSet): FieldSet {
    const out = new FieldSet();
    for (const m of this.members) if (!o.members.has(m)) out.members.add(m);
    for (const [pe, c] of this.children) {
      const other = o.children.get(pe);
      const d = other ? c.difference(other) : c.union(EMPTY);
      if (!d.isEmpty()) out.children.set(pe, d);
    }
    return out;
  }

  intersection(o: FieldSet): FieldSet {
    const out = new FieldSet();
    for (const m of this.members) if (o.members.has(m)) out.members.add(m);
    for (const [pe, c] of this.children) {
      const other = o.children.get(pe);
      if (!other) continue;
      const i = c.intersection(other);
      if (!i.isEmpty()) out.children.set(pe, i);
    }
    return out;
  }

  equals(o: FieldSet): boolean {
    return this.difference(o).isEmpty() && o.difference(this).isEmpty();
  }

  /** Member paths: the members of a node (sorted) before its children (sorted), as structured-merge-diff iterates. */
  paths(prefix: string[] = []): string[][] {
    const out: string[][] = [];
    for (const m of [...this.members].sort(comparePE)) out.push([...prefix, m]);
    for (const pe of [...this.children.keys()].sort(comparePE)) {
      out.push(...this.children.get(pe)!.paths([...prefix, pe]));
    }
    return out;
  }

  toFieldsV1(): JsonObject {
    const out: JsonObject = {};
    const pes = new Set([...this.members, ...this.children.keys()]);
    for (const pe of [...pes].sort(comparePE)) {
      const child = this.children.get(pe);
      const entry: JsonObject = {};
      if (this.members.has(pe) && child && !child.isEmpty()) entry['.'] = {};
      if (child) Object.assign(entry, child.toFieldsV1());
      if (!this.members.has(pe) && Object.keys(entry).length === 0) continue;
      put(out, pe, entry);
    }
    return out;
  }
}

const EMPTY = new FieldSet();

/** Paths never recorded as owned (Kubernetes' stripMeta manager). */
const STRIP = FieldSet.fromPaths([
  ['f:apiVersion'], ['f:kind'], ['f:metadata'],
  ...['name', 'namespace', 'creationTimestamp', 'selfLink', 'uid', 'clusterName', 'generation', 'managedFields', 'resourceVersion']
    .map((f) => ['f:metadata', `f:${f}`]),
]);

// ---------------------------------------------------------------------------
// schema interpretation

function fieldSchema(s: Sch, key: string): Sch {
  if (!s) return undefined;
  if (s.type === 'any') return s;
  if (s.type !== 'object') return undefined;
  return s.properties?.[key] ?? s.additionalProperties;
}

function isNamedField(s: Sch, key: string): boolean {
  return s?.type === 'object' && s.properties !== undefined && has(s.properties, key);
}

function childSchemaOfPE(s: Sch, pe: string): Sch {
  if (pe.startsWith('f:')) return fieldSchema(s, pe.slice(2));
  if (s?.type === 'any') return s;
  return s?.type === 'array' ? s.items : undefined;
}

type Shape =
  | { kind: 'leaf' }
  | { kind: 'fields' }
  | { kind: 'list'; set: boolean; keys: string[]; array: ArraySchema };

const LEAF: Shape = { kind: 'leaf' };
const FIELDS: Shape = { kind: 'fields' };

function listType(a: ArraySchema): 'atomic' | 'set' | 'map' {
  if (a.listType) return a.listType;
  const strategies = a.patchStrategy ? a.patchStrategy.split(',') : [];
  const keyed = a.mergeKey !== undefined || (a.listMapKeys?.length ?? 0) > 0;
  if (strategies.includes('merge')) return keyed ? 'map' : 'set';
  if (strategies.length === 0 && keyed) return 'map';
  return 'atomic';
}

function shapeOf(s: Sch, v: unknown): Shape {
  if (isObject(v)) {
    if (!s || s.type === 'any') return FIELDS;
    if (s.type !== 'object' || s.mapType === 'atomic') return LEAF;
    return FIELDS;
  }
  if (Array.isArray(v)) {
    if (s?.type !== 'array') return LEAF;
    const lt = listType(s);
    if (lt === 'set') return { kind: 'list', set: true, keys: [], array: s };
    if (lt === 'map') {
      const keys = s.listMapKeys?.length ? s.listMapKeys : s.mergeKey ? [s.mergeKey] : [];
      if (keys.length > 0) return { kind: 'list', set: false, keys: [...keys].sort(), array: s };
    }
    return LEAF;
  }
  return LEAF;
}

/** Collects problems with the applied configuration; thrown together as one PatchError. */
class Problems {
  readonly list: string[] = [];
  add(path: readonly string[], msg: string): void {
    const line = path.length > 0 ? `${pathToString(path)}: ${msg}` : msg;
    if (!this.list.includes(line)) this.list.push(line);
  }
}

/** The path element of a list item; an item without its keys gets `i:<n>` (and is reported to `problems`). */
function itemPE(shape: Extract<Shape, { kind: 'list' }>, item: unknown, index: number, path: readonly string[], problems?: Problems): string {
  if (shape.set) return `v:${canonicalJson(item)}`;
  if (!isObject(item)) {
    problems?.add(path, `element ${index}: expected a map, got ${canonicalJson(item)}`);
    return `i:${index}`;
  }
  const key: JsonObject = {};
  const items = shape.array.items;
  for (const k of shape.keys) {
    let v = item[k];
    if (v === undefined || v === null) {
      const d = items.type === 'object' ? items.properties?.[k] : undefined;
      v = d && 'default' in d ? d.default : undefined;
    }
    if (v === undefined || v === null) {
      problems?.add(path,
        `element ${index}: associative list with keys has an element that omits key field ${JSON.stringify(k)} (and doesn't have default value)`);
      return `i:${index}`;
    }
    put(key, k, v);
  }
  return `k:${canonicalJson(key)}`;
}

/** Path elements of a list's items; later duplicates get a unique `i:` element (and are reported to `problems`). */
function listPEs(shape: Extract<Shape, { kind: 'list' }>, list: unknown[], path: readonly string[], problems?: Problems): string[] {
  const seen = new Set<string>();
  return list.map((item, i) => {
    const pe = itemPE(shape, item, i, path, problems);
    if (!seen.has(pe)) {
      seen.add(pe);
      return pe;
    }
    if (!pe.startsWith('i:')) problems?.add(path, `duplicate entries for key ${pathToString([pe])}`);
    return `i:${i}`;
  });
}

// ---------------------------------------------------------------------------
// typed operations: field set, merge, compare, remove

/** The field set of a value (structured-merge-diff's ToFieldSet). */
export function toFieldSet(value: unknown, schema: Schema | undefined): FieldSet {
  const set = new FieldSet();
  walkToSet(value, schema, [], set, new Problems());
  return set;
}

function walkToSet(v: unknown, s: Sch, path: string[], set: FieldSet, problems: Problems): void {
  const shape = shapeOf(s, v);
  if (shape.kind === 'leaf') {
    set.insert(path);
  } else if (shape.kind === 'fields') {
    const o = v as JsonObject;
    for (const k of Object.keys(o)) {
      if (o[k] === undefined) continue;
      const p = [...path, `f:${k}`];
      walkToSet(o[k], fieldSchema(s, k), p, set, problems);
      if (!isNamedField(s, k)) set.insert(p);
    }
  } else {
    const list = v as unknown[];
    const pes = listPEs(shape, list, path, problems);
    list.forEach((item, i) => {
      const p = [...path, pes[i]];
      walkToSet(item, shape.array.items, p, set, problems);
      set.insert(p);
    });
  }
}

/** Merge an applied value into a live one (structured-merge-diff's Merge, applied wins). `rhs` is not null/undefined. */
function mergeTyped(lhs: unknown, rhs: unknown, s: Sch, path: string[], problems: Problems): unknown {
  const shape = shapeOf(s, rhs);
  if (shape.kind === 'leaf') return clone(rhs);
  if (shape.kind === 'fields') {
    const r = rhs as JsonObject;
    const out: JsonObject = isObject(lhs) && shapeOf(s, lhs).kind === 'fields' ? { ...lhs } : {};
    for (const k of Object.keys(r)) {
      const rv = r[k];
      if (rv === undefined) continue;
      if (rv === null) {
        delete out[k];
        continue;
      }
      const lv = has(out, k) ? out[k] : undefined;
      put(out, k, mergeTyped(lv, rv, fieldSchema(s, k), [...path, `f:${k}`], problems));
    }
    return out;
  }
  return mergeList(Array.isArray(lhs) ? lhs : [], rhs as unknown[], shape, path, problems);
}

/** Merge associative lists / sets, ordering items as structured-merge-diff does. */
function mergeList(
  lhs: unknown[], rhs: unknown[], shape: Extract<Shape, { kind: 'list' }>, path: string[], problems: Problems,
): unknown[] {
  const rPEs = listPEs(shape, rhs, path, problems);
  const lPEs = listPEs(shape, lhs, path);
  const rMap = new Map<string, unknown>();
  rPEs.forEach((pe, i) => rMap.set(pe, rhs[i]));
  const lMap = new Map<string, unknown>();
  lPEs.forEach((pe, i) => { if (!lMap.has(pe)) lMap.set(pe, lhs[i]); });
  const shared = rPEs.filter((pe) => lMap.has(pe));
  let si = 0;
  let nextShared: string | undefined = shared[0];
  const popShared = (): void => { nextShared = shared[++si]; };
  const merged = new Set<string>();
  const items = shape.array.items;
  const mergeItem = (pe: string): unknown => {
    const r = rMap.get(pe);
    const l = lMap.get(pe);
    if (r === undefined) return l;
    if (r === null) return null;
    return mergeTyped(l, r, items, [...path, pe], problems);
  };

  const out: unknown[] = [];
  let lI = 0;
  let rI = 0;
  while (lI < lPEs.length || rI < rPEs.length) {
    const before = lI + rI;
    if (lI < lPEs.length && rI < rPEs.length) {
      const pe = lPEs[lI];
      if (pe === rPEs[rI]) {
        merged.add(pe);
        out.push(mergeItem(pe));
        lI++;
        rI++;
        popShared();
        continue;
      }
      if (rMap.has(pe) && nextShared !== undefined && nextShared !== pe) {
        lI++;
        continue;
      }
    }
    if (lI < lPEs.length) {
      const pe = lPEs[lI];
      if (!rMap.has(pe)) {
        out.push(lhs[lI]);
        lI++;
        continue;
      }
      if (merged.has(pe)) {
        lI++;
        continue;
      }
    }
    if (rI < rPEs.length) {
      const pe = rPEs[rI];
      merged.add(pe);
      out.push(mergeItem(pe));
      rI++;
      if (nextShared !== undefined && nextShared === pe) popShared();
    }
    if (lI + rI === before) lI++; // defensive: always make progress
  }
  return out;
}

interface Comparison { added: FieldSet; modified: FieldSet; removed: FieldSet }

/**
 * Compare two versions of an object (structured-merge-diff's Compare): leaves
 * that appeared, changed or disappeared, plus list items and map keys that
 * appeared or disappeared. A struct-typed field (schema with properties) is not
 * itself recorded as added, as in Kubernetes, whose Go zero values always
 * have them: `"f:spec":{...}` carries no ".", `"f:labels":{".":{},...}` does.
 */
function compareTyped(lhs: unknown, rhs: unknown, schema: Sch): Comparison {
  const c: Comparison = { added: new FieldSet(), modified: new FieldSet(), removed: new FieldSet() };
  walkCompare(lhs, rhs, schema, [], false, c);
  return c;
}

function walkCompare(l: unknown, r: unknown, s: Sch, path: string[], struct: boolean, c: Comparison): void {
  if (l === undefined && r === undefined) return;
  const ls = l === undefined ? undefined : shapeOf(s, l);
  const rs = r === undefined ? undefined : shapeOf(s, r);
  const shape = (rs ?? ls)!;
  const leaf = shape.kind === 'leaf' || (ls !== undefined && rs !== undefined && ls.kind !== rs.kind)
    || ((l === undefined || isEmptyContainer(l)) && (r === undefined || isEmptyContainer(r)));
  if (leaf) {
    if (path.length === 0) return;
    if (l === undefined) c.added.insert(path);
    else if (r === undefined) c.removed.insert(path);
    else if (!jsonEqual(l, r)) c.modified.insert(path);
    return;
  }
  if (shape.kind === 'fields') {
    const lo = isObject(l) ? l : {};
    const ro = isObject(r) ? r : {};
    const keys = new Set([...Object.keys(lo), ...Object.keys(ro)]);
    for (const k of keys) {
      const sub = fieldSchema(s, k);
      const struct = isNamedField(s, k) && sub?.type === 'object' && sub.properties !== undefined;
      walkCompare(has(lo, k) ? lo[k] : undefined, has(ro, k) ? ro[k] : undefined, sub, [...path, `f:${k}`], struct, c);
    }
  } else if (shape.kind === 'list') {
    const la = Array.isArray(l) ? l : [];
    const ra = Array.isArray(r) ? r : [];
    const lPEs = listPEs(shape, la, path);
    const rPEs = listPEs(shape, ra, path);
    const lMap = new Map<string, unknown>();
    lPEs.forEach((pe, i) => lMap.set(pe, la[i]));
    const rMap = new Map<string, unknown>();
    rPEs.forEach((pe, i) => rMap.set(pe, ra[i]));
    for (const pe of new Set([...lPEs, ...rPEs])) {
      walkCompare(lMap.get(pe), rMap.get(pe), shape.array.items, [...path, pe], false, c);
    }
  }
  if (path.length > 0) {
    if (l === undefined && !struct) c.added.insert(path);
    if (r === undefined) c.removed.insert(path);
  }
}

/** Remove the member paths of `set` (with their subtrees) from `v`; undefined when the container empties. */
function removeTyped(v: unknown, set: FieldSet, s: Sch): unknown {
  const shape = shapeOf(s, v);
  if (shape.kind === 'leaf') return v;
  if (shape.kind === 'fields') {
    const o = v as JsonObject;
    const out: JsonObject = {};
    for (const k of Object.keys(o)) {
      const pe = `f:${k}`;
      if (set.members.has(pe)) continue;
      const child = set.children.get(pe);
      if (!child) {
        put(out, k, o[k]);
        continue;
      }
      const nv = removeTyped(o[k], child, fieldSchema(s, k));
      if (nv !== undefined) put(out, k, nv);
    }
    return Object.keys(out).length === 0 && Object.keys(o).length > 0 ? undefined : out;
  }
  const list = v as unknown[];
  const pes = listPEs(shape, list, []);
  const out: unknown[] = [];
  list.forEach((item, i) => {
    const pe = pes[i];
    if (set.members.has(pe)) return;
    const child = set.children.get(pe);
    if (!child) {
      out.push(item);
      return;
    }
    const nv = removeTyped(item, child, shape.array.items);
    if (nv !== undefined) out.push(nv);
  });
  return out.length === 0 && list.length > 0 ? undefined : out;
}

/** Named struct fields on the way to a member become members themselves (EnsureNamedFieldsAreMembers). */
function ensureNamedFieldsAreMembers(set: FieldSet, s: Sch): FieldSet {
  const out = new FieldSet();
  for (const m of set.members) out.members.add(m);
  for (const [pe, child] of set.children) {
    if (pe.startsWith('f:') && isNamedField(s, pe.slice(2))) out.members.add(pe);
    out.children.set(pe, ensureNamedFieldsAreMembers(child, childSchemaOfPE(s, pe)));
  }
  return out;
}

// ---------------------------------------------------------------------------
// managed fields

interface Manager {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  subresource?: string;
  set: FieldSet;
}

/** Kubernetes' manager identity: Apply entries ignore apiVersion, Update entries include it. */
function managerId(m: Pick<Manager, 'manager' | 'operation' | 'apiVersion' | 'subresource'>): string {
  return JSON.stringify([m.manager, m.operation, m.operation === 'Apply' ? '' : m.apiVersion, m.subresource ?? '']);
}

/** Decode metadata.managedFields, skipping malformed entries and merging duplicates. */
function decodeManagedFields(raw: unknown): Manager[] {
  if (!Array.isArray(raw)) return [];
  const byId = new Map<string, Manager>();
  for (const e of raw) {
    if (!isObject(e) || typeof e.manager !== 'string') continue;
    if (e.operation !== 'Apply' && e.operation !== 'Update') continue;
    if (e.fieldsType !== undefined && e.fieldsType !== 'FieldsV1') continue;
    let set: FieldSet;
    try {
      set = e.fieldsV1 === undefined || e.fieldsV1 === null ? new FieldSet() : FieldSet.fromFieldsV1(e.fieldsV1);
    } catch {
      continue;
    }
    const m: Manager = {
      manager: e.manager,
      operation: e.operation,
      apiVersion: typeof e.apiVersion === 'string' ? e.apiVersion : '',
      time: typeof e.time === 'string' ? e.time : undefined,
      subresource: typeof e.subresource === 'string' && e.subresource !== '' ? e.subresource : undefined,
      set,
    };
    const id = managerId(m);
    const prev = byId.get(id);
    if (prev) prev.set = prev.set.union(set);
    else byId.set(id, m);
  }
  return [...byId.values()];
}

function timeSeconds(t: string | undefined): number {
  if (!t) return 0;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? 0 : Math.floor(ms / 1000);
}

/** Encode managers as metadata.managedFields, sorted as Kubernetes sorts them; empty sets are dropped. */
function encodeManagedFields(managers: Manager[]): ManagedFieldsEntry[] {
  return managers
    .filter((m) => !m.set.isEmpty())
    .sort((p, q) => {
      if (p.operation !== q.operation) return p.operation < q.operation ? -1 : 1;
      const ps = timeSeconds(p.time);
      const qs = timeSeconds(q.time);
      if (ps !== qs) return ps - qs;
      if (p.manager !== q.manager) return p.manager < q.manager ? -1 : 1;
      if (p.apiVersion !== q.apiVersion) return p.apiVersion < q.apiVersion ? -1 : 1;
      return (p.subresource ?? '') < (q.subresource ?? '') ? -1 : (p.subresource ?? '') > (q.subresource ?? '') ? 1 : 0;
    })
    .map((m) => {
      const e: ManagedFieldsEntry = {
        manager: m.manager,
        operation: m.operation,
        apiVersion: m.apiVersion,
        ...(m.time !== undefined ? { time: m.time } : {}),
        fieldsType: 'FieldsV1',
        fieldsV1: m.set.toFieldsV1(),
        ...(m.subresource !== undefined ? { subresource: m.subresource } : {}),
      };
      return e;
    });
}

/** A deep copy of an object without metadata.managedFields. */
function withoutManagedFields(obj: unknown): JsonObject {
  const o = isObject(obj) ? clone(obj) : {};
  if (isObject(o.metadata)) {
    delete o.metadata.managedFields;
  }
  return o;
}

function withManagedFields(obj: JsonObject, managers: Manager[]): KubeObject {
  const entries = encodeManagedFields(managers);
  if (entries.length > 0) {
    if (!isObject(obj.metadata)) obj.metadata = {};
    (obj.metadata as JsonObject).managedFields = entries;
  } else if (isObject(obj.metadata)) {
    delete obj.metadata.managedFields;
  }
  return obj as KubeObject;
}

// ---------------------------------------------------------------------------
// conflicts

export interface Conflict {
  /** The manager that owns the field. */
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  subresource?: string;
  /** The field, as Kubernetes prints it: `.spec.replicas`, `.spec.template.spec.containers[name="web"].image`. */
  field: string;
  /** The same path as fieldsV1 elements. */
  path: string[];
}

/** `"kubectl-client-side-apply" using apps/v1`, `"kubectl"`, `"x" with subresource "status" using v1`. */
export function describeManager(c: Pick<Conflict, 'manager' | 'operation' | 'apiVersion' | 'subresource'>): string {
  let s = JSON.stringify(c.manager);
  if (c.subresource) s += ` with subresource ${JSON.stringify(c.subresource)}`;
  if (c.operation === 'Update') s += ` using ${c.apiVersion}`;
  return s;
}

/**
 * Kubernetes' message for failed applies:
 *   Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas
 *   Apply failed with 2 conflicts: conflicts with "a" using apps/v1:\n- .spec.replicas\n- .spec.paused
 */
export function formatConflictMessage(conflicts: readonly Conflict[]): string {
  if (conflicts.length === 1) {
    return `Apply failed with 1 conflict: conflict with ${describeManager(conflicts[0])}: ${conflicts[0].field}`;
  }
  const byManager = new Map<string, string[]>();
  for (const c of conflicts) {
    const m = describeManager(c);
    byManager.set(m, [...(byManager.get(m) ?? []), c.field]);
  }
  const lines: string[] = [];
  for (const m of [...byManager.keys()].sort()) {
    lines.push(`conflicts with ${m}:`);
    for (const f of byManager.get(m)!) lines.push(`- ${f}`);
  }
  return `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
}

/** Alias of formatConflictMessage. */
export const formatConflicts = formatConflictMessage;

/** The Status.details.causes of a failed apply. */
export function conflictCauses(conflicts: readonly Conflict[]): { type: 'FieldManagerConflict'; message: string; field: string }[] {
  return conflicts.map((c) => ({ type: 'FieldManagerConflict', message: `conflict with ${describeManager(c)}`, field: c.field }));
}

/** The 409 Status object Kubernetes returns for apply conflicts. */
export function conflictStatus(conflicts: readonly Conflict[]): {
  kind: 'Status'; apiVersion: 'v1'; metadata: Record<string, never>; status: 'Failure'; message: string;
  reason: 'Conflict'; details: { causes: ReturnType<typeof conflictCauses> }; code: 409;
} {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: formatConflictMessage(conflicts),
    reason: 'Conflict',
    details: { causes: conflictCauses(conflicts) },
    code: 409,
  };
}

// ---------------------------------------------------------------------------
// apply

export interface ApplyOptions {
  /** The field manager (?fieldManager=, "kubectl" for kubectl apply --server-side). */
  manager: string;
  /** ?force=true: take ownership of conflicting fields. */
  force: boolean;
  /** The kind's schema (the whole object). */
  schema: Schema;
  /** The API version served (recorded in managedFields; the applied object's apiVersion must match). */
  apiVersion: string;
  /** The time recorded in managedFields (RFC 3339, seconds precision like Kubernetes). */
  now: string;
  /** The kind served; when given, the applied object's kind must match. */
  kind?: string;
  /** The subresource applied to ("status", "scale"), recorded in managedFields. */
  subresource?: string;
}

export interface ApplyResult {
  /**
   * The object to persist (live merged with the applied configuration, with
   * metadata.managedFields updated). On conflicts: the live object, unchanged.
   */
  object: KubeObject;
  /** Set (non-empty) when the apply failed because of conflicts: answer 409 with conflictStatus(conflicts). */
  conflicts?: Conflict[];
  /** Whether `object` differs from the live object (managedFields included). */
  changed: boolean;
}

/**
 * Server-side apply of `applied` (the decoded apply-patch YAML) to `live`
 * (undefined when the object does not exist yet: the apply creates it).
 * Throws PatchError for an unusable configuration (400: not an object,
 * metadata.managedFields set, wrong apiVersion/kind; 422: list items without
 * their keys or duplicated).
 */
export function serverSideApply(live: KubeObject | undefined, applied: unknown, opts: ApplyOptions): ApplyResult {
  if (!isObject(applied)) throw new PatchError('apply patch must be a JSON/YAML object', 400);
  const meta = applied.metadata;
  if (isObject(meta) && meta.managedFields !== undefined && meta.managedFields !== null) {
    throw new PatchError('metadata.managedFields must be nil', 400);
  }
  if ((applied.apiVersion !== undefined && applied.apiVersion !== opts.apiVersion)
    || (opts.kind !== undefined && applied.kind !== undefined && applied.kind !== opts.kind)) {
    throw new PatchError(`invalid object type: ${String(applied.apiVersion ?? '')}, Kind=${String(applied.kind ?? '')}`, 400);
  }
  const config = clone(applied);
  if (isObject(config.metadata)) delete config.metadata.managedFields;

  const liveBase = live ? withoutManagedFields(live) : {};
  const managers = decodeManagedFields(live?.metadata?.managedFields);
  if (live && managers.length === 0) {
    const c = compareTyped({}, liveBase, opts.schema);
    const set = c.added.union(c.modified).difference(STRIP);
    if (!set.isEmpty()) {
      managers.push({ manager: BEFORE_FIRST_APPLY_MANAGER, operation: 'Update', apiVersion: opts.apiVersion, time: opts.now, set });
    }
  }

  let outcome = applyOnce(liveBase, config, managers, opts, opts.force);
  if (outcome.conflicts && opts.manager === 'kubectl') {
    // Upgrading from client-side apply: fields still as last applied by kubectl may be taken over.
    const allowed = allowedConflictsFromLastApplied(liveBase, opts.schema);
    if (allowed) {
      const remaining = outcome.conflicts.filter((c) => !allowed.has(c.path));
      outcome = remaining.length === 0 ? applyOnce(liveBase, config, managers, opts, true) : { conflicts: remaining };
    }
  }
  if (outcome.conflicts) {
    return { object: live ? clone(live) : {}, conflicts: outcome.conflicts, changed: false };
  }

  const object = outcome.object!;
  if (opts.manager === 'kubectl') syncLastApplied(object, config);
  const result = withManagedFields(object, outcome.managers!);
  return { object: result, changed: !jsonEqual(live ?? {}, result) };
}

interface Outcome { object?: JsonObject; managers?: Manager[]; conflicts?: Conflict[] }

function applyOnce(liveBase: JsonObject, config: JsonObject, managers: Manager[], opts: ApplyOptions, force: boolean): Outcome {
  const schema = opts.schema;
  const problems = new Problems();
  const fullSet = new FieldSet();
  walkToSet(config, schema, [], fullSet, problems);
  const merged = mergeTyped(liveBase, config, schema, [], problems) as JsonObject;
  if (problems.list.length > 0) {
    const name = isObject(config.metadata) ? config.metadata : {};
    const who = `${name.namespace ? `${String(name.namespace)}/` : ''}${String(name.name ?? '')}`;
    const what = `${opts.apiVersion}, Kind=${opts.kind ?? String(config.kind ?? '')}`;
    const detail = problems.list.length === 1 ? problems.list[0] : `errors:\n  ${problems.list.join('\n  ')}`;
    throw new PatchError(`failed to create typed patch object (${who}; ${what}): ${detail}`);
  }
  const appliedSet = fullSet.difference(STRIP);

  const selfId = managerId({ manager: opts.manager, operation: 'Apply', apiVersion: opts.apiVersion, subresource: opts.subresource });
  const self = managers.find((m) => managerId(m) === selfId);
  const others = managers.filter((m) => m !== self);

  // Prune what this manager applied before, applies no more, and nobody else owns.
  let object = merged;
  if (self && !self.set.isEmpty()) {
    let owned = STRIP.union(fullSet);
    for (const m of others) owned = owned.union(m.set);
    const toRemove = ensureNamedFieldsAreMembers(self.set, schema).difference(ensureNamedFieldsAreMembers(owned, schema));
    if (!toRemove.isEmpty()) object = (removeTyped(merged, toRemove, schema) as JsonObject | undefined) ?? {};
  }

  const cmp = compareTyped(liveBase, object, schema);
  const changedSet = cmp.modified.union(cmp.added);
  const conflicts: Conflict[] = [];
  for (const m of others.slice().sort((a, b) => describeManager(a).localeCompare(describeManager(b)))) {
    const taken = m.set.intersection(changedSet);
    for (const p of taken.paths()) {
      conflicts.push({
        manager: m.manager, operation: m.operation, apiVersion: m.apiVersion,
        ...(m.subresource ? { subresource: m.subresource } : {}),
        field: pathToString(p), path: p,
      });
    }
  }
  if (conflicts.length > 0 && !force) return { conflicts };

  const objectChanged = !jsonEqual(liveBase, object);
  const next: Manager[] = others.map((m) => ({ ...m, set: m.set.difference(changedSet).difference(cmp.removed) }));
  const refresh = objectChanged || !self || !self.set.equals(appliedSet) || self.apiVersion !== opts.apiVersion;
  next.push({
    manager: opts.manager,
    operation: 'Apply',
    apiVersion: opts.apiVersion,
    time: refresh ? opts.now : (self?.time ?? opts.now),
    subresource: opts.subresource,
    set: appliedSet,
  });
  return { object, managers: next };
}

/**
 * Fields of the last-applied-configuration annotation that still hold the
 * value kubectl applied (Kubernetes' lastAppliedManager); undefined without one.
 */
function allowedConflictsFromLastApplied(liveBase: JsonObject, schema: Schema): FieldSet | undefined {
  const annotations = isObject(liveBase.metadata) ? liveBase.metadata.annotations : undefined;
  const raw = isObject(annotations) ? annotations[LAST_APPLIED_ANNOTATION] : undefined;
  if (typeof raw !== 'string' || raw === '') return undefined;
  let lastApplied: unknown;
  try {
    lastApplied = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!isObject(lastApplied)) return undefined;
  const set = toFieldSet(lastApplied, schema);
  const c = compareTyped(lastApplied, liveBase, schema);
  return set.difference(c.modified).difference(c.added).difference(c.removed);
}

/** Keep kubectl's last-applied annotation (if the object has one) equal to the applied configuration. */
function syncLastApplied(object: JsonObject, config: JsonObject): void {
  const meta = object.metadata;
  if (!isObject(meta) || !isObject(meta.annotations) || !has(meta.annotations, LAST_APPLIED_ANNOTATION)) return;
  const copy = clone(config);
  if (isObject(copy.metadata) && isObject(copy.metadata.annotations)) {
    delete copy.metadata.annotations[LAST_APPLIED_ANNOTATION];
  }
  meta.annotations = { ...meta.annotations, [LAST_APPLIED_ANNOTATION]: JSON.stringify(copy) + '\n' };
}

// ---------------------------------------------------------------------------
// update

export interface UpdateOptions {
  /** The kind's schema; without it every list is atomic and every object a map (list items are then not tracked). */
  schema?: Schema;
  /** The subresource written ("status", "scale"): recorded in the entry; user-supplied managedFields are ignored. */
  subresource?: string;
}

/**
 * Record a non-apply write (create: `oldObj` undefined; update; patch) in
 * `newObj.metadata.managedFields` — in place — and return `newObj`: the fields
 * the write added or changed become owned by `manager` (operation "Update",
 * this apiVersion, time `now`) and are taken from any other manager; fields it
 * removed are dropped from every manager.
 *
 * As in Kubernetes: managedFields sent in `newObj` (non-empty) replace the
 * recorded ones (an object without them keeps the old ones; ignored for
 * subresources), and `managedFields: [{}]` resets them (the result has none).
 *
 * The last argument is the kind's schema and subresource; a bare string is
 * taken as the subresource. Pass the schema: without it list items (containers
 * by name…) cannot be told apart and every list is owned whole.
 */
export function updateManagedFieldsForUpdate(
  oldObj: KubeObject | undefined, newObj: KubeObject, manager: string, now: string, apiVersion: string,
  opts: UpdateOptions | string = {},
): KubeObject {
  const o: UpdateOptions = typeof opts === 'string' ? { subresource: opts } : opts;
  const sent = newObj.metadata?.managedFields as unknown;
  const reset = Array.isArray(sent) && sent.length === 1 && isObject(sent[0]) && Object.keys(sent[0]).length === 0;
  let next: Manager[] = [];
  if (!reset) {
    let managers = !o.subresource && Array.isArray(sent) && sent.length > 0 ? decodeManagedFields(sent) : [];
    if (managers.length === 0) managers = decodeManagedFields(oldObj?.metadata?.managedFields);

    const before = oldObj ? withoutManagedFields(oldObj) : {};
    const after = withoutManagedFields(newObj);
    const cmp = compareTyped(before, after, o.schema);
    const changedSet = cmp.modified.union(cmp.added);
    next = managers.map((m) => ({ ...m, set: m.set.difference(changedSet).difference(cmp.removed) }));

    const took = changedSet.difference(cmp.removed).difference(STRIP);
    if (!took.isEmpty()) {
      const entry: Manager = { manager, operation: 'Update', apiVersion, subresource: o.subresource || undefined, time: now, set: took };
      const id = managerId(entry);
      const i = next.findIndex((m) => managerId(m) === id);
      if (i >= 0) next[i] = { ...entry, set: next[i].set.union(took) };
      else next.push(entry);
    }
  }
  return withManagedFields(newObj as JsonObject, next);
}
