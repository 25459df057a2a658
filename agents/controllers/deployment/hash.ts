// The pod-template hash that names a Deployment's ReplicaSets and labels
// their pods (Kubernetes' ComputeHash): a 32-bit FNV-1a of the template,
// with the Deployment's collisionCount mixed in so that a name collision
// gives a new name, encoded in Kubernetes' "safe" alphabet (no vowels, so no
// words). Kubernetes hashes Go's printed struct; this hashes canonical JSON
// (keys sorted), so the values differ from Kubernetes' but are stable and
// deterministic, which is all kubectl and the controller rely on.
import type { PodTemplate } from '../../informer/types.ts';

export const POD_TEMPLATE_HASH = 'pod-template-hash';

const SAFE = 'bcdfghjklmnpqrstvwxz2456789';

/** JSON with object keys sorted (array order kept). */
export function canonicalJSON(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, (x as Record<string, unknown>)[k]]))
    : x));
}

function fnv1a(bytes: Uint8Array, h = 0x811c9dc5): number {
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * A template as Go's decoding and Kubernetes' semantic equality see it: no
 * nulls (kubectl sends a template's `creationTimestamp: null`), and empty
 * maps and lists the same as absent ones.
 */
export function semantic(v: unknown): unknown {
  if (Array.isArray(v)) {
    const a = v.map(semantic);
    return a.length ? a : undefined;
  }
  if (v && typeof v === 'object') {
    const o = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, semantic(x)]).filter(([, x]) => x !== undefined && x !== null));
    return Object.keys(o).length ? o : undefined;
  }
  return v === null ? undefined : v;
}

export function computeHash(template: PodTemplate, collisionCount?: number): string {
  let h = fnv1a(new TextEncoder().encode(canonicalJSON(semantic(template) ?? {})));
  if (collisionCount !== undefined && collisionCount !== null) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, collisionCount >>> 0, true);
    h = fnv1a(b, h);
  }
  return [...String(h)].map((c) => SAFE[c.charCodeAt(0) % SAFE.length]).join('');
}

function withoutHash(t: PodTemplate | undefined): PodTemplate {
  const c = structuredClone(t ?? {});
  if (c.metadata?.labels) delete c.metadata.labels[POD_TEMPLATE_HASH];
  return c;
}

/** Two templates are semantically the same apart from the pod-template-hash label (EqualIgnoreHash). */
export function equalIgnoreHash(a: PodTemplate | undefined, b: PodTemplate | undefined): boolean {
  return canonicalJSON(semantic(withoutHash(a)) ?? {}) === canonicalJSON(semantic(withoutHash(b)) ?? {});
}
