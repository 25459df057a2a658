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
import { isObject, put, clone, type JsonObject } from './json.ts';





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
