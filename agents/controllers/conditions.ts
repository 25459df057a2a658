// Conditions of workload status as Kubernetes' controllers write them: one
// per type, lastTransitionTime kept while the status does not change.
import type { Condition } from '../informer/types.ts';

/** RFC 3339 with seconds, as metav1.Time serializes. */
export const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

export function findCondition(conds: readonly Condition[] | undefined, type: string): Condition | undefined {
  return (conds ?? []).find((c) => c.type === type);
}

export const conditionTrue = (conds: readonly Condition[] | undefined, type: string): boolean => findCondition(conds, type)?.status === 'True';

/** `conds` with `type` set; the transition time changes only when the status does. */
export function setCondition(conds: readonly Condition[] | undefined, c: { type: string; status: string; reason?: string; message?: string }, now: number): Condition[] {
  const old = findCondition(conds, c.type);
  if (old && old.status === c.status && (old.reason ?? '') === (c.reason ?? '') && (old.message ?? '') === (c.message ?? '')) return [...(conds ?? [])];
  const out = (conds ?? []).filter((x) => x.type !== c.type);
  const t = rfc3339(now);
  const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : t;
  out.push({ type: c.type, status: c.status, lastProbeTime: t, lastTransitionTime, reason: c.reason ?? '', message: c.message ?? '' });
  return out;
}

/** JSON with sorted keys, so a stored status and a computed one compare equal whatever their key order. */
export const canonical = (v: unknown): string => JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
