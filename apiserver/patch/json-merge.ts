// RFC 7386 JSON merge patch (Content-Type: application/merge-patch+json).
//
//   MergePatch(Target, Patch):
//     if Patch is an Object:
//       if Target is not an Object: Target = {}
//       for each Name/Value pair in Patch:
//         if Value is null: remove Name from Target
//         else: Target[Name] = MergePatch(Target[Name], Value)
//       return Target
//     else:
//       return Patch
//
// Arrays are values like any other: a patch array replaces the target array.
// Neither argument is mutated; the result shares no structure with them.

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Own-property assignment that is safe for a "__proto__" key coming from JSON. */
function put(o: JsonObject, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function clone(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clone);
  if (isObject(v)) {
    const out: JsonObject = {};
    for (const k of Object.keys(v)) put(out, k, clone(v[k]));
    return out;
  }
  return v;
}

/** Apply an RFC 7386 merge patch to `target` and return the result. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? (clone(target) as JsonObject) : {};
  mergeInto(out, patch);
  return out;
}

function mergeInto(target: JsonObject, patch: JsonObject): void {
  for (const k of Object.keys(patch)) {
    const pv = patch[k];
    if (pv === null) {
      delete target[k];
    } else if (isObject(pv)) {
      const cur = Object.prototype.hasOwnProperty.call(target, k) ? target[k] : undefined;
      const next: JsonObject = isObject(cur) ? cur : {};
      mergeInto(next, pv);
      put(target, k, next);
    } else {
      put(target, k, clone(pv));
    }
  }
}
