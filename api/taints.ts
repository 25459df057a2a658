// Taints and tolerations (k8s.io/api/core/v1 toleration.go and
// component-helpers' taint helpers): whether a toleration tolerates a taint,
// whether a pod tolerates a node's taints, and for how long. Shared by the
// node lifecycle (taint eviction) controller and the scheduler.

export type TaintEffect = 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';

export interface Taint {
  key: string;
  value?: string;
  effect: TaintEffect | string;
  /** RFC 3339; set for NoExecute taints when added. */
  timeAdded?: string;
}

export interface Toleration {
  key?: string;
  /** 'Equal' (the default) or 'Exists'. */
  operator?: string;
  value?: string;
  /** Empty: every effect. */
  effect?: string;
  /** NoExecute only: how long the pod stays bound after the taint appears; unset: forever. */
  tolerationSeconds?: number | null;
}

/** The well-known taints the node lifecycle controller manages. */
export const TAINT_NODE_NOT_READY = 'node.kubernetes.io/not-ready';
export const TAINT_NODE_UNREACHABLE = 'node.kubernetes.io/unreachable';
export const TAINT_NODE_UNSCHEDULABLE = 'node.kubernetes.io/unschedulable';

/**
 * Whether `t` tolerates `taint`: the effects match (an empty toleration
 * effect matches all), the keys match (an empty key with Exists matches all
 * keys), and for Equal (or no operator) the values are equal.
 */
export function toleratesTaint(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  switch (t.operator ?? 'Equal') {
    case 'Exists': return true;
    case 'Equal': case '': return (t.value ?? '') === (taint.value ?? '');
    default: return false;
  }
}

export function tolerationsTolerateTaint(ts: readonly Toleration[] | undefined, taint: Taint): boolean {
  return (ts ?? []).some((t) => toleratesTaint(t, taint));
}

/** The first taint (passing `filter`) that no toleration tolerates; the scheduler's TaintToleration filter. */
export function findUntoleratedTaint(taints: readonly Taint[] | undefined, ts: readonly Toleration[] | undefined, filter: (t: Taint) => boolean = () => true): Taint | undefined {
  return (taints ?? []).find((taint) => filter(taint) && !tolerationsTolerateTaint(ts, taint));
}

/**
 * When a pod on a node with these NoExecute taints must go (ms since the
 * epoch), or `Infinity` when it may stay. As Kubernetes' taint eviction:
 * each taint is matched by the first toleration that tolerates it; an
 * untolerated taint means now; a matching toleration without
 * tolerationSeconds lets the pod stay; otherwise the pod goes
 * tolerationSeconds (<= 0 counts as 0) after the taint was added (`now` if
 * the taint does not say when), the earliest of these.
 */
export function evictionDeadline(taints: readonly Taint[] | undefined, ts: readonly Toleration[] | undefined, now: number): number {
  let deadline = Infinity;
  for (const taint of (taints ?? []).filter((x) => x.effect === 'NoExecute')) {
    const t = (ts ?? []).find((x) => toleratesTaint(x, taint));
    if (!t) return now;
    if (typeof t.tolerationSeconds !== 'number') continue;
    const added = taint.timeAdded ? Date.parse(taint.timeAdded) : NaN;
    const from = Number.isFinite(added) ? Math.min(added, now) : now;
    deadline = Math.min(deadline, from + Math.max(0, t.tolerationSeconds) * 1000);
  }
  return deadline;
}
