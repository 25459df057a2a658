// Kubernetes strategic merge patch (Content-Type: application/strategic-merge-patch+json),
// modelled on k8s.io/apimachinery/pkg/util/strategicpatch (the server-side
// "StrategicMergeMapPatch" half, plus a two-way diff).
//
// Semantics, driven by the kind's Schema:
//  * maps merge recursively; `null` deletes a key; keys absent from the patch stay.
//  * a list whose ArraySchema has patchStrategy "merge" (or a mergeKey and no
//    patchStrategy) is merged: list-of-maps items are matched on the merge key
//    (patch items update the live item with the same key, or are inserted), lists
//    of primitives are unioned. Every other list is replaced by the patch's.
//  * the order of a merged list follows Kubernetes: items named in the patch take
//    the patch's relative order, the others keep theirs, and an item new to the
//    list goes before the first live item it is not known to follow (so a new
//    container lands first, as in `kubectl patch`), unless $setElementOrder says
//    otherwise.
//  * directives:
//      {"$patch": "replace"}   in a map: the map replaces the live map
//      {"$patch": "delete"}    in a map: the map is removed
//      {"$patch": "merge"}     in a map: the default (merge), accepted and ignored
//      [{"name": "x", "$patch": "delete"}]  deletes the list item with that key
//      [{"$patch": "replace"}, …]           the rest of the patch list replaces the list
//      "$deleteFromPrimitiveList/<field>": [values]  removes values from a primitive list
//      "$setElementOrder/<field>": [items or {key: v}]  fixes the final order of a list
//      "$retainKeys": [keys]   clears every key of the live map not in the list
//  * parts of the object the schema does not describe (type "any", unknown
//    fields) get JSON-merge semantics: maps merge, lists are replaced (directives
//    in maps still work).
//
// Deliberate differences from Kubernetes (which would keep the empty/odd value):
// a map deleted with {"$patch": "delete"} is removed from its parent instead of
// becoming {}; nulls and directives inside values new to the object are always
// cleaned out; `$patch: merge` is accepted where Kubernetes rejects it.
//
// Inputs are never mutated. Failures throw PatchError (400 malformed directive
// or non-object patch, 422 a patch that does not fit the object).

import type { ArraySchema, Schema } from '../../api/schema/types.ts';
import { PatchError } from './errors.ts';
import { jsonEqual } from './json-patch.ts';
import { isObject, has, put, clone, type JsonObject } from './json.ts';

type Sch = Schema | undefined;

const DIRECTIVE = '$patch';
const RETAIN_KEYS = '$retainKeys';
const SET_ORDER = '$setElementOrder';
const DELETE_PRIMITIVE = '$deleteFromPrimitiveList';

const ERR_RETAIN_KEYS = 'invalid patch format of retainKeys';
const ERR_SET_ORDER = 'invalid patch format of setElementOrder list';
const ERR_PRIMITIVE_LIST = 'invalid patch format of primitive list';

// ---------------------------------------------------------------------------
// helpers





/** Go's %v-ish rendering of a value, for error messages. */
function show(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

function noMergeKey(item: unknown, mergeKey: string): PatchError {
  return new PatchError(`map: ${show(item)} does not contain declared merge key: ${mergeKey}`);
}

/** The schema of field `key` of an object described by `s`. */
function fieldSchema(s: Sch, key: string): Sch {
  if (!s) return undefined;
  if (s.type === 'any') return s;
  if (s.type !== 'object') return undefined;
  return s.properties?.[key] ?? s.additionalProperties;
}

function arraySchema(s: Sch): ArraySchema | undefined {
  return s?.type === 'array' ? s : undefined;
}

function itemSchema(s: Sch): Sch {
  if (s?.type === 'any') return s;
  return arraySchema(s)?.items;
}

interface ListStrategy { merge: boolean; retainKeys: boolean; mergeKey?: string }

function listStrategy(s: Sch): ListStrategy {
  const a = arraySchema(s);
  if (!a) return { merge: false, retainKeys: false };
  const strategies = a.patchStrategy ? a.patchStrategy.split(',') : [];
  const mergeKey = a.mergeKey ?? (a.listMapKeys?.length === 1 ? a.listMapKeys[0] : undefined);
  const merge = strategies.includes('merge') || (strategies.length === 0 && a.mergeKey !== undefined);
  return { merge, retainKeys: strategies.includes('retainKeys'), mergeKey };
}

type Kind = 'map' | 'list' | 'scalar';

function kindOf(v: unknown): Kind {
  return Array.isArray(v) ? 'list' : isObject(v) ? 'map' : 'scalar';
}

/** The element kind of the given lists (all elements must agree). */
function elementKind(...lists: unknown[][]): 'map' | 'scalar' | undefined {
  let kind: 'map' | 'scalar' | undefined;
  for (const list of lists) {
    for (const v of list) {
      if (Array.isArray(v)) throw new PatchError('lists of lists are not supported');
      const k = isObject(v) ? 'map' : 'scalar';
      if (kind && kind !== k) throw new PatchError(`list element types are not identical: ${show(lists)}`);
      kind = k;
    }
  }
  return kind;
}

/** The identity of a list item: its merge key value for maps, itself for scalars. */
function identity(item: unknown, mergeKey: string | undefined): unknown {
  if (mergeKey && isObject(item)) return item[mergeKey];
  return item;
}

function sameIdentity(a: unknown, b: unknown, mergeKey: string | undefined): boolean {
  const x = identity(a, mergeKey);
  const y = identity(b, mergeKey);
  if (x === y) return true;
  return typeof x === 'object' && x !== null && jsonEqual(x, y);
}

function indexIn(list: unknown[], item: unknown, mergeKey: string | undefined): number {
  for (let i = 0; i < list.length; i++) if (sameIdentity(list[i], item, mergeKey)) return i;
  return -1;
}

function extractKey(key: string, prefix: string, err: string): string {
  const slash = key.indexOf('/');
  if (slash < 0 || key.slice(0, slash) !== prefix) throw new PatchError(err, 400);
  return key.slice(slash + 1);
}

// ---------------------------------------------------------------------------
// apply

/**
 * Apply a strategic merge patch to `original` (a JSON object, or undefined for
 * an empty one) and return the result.
 */
export function applyStrategicMergePatch(original: unknown, patch: unknown, schema: Schema | undefined): JsonObject {
  if (!isObject(patch)) {
    throw new PatchError(`json: cannot unmarshal ${kindName(patch)} into Go value of type map[string]interface {}`, 400);
  }
  if (original !== undefined && original !== null && !isObject(original)) {
    throw new PatchError('invalid JSON document', 400);
  }
  const base = isObject(original) ? clone(original) : {};
  return mergeMap(base, clone(patch), schema) ?? {};
}

function kindName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'boolean') return 'bool';
  return typeof v;
}

/**
 * Merge `patch` into `original` (both owned by us and freely mutated).
 * Returns undefined when the patch deletes the map.
 */
function mergeMap(original: JsonObject | undefined, patch: JsonObject, schema: Sch): JsonObject | undefined {
  if (has(patch, DIRECTIVE)) {
    const d = patch[DIRECTIVE];
    delete patch[DIRECTIVE];
    if (d === 'replace') return mergeMap(undefined, patch, schema);
    if (d === 'delete') return undefined;
    if (d !== 'merge') throw new PatchError(`unknown patch type: ${show(d)} in map: ${show({ ...patch, [DIRECTIVE]: d })}`);
  }
  const orig: JsonObject = original ?? {};

  applyRetainKeys(orig, patch);
  applySetElementOrder(orig, patch, schema);

  for (const rawKey of Object.keys(patch)) {
    let key = rawKey;
    let isDeleteList = false;
    if (key.startsWith(DELETE_PRIMITIVE)) {
      key = extractKey(key, DELETE_PRIMITIVE, ERR_PRIMITIVE_LIST);
      isDeleteList = true;
    }
    const pv = patch[rawKey];
    if (pv === null) {
      delete orig[key];
      continue;
    }
    const sub = fieldSchema(schema, key);
    const cur = has(orig, key) ? orig[key] : undefined;
    if (isDeleteList) {
      if (!Array.isArray(pv)) throw new PatchError(ERR_PRIMITIVE_LIST, 400);
      if (Array.isArray(cur)) orig[key] = deleteFromSlice(cur, pv);
      continue;
    }
    if (cur === undefined || cur === null || kindOf(cur) !== kindOf(pv)) {
      setOrDelete(orig, key, fromPatch(pv, sub));
      continue;
    }
    if (isObject(cur)) setOrDelete(orig, key, mergeMap(cur, pv as JsonObject, sub));
    else if (Array.isArray(cur)) orig[key] = mergeListField(cur, pv as unknown[], sub);
    else put(orig, key, pv);
  }
  return orig;
}

function setOrDelete(o: JsonObject, k: string, v: unknown): void {
  if (v === undefined) delete o[k];
  else put(o, k, v);
}

/** The value a patch value produces where the object has nothing (directives and nulls removed). */
function fromPatch(v: unknown, schema: Sch): unknown {
  if (isObject(v)) return mergeMap(undefined, v, schema);
  if (Array.isArray(v)) return fromPatchList(v, schema);
  return v;
}

function fromPatchList(list: unknown[], schema: Sch): unknown[] {
  const items = itemSchema(schema);
  const out: unknown[] = [];
  for (const item of list) {
    if (isObject(item) && has(item, DIRECTIVE)) {
      if (item[DIRECTIVE] === 'delete' || item[DIRECTIVE] === 'replace') continue;
      if (item[DIRECTIVE] !== 'merge') throw new PatchError(`unknown patch type: ${show(item[DIRECTIVE])} in map: ${show(item)}`);
      delete item[DIRECTIVE];
      if (Object.keys(item).length === 0) continue;
    }
    const v = fromPatch(item, items);
    if (v !== undefined) out.push(v);
  }
  return out;
}

function applyRetainKeys(orig: JsonObject, patch: JsonObject): void {
  if (!has(patch, RETAIN_KEYS)) return;
  const list = patch[RETAIN_KEYS];
  delete patch[RETAIN_KEYS];
  if (!Array.isArray(list)) throw new PatchError(ERR_RETAIN_KEYS, 400);
  const keep = new Set(list.filter((k): k is string => typeof k === 'string'));
  for (const [k, v] of Object.entries(patch)) {
    if (v === null || k.startsWith(DELETE_PRIMITIVE) || k.startsWith(SET_ORDER)) continue;
    if (!keep.has(k)) throw new PatchError(ERR_RETAIN_KEYS, 400);
  }
  for (const k of Object.keys(orig)) if (!keep.has(k)) delete orig[k];
}

/** Process every $setElementOrder/<field> directive of `patch` together with its list. */
function applySetElementOrder(orig: JsonObject, patch: JsonObject, schema: Sch): void {
  for (const key of Object.keys(patch)) {
    if (!key.startsWith(SET_ORDER)) continue;
    const order = patch[key];
    delete patch[key];
    if (!Array.isArray(order)) throw new PatchError(ERR_SET_ORDER, 400);
    const field = extractKey(key, SET_ORDER, ERR_SET_ORDER);

    const origList = has(orig, field) && Array.isArray(orig[field]) ? (orig[field] as unknown[]) : undefined;
    const foundPatch = has(patch, field) && patch[field] !== null;
    const patchList = foundPatch ? patch[field] : undefined;
    if (foundPatch && !Array.isArray(patchList)) throw new PatchError(ERR_SET_ORDER, 400);
    const pl = (patchList as unknown[] | undefined) ?? [];

    const sub = fieldSchema(schema, field);
    const strategy = listStrategy(sub);
    const kind = elementKind(origList ?? [], pl, order);
    const mergeKey = kind === 'map' ? strategy.mergeKey : undefined;
    if (kind === 'map' && !mergeKey) continue; // nothing to order by: leave the list to the main loop
    validatePatchWithSetOrderList(pl, order, mergeKey);

    let merged: unknown[];
    if (origList && !foundPatch) merged = origList;
    else if (!origList && foundPatch) merged = fromPatchList(pl, sub);
    else if (origList && foundPatch) merged = mergeListField(origList, pl, sub);
    else continue;

    const inOrder: unknown[] = [];
    const serverOnly: unknown[] = [];
    for (const item of merged) (indexIn(order, item, mergeKey) >= 0 ? inOrder : serverOnly).push(item);
    orig[field] = normalizeElementOrder(inOrder, serverOnly, order, origList ?? [], mergeKey);
    delete patch[field];
  }
}

/**
 * The items of the patch list must appear in the $setElementOrder list, in the
 * same relative order (deletions and other directives are ignored).
 */
function validatePatchWithSetOrderList(patchList: unknown[], order: unknown[], mergeKey: string | undefined): void {
  if (order.length === 0 || patchList.length === 0) return;
  const items = mergeKey ? patchList.filter((i) => !(isObject(i) && i[DIRECTIVE] === 'delete')) : patchList;
  let p = 0;
  let s = 0;
  while (p < items.length && s < order.length) {
    if (isObject(items[p]) && has(items[p] as JsonObject, DIRECTIVE)) {
      p++;
      continue;
    }
    if (mergeKey) {
      if (!isObject(items[p]) || !has(items[p] as JsonObject, mergeKey)) throw noMergeKey(items[p], mergeKey);
      if (!isObject(order[s]) || !has(order[s] as JsonObject, mergeKey)) throw noMergeKey(order[s], mergeKey);
    }
    if (sameIdentity(items[p], order[s], mergeKey)) p++;
    s++;
  }
  if (p < items.length) {
    throw new PatchError(`the order in patch list:\n${show(patchList)}\n doesn't match ${SET_ORDER} list:\n${show(order)}`);
  }
}

/** Merge a patch list into a live list according to the field's patch strategy. */
function mergeListField(cur: unknown[], patch: unknown[], schema: Sch): unknown[] {
  const strategy = listStrategy(schema);
  if (!strategy.merge) return fromPatchList(patch, schema);
  return mergeSlice(cur, patch, schema, strategy.mergeKey);
}

function mergeSlice(original: unknown[], patch: unknown[], schema: Sch, mergeKey: string | undefined): unknown[] {
  if (original.length === 0 && patch.length === 0) return original;
  const kind = elementKind(original, patch);
  let merged: unknown[];
  let orig = original;
  let items = patch;
  if (kind === 'scalar') {
    merged = dedupe([...original, ...patch]);
    mergeKey = undefined;
  } else {
    if (!mergeKey) throw new PatchError('cannot merge lists without merge key for type map');
    [orig, items] = mergeSliceWithSpecialElements(original, patch, mergeKey, schema);
    merged = mergeSliceWithoutSpecialElements(orig, items, mergeKey, itemSchema(schema));
  }
  const patchItems: unknown[] = [];
  const serverOnly: unknown[] = [];
  for (const item of merged) (indexIn(items, item, mergeKey) >= 0 ? patchItems : serverOnly).push(item);
  return normalizeElementOrder(patchItems, serverOnly, items, orig, mergeKey);
}

/**
 * Handle the list items carrying a $patch directive: deletions remove live
 * items, "replace" makes the remaining patch items the whole list.
 * Returns the (possibly reduced) live list and the patch items left to merge.
 */
function mergeSliceWithSpecialElements(
  original: unknown[], patch: unknown[], mergeKey: string, schema: Sch,
): [unknown[], unknown[]] {
  let replace = false;
  const rest: unknown[] = [];
  let orig = original;
  for (const item of patch) {
    const m = item as JsonObject;
    if (!has(m, DIRECTIVE)) {
      rest.push(m);
      continue;
    }
    switch (m[DIRECTIVE]) {
      case 'delete': {
        if (!has(m, mergeKey)) throw noMergeKey(m, mergeKey);
        const key = m[mergeKey];
        orig = orig.filter((o) => !(isObject(o) && sameIdentity(o[mergeKey], key, undefined)));
        break;
      }
      case 'replace':
        replace = true;
        break;
      case 'merge': {
        const { [DIRECTIVE]: _, ...restOfItem } = m;
        if (Object.keys(restOfItem).length > 0) rest.push(restOfItem);
        break;
      }
      default:
        throw new PatchError(`unknown patch type: ${show(m[DIRECTIVE])} in map: ${show(m)}`);
    }
  }
  if (replace) return [fromPatchList(rest, schema), []];
  return [orig, rest];
}

function mergeSliceWithoutSpecialElements(
  original: unknown[], patch: unknown[], mergeKey: string, items: Sch,
): unknown[] {
  const out = [...original];
  for (const item of patch) {
    const m = item as JsonObject;
    if (!has(m, mergeKey)) throw noMergeKey(m, mergeKey);
    const key = m[mergeKey];
    const i = out.findIndex((o) => isObject(o) && has(o, mergeKey) && sameIdentity(o[mergeKey], key, undefined));
    if (i >= 0) {
      const r = mergeMap(out[i] as JsonObject, m, items);
      if (r === undefined) out.splice(i, 1);
      else out[i] = r;
    } else {
      const r = fromPatch(m, items);
      if (r !== undefined) out.push(r);
    }
  }
  return out;
}

function dedupe(list: unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const v of list) if (indexIn(out, v, undefined) < 0) out.push(v);
  return out;
}

function deleteFromSlice(cur: unknown[], toDelete: unknown[]): unknown[] {
  return cur.filter((v) => indexIn(toDelete, v, undefined) < 0);
}

/** Stable sort of `list` by the position of each item in `order` (unknown items keep their place). */
function sortByOrder(list: unknown[], order: unknown[], mergeKey: string | undefined): unknown[] {
  return list
    .map((item, i) => ({ item, i, pos: indexIn(order, item, mergeKey) }))
    .sort((a, b) => (a.pos >= 0 && b.pos >= 0 ? a.pos - b.pos : a.i - b.i))
    .map((e) => e.item);
}

/**
 * Sort the patch items by `patchOrder` and the server-only items by
 * `serverOrder`, then interleave them: a server-only item goes before a patch
 * item only when both are live and it comes first in the live list.
 */
function normalizeElementOrder(
  patchItems: unknown[], serverOnly: unknown[], patchOrder: unknown[], serverOrder: unknown[], mergeKey: string | undefined,
): unknown[] {
  const right = sortByOrder(patchItems, patchOrder, mergeKey);
  const left = sortByOrder(serverOnly, serverOrder, mergeKey);
  const out: unknown[] = [];
  let i = 0;
  let j = 0;
  while (i < left.length || j < right.length) {
    if (i >= left.length) out.push(right[j++]);
    else if (j >= right.length) out.push(left[i++]);
    else {
      const li = indexIn(serverOrder, left[i], mergeKey);
      const ri = indexIn(serverOrder, right[j], mergeKey);
      if (li >= 0 && ri >= 0 && li < ri) out.push(left[i++]);
      else out.push(right[j++]);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// two-way diff

/**
 * A strategic merge patch that turns `original` into `modified` (what
 * `kubectl edit`/`kubectl patch` compute client-side): changed and added fields,
 * null for removed map keys, merge lists as item patches with
 * `$patch: delete` / `$deleteFromPrimitiveList` for removals and
 * `$setElementOrder` to keep the order. Other lists are sent whole.
 */
export function createTwoWayMergePatch(original: unknown, modified: unknown, schema: Schema | undefined): JsonObject {
  const o = isObject(original) ? original : {};
  const m = isObject(modified) ? modified : {};
  return diffMaps(o, m, schema, false);
}

function diffMaps(original: JsonObject, modified: JsonObject, schema: Sch, retainKeys: boolean): JsonObject {
  const patch: JsonObject = {};
  for (const key of Object.keys(modified)) {
    const mv = modified[key];
    if (!has(original, key)) {
      put(patch, key, clone(mv));
      continue;
    }
    const ov = original[key];
    if (kindOf(ov) !== kindOf(mv) || ov === null || mv === null) {
      if (!jsonEqual(ov, mv)) put(patch, key, clone(mv));
      continue;
    }
    const sub = fieldSchema(schema, key);
    if (isObject(ov)) {
      const d = diffMaps(ov, mv as JsonObject, sub, false);
      if (Object.keys(d).length > 0) put(patch, key, d);
    } else if (Array.isArray(ov)) {
      diffSliceField(key, ov, mv as unknown[], sub, patch);
    } else if (ov !== mv) {
      put(patch, key, mv);
    }
  }
  for (const key of Object.keys(original)) if (!has(modified, key)) put(patch, key, null);
  if (retainKeys && Object.keys(patch).length > 0) {
    patch[RETAIN_KEYS] = Object.keys(modified).filter((k) => modified[k] !== null).sort();
  }
  return patch;
}

function diffSliceField(key: string, original: unknown[], modified: unknown[], schema: Sch, patch: JsonObject): void {
  const strategy = listStrategy(schema);
  if (!strategy.merge) {
    if (!jsonEqual(original, modified)) put(patch, key, clone(modified));
    return;
  }
  if (original.length === 0) {
    if (modified.length > 0) put(patch, key, clone(modified));
    return;
  }
  const kind = elementKind(original, modified);
  if (kind === 'map') {
    const mergeKey = strategy.mergeKey;
    if (!mergeKey) throw new PatchError('cannot merge lists without merge key for type map');
    for (const item of [...original, ...modified]) if (!has(item as JsonObject, mergeKey)) throw noMergeKey(item, mergeKey);
    const items = itemSchema(schema);
    const changes: unknown[] = [];
    for (const m of modified as JsonObject[]) {
      const o = original.find((x) => sameIdentity(x, m, mergeKey)) as JsonObject | undefined;
      if (!o) {
        changes.push(clone(m));
        continue;
      }
      const d = diffMaps(o, m, items, strategy.retainKeys);
      if (Object.keys(d).length > 0) changes.push({ ...d, [mergeKey]: m[mergeKey] });
    }
    const deletions = (original as JsonObject[])
      .filter((o) => indexIn(modified, o, mergeKey) < 0)
      .map((o) => ({ [DIRECTIVE]: 'delete', [mergeKey]: o[mergeKey] }));
    const orderSame = original.length === modified.length && original.every((o, i) => sameIdentity(o, modified[i], mergeKey));
    const list = [...changes, ...deletions];
    if (list.length > 0) put(patch, key, list);
    if ((list.length > 0 || !orderSame) && modified.length > 0) {
      patch[`${SET_ORDER}/${key}`] = (modified as JsonObject[]).map((m) => ({ [mergeKey]: m[mergeKey] }));
    }
  } else {
    const additions = dedupe(modified.filter((v) => indexIn(original, v, undefined) < 0));
    const deletions = dedupe(original.filter((v) => indexIn(modified, v, undefined) < 0));
    if (additions.length > 0) put(patch, key, additions);
    if (deletions.length > 0) patch[`${DELETE_PRIMITIVE}/${key}`] = deletions;
    if ((deletions.length > 0 || !jsonEqual(original, modified)) && modified.length > 0) {
      patch[`${SET_ORDER}/${key}`] = clone(modified);
    }
  }
}
