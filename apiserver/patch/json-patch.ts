// RFC 6902 JSON patch (Content-Type: application/json-patch+json), with the
// behaviour and error messages of the library Kubernetes uses
// (github.com/evanphx/json-patch), e.g.
//
//   add operation does not apply: doc is missing path: "/spec/x": missing value
//   testing value /spec/replicas failed: test failed
//   Unable to remove nonexistent key: foo: missing value
//   Unable to access invalid index: 7: invalid index referenced
//   Unexpected kind: frobnicate: unknown object type
//
// Like Kubernetes: array indexes may be negative (-1 is the last element), a
// "test" of an absent path against null succeeds, and at most 10000 operations
// are accepted. Beyond Kubernetes (as RFC 6902 allows): the root pointer ""
// works for add/replace/test/copy/move sources.
//
// The input document is never mutated. Every failure throws a PatchError: 400
// when the patch is not a JSON array of objects, 413 when it has too many
// operations, 422 when an operation is malformed or does not apply.

import { PatchError } from './errors.ts';
import { isObject, has, put, clone, type JsonObject } from './json.ts';

export interface JsonPatchOperation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

/** Kubernetes' limit on the number of operations in one JSON patch. */
export const MAX_JSON_PATCH_OPERATIONS = 10000;






/** Structural equality of JSON values (object key order is irrelevant). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ak = Object.keys(a).filter((k) => a[k] !== undefined);
    const bk = Object.keys(b).filter((k) => b[k] !== undefined);
    if (ak.length !== bk.length) return false;
    for (const k of ak) if (!has(b, k) || !jsonEqual(a[k], b[k])) return false;
    return true;
  }
  return false;
}

/** Split an RFC 6901 JSON pointer into unescaped reference tokens ("" → []). */
export function parseJsonPointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) {
    throw new PatchError(`invalid JSON pointer ${JSON.stringify(pointer)}: must be empty or start with "/"`);
  }
  return pointer.slice(1).split('/').map((tok) => {
    if (/~(?![01])/.test(tok)) {
      throw new PatchError(`invalid JSON pointer ${JSON.stringify(pointer)}: "~" must be followed by "0" or "1"`);
    }
    return tok.replace(/~1/g, '/').replace(/~0/g, '~');
  });
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'bool';
  return typeof v;
}

/** Parse an array index the way Go's strconv.Atoi does; undefined if not an integer. */
function parseIndex(tok: string): number | undefined {
  if (!/^[+-]?\d+$/.test(tok)) return undefined;
  const n = Number(tok);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Resolve an existing array element index (negative counts from the end); undefined if out of range. */
function elementIndex(arr: unknown[], tok: string): number | undefined {
  let i = parseIndex(tok);
  if (i === undefined) return undefined;
  if (i < 0) i += arr.length;
  return i >= 0 && i < arr.length ? i : undefined;
}

interface Located { found: boolean; value?: unknown }

function get(doc: unknown, tokens: string[]): Located {
  let cur = doc;
  for (const tok of tokens) {
    if (Array.isArray(cur)) {
      const i = elementIndex(cur, tok);
      if (i === undefined) return { found: false };
      cur = cur[i];
    } else if (isObject(cur)) {
      if (!has(cur, tok)) return { found: false };
      cur = cur[tok];
    } else {
      return { found: false };
    }
  }
  return { found: true, value: cur };
}

function missing(msg: string): PatchError {
  return new PatchError(`${msg}: missing value`);
}

function invalidIndex(tok: string): PatchError {
  return new PatchError(`Unable to access invalid index: ${tok}: invalid index referenced`);
}

class Applier {
  constructor(public doc: unknown) {}

  /** The container holding the last token of `tokens`, or undefined when the path to it is missing. */
  private parent(tokens: string[]): JsonObject | unknown[] | undefined {
    const loc = get(this.doc, tokens.slice(0, -1));
    if (!loc.found) return undefined;
    return Array.isArray(loc.value) || isObject(loc.value) ? loc.value : undefined;
  }

  add(path: string, value: unknown, errPrefix = 'add operation does not apply: doc is missing path'): void {
    const tokens = parseJsonPointer(path);
    if (tokens.length === 0) {
      this.doc = value;
      return;
    }
    const con = this.parent(tokens);
    if (con === undefined) throw missing(`${errPrefix}: ${JSON.stringify(path)}`);
    const key = tokens[tokens.length - 1];
    if (Array.isArray(con)) {
      if (key === '-') {
        con.push(value);
        return;
      }
      let i = parseIndex(key);
      if (i === undefined || i > con.length || i < -con.length) throw invalidIndex(key);
      if (i < 0) i += con.length;
      con.splice(i, 0, value);
    } else {
      put(con, key, value);
    }
  }

  remove(path: string, op = 'remove'): unknown {
    const tokens = parseJsonPointer(path);
    const con = tokens.length === 0 ? undefined : this.parent(tokens);
    if (con === undefined) throw missing(`${op} operation does not apply: doc is missing path: ${JSON.stringify(path)}`);
    const key = tokens[tokens.length - 1];
    if (Array.isArray(con)) {
      const i = elementIndex(con, key);
      if (i === undefined) throw invalidIndex(key);
      return con.splice(i, 1)[0];
    }
    if (!has(con, key)) throw missing(`Unable to remove nonexistent key: ${key}`);
    const v = con[key];
    delete con[key];
    return v;
  }

  replace(path: string, value: unknown): void {
    const tokens = parseJsonPointer(path);
    if (tokens.length === 0) {
      this.doc = value;
      return;
    }
    const con = this.parent(tokens);
    if (con === undefined) throw missing(`replace operation does not apply: doc is missing path: ${path}`);
    const key = tokens[tokens.length - 1];
    if (Array.isArray(con)) {
      const i = elementIndex(con, key);
      if (i === undefined) throw invalidIndex(key);
      con[i] = value;
    } else {
      if (!has(con, key)) throw missing(`replace operation does not apply: doc is missing key: ${path}`);
      put(con, key, value);
    }
  }

  move(from: string, path: string): void {
    const src = get(this.doc, parseJsonPointer(from));
    if (!src.found) throw missing(`move operation does not apply: doc is missing from path: ${from}`);
    if (from === path) return;
    if (path.startsWith(from + '/')) {
      throw new PatchError(`move operation does not apply: cannot move ${from} into its own child ${path}`);
    }
    const destTokens = parseJsonPointer(path);
    if (destTokens.length > 0 && this.parent(destTokens) === undefined) {
      throw missing(`move operation does not apply: doc is missing destination path: ${path}`);
    }
    const v = this.remove(from, 'move');
    this.add(path, v, 'move operation does not apply: doc is missing destination path');
  }

  copy(from: string, path: string): void {
    const src = get(this.doc, parseJsonPointer(from));
    if (!src.found) throw missing(`copy operation does not apply: doc is missing from path: ${from}`);
    this.add(path, clone(src.value), 'copy operation does not apply: doc is missing destination path');
  }

  test(path: string, value: unknown): void {
    const tokens = parseJsonPointer(path);
    if (tokens.length > 0 && this.parent(tokens) === undefined) {
      throw missing(`test operation does not apply: is missing path: ${path}`);
    }
    const loc = get(this.doc, tokens);
    // Like evanphx/json-patch: an absent member tests equal to null.
    const actual = loc.found ? loc.value : null;
    if (!jsonEqual(actual, value)) throw new PatchError(`testing value ${path} failed: test failed`);
  }
}

function stringMember(op: JsonObject, name: 'path' | 'from', kind: string): string {
  const v = op[name];
  if (v === undefined || v === null) {
    throw missing(name === 'path' ? `${kind} operation missing path field` : `${kind} operation missing from field`);
  }
  if (typeof v !== 'string') {
    throw new PatchError(`json: cannot unmarshal ${typeName(v)} into Go value of type string (${kind} operation, "${name}")`);
  }
  return v;
}

/** Check the shape of a JSON patch document and return its operations. */
export function validateJsonPatch(ops: unknown): JsonPatchOperation[] {
  if (!Array.isArray(ops)) {
    throw new PatchError(`json: cannot unmarshal ${typeName(ops)} into Go value of type jsonpatch.Patch`, 400);
  }
  if (ops.length > MAX_JSON_PATCH_OPERATIONS) {
    throw new PatchError(
      `The allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got: ${ops.length}`, 413);
  }
  return ops.map((raw): JsonPatchOperation => {
    if (!isObject(raw)) {
      throw new PatchError(`json: cannot unmarshal ${typeName(raw)} into Go value of type jsonpatch.Operation`, 400);
    }
    const kind = typeof raw.op === 'string' ? raw.op : 'unknown';
    switch (kind) {
      case 'add':
      case 'replace':
      case 'test': {
        const path = stringMember(raw, 'path', kind);
        if (!has(raw, 'value')) throw missing(`${kind} operation missing value field`);
        return { op: kind, path, value: raw.value };
      }
      case 'remove':
        return { op: kind, path: stringMember(raw, 'path', kind) };
      case 'move':
      case 'copy':
        return { op: kind, from: stringMember(raw, 'from', kind), path: stringMember(raw, 'path', kind) };
      default:
        throw new PatchError(`Unexpected kind: ${kind}: unknown object type`);
    }
  });
}

/** Apply an RFC 6902 JSON patch to `doc` and return the patched copy. */
export function applyJsonPatch(doc: unknown, ops: unknown): unknown {
  const operations = validateJsonPatch(ops);
  const a = new Applier(clone(doc));
  for (const o of operations) {
    switch (o.op) {
      case 'add': a.add(o.path, clone(o.value)); break;
      case 'remove': a.remove(o.path); break;
      case 'replace': a.replace(o.path, clone(o.value)); break;
      case 'move': a.move(o.from!, o.path); break;
      case 'copy': a.copy(o.from!, o.path); break;
      case 'test': a.test(o.path, o.value); break;
    }
  }
  return a.doc;
}
