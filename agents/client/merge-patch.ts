// Client-side apply's patch: a three-way JSON merge patch (RFC 7386) from
// the last-applied configuration (what this client applied before), the
// manifest being applied now, and the live object — kubectl's
// CreateThreeWayJSONMergePatch, with one refinement.
//
//  - Fields the manifest had last time and no longer has are deleted (null).
//  - Fields the manifest sets that differ from the live object are set.
//  - Fields nobody asked about (server defaults, status, other writers'
//    additions) are left alone.
//
// JSON merge patch replaces lists whole. Comparing a manifest's list with the
// live one literally would always differ once the server has defaulted fields
// inside the elements (containers get imagePullPolicy, ports get protocol…),
// so every apply would report "configured". A list is therefore considered
// unchanged when it has as many elements as the live one and each manifest
// element is contained in its live counterpart — unless the manifest's list
// itself changed since the last apply, in which case it is sent whole so that
// removals inside elements take effect.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Unset, null, {} and [] mean the same to the API server (apimachinery's semantic equality). */
const isEmpty = (v: unknown): boolean =>
  v === undefined || v === null || (Array.isArray(v) && v.length === 0) || (isObj(v) && Object.keys(v).length === 0);

/** Exact structural equality (key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => jsonEqual(a[k], b[k]));
  }
  return false;
}

/** Equality where unset, null, {} and [] are all the same (two encodings of one manifest). */
export function semanticEqual(a: unknown, b: unknown): boolean {
  if (isEmpty(a) && isEmpty(b)) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => semanticEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].every((k) => semanticEqual(a[k], b[k]));
  }
  return a === b;
}

/** Whether everything `want` says is already true of `have` (`have` may hold more). */
export function contains(have: unknown, want: unknown): boolean {
  if (isEmpty(want)) return isEmpty(have) || (isObj(want) && isObj(have)) || (Array.isArray(want) && Array.isArray(have) && !have.length);
  if (isObj(want)) {
    if (!isObj(have)) return false;
    return Object.entries(want).every(([k, v]) => (v === null ? have[k] === undefined || have[k] === null : contains(have[k], v)));
  }
  if (Array.isArray(want)) {
    return Array.isArray(have) && have.length === want.length && want.every((x, i) => contains(have[i], x));
  }
  return want === have;
}

/**
 * The merge patch that takes `current` to what `modified` asks for, deleting
 * what `original` (the last-applied configuration; undefined when unknown)
 * had and `modified` dropped. Returns {} when nothing needs to change.
 */
export function threeWayMergePatch(original: Obj | undefined, modified: Obj, current: Obj): Obj {
  const patch: Obj = {};
  if (original) {
    for (const k of Object.keys(original)) {
      if (modified[k] !== undefined || original[k] === undefined) continue;
      // Only delete what is there: a no-op deletion would make an unchanged object look changed.
      if (current[k] !== undefined && current[k] !== null) patch[k] = null;
    }
  }
  for (const [k, want] of Object.entries(modified)) {
    if (want === undefined) continue;
    const have = current[k];
    const before = original?.[k];
    if (want === null) {
      // An explicit null in a manifest asks for the field to be unset.
      if (have !== undefined && have !== null) patch[k] = null;
      continue;
    }
    if (isObj(want) && isObj(have)) {
      const sub = threeWayMergePatch(isObj(before) ? before : undefined, want, have);
      if (Object.keys(sub).length) patch[k] = sub;
      continue;
    }
    if (Array.isArray(want)) {
      const manifestChanged = before !== undefined && !jsonEqual(before, want);
      if (manifestChanged || !contains(have, want)) patch[k] = want;
      continue;
    }
    if (isEmpty(want) && isEmpty(have)) continue;
    if (!jsonEqual(want, have)) patch[k] = want;
  }
  return patch;
}
