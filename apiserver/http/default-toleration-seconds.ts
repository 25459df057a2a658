// The DefaultTolerationSeconds admission plugin: every pod that does not
// already tolerate the node lifecycle controller's NoExecute taints
// (node.kubernetes.io/not-ready and node.kubernetes.io/unreachable) gets a
// toleration of each for a bounded time (300 s by default), so its pods
// leave a failed node after five minutes instead of never (no toleration
// would mean "evict at once", one that tolerates forever "never").
import type { KubeObject } from '../../api/schema/types.ts';

export const TAINT_NOT_READY = 'node.kubernetes.io/not-ready';
export const TAINT_UNREACHABLE = 'node.kubernetes.io/unreachable';

export interface DefaultTolerationSecondsOptions {
  /** --default-not-ready-toleration-seconds (300). */
  notReadySeconds: number;
  /** --default-unreachable-toleration-seconds (300). */
  unreachableSeconds: number;
}

export const DEFAULT_TOLERATION_SECONDS: DefaultTolerationSecondsOptions = { notReadySeconds: 300, unreachableSeconds: 300 };

interface Toleration { key?: string; operator?: string; effect?: string; tolerationSeconds?: number }

/** Whether some toleration covers `key`:NoExecute (an empty key or effect is a wildcard, as the plugin reads them). */
const covers = (ts: Toleration[], key: string) =>
  ts.some((t) => (!t.key || t.key === key) && (!t.effect || t.effect === 'NoExecute'));

/** Adds the missing default tolerations to a pod (create and update of pods proper, not subresources). */
export function addDefaultTolerations(pod: KubeObject, o: DefaultTolerationSecondsOptions): void {
  const spec = (pod.spec ??= {}) as { tolerations?: Toleration[] };
  const ts = Array.isArray(spec.tolerations) ? spec.tolerations : [];
  const add: Toleration[] = [];
  if (!covers(ts, TAINT_NOT_READY)) add.push({ key: TAINT_NOT_READY, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: o.notReadySeconds });
  if (!covers(ts, TAINT_UNREACHABLE)) add.push({ key: TAINT_UNREACHABLE, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: o.unreachableSeconds });
  if (add.length) spec.tolerations = [...ts, ...add];
}

/** Parses a --default-*-toleration-seconds value: a whole number of seconds >= 0. */
export function parseTolerationSeconds(v: string, flag: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw new Error(`${flag}: expected a whole number of seconds >= 0, got "${v}"`);
  return n;
}
