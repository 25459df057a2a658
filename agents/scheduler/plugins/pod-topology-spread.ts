// PodTopologySpread. Each constraint counts the pods its selector matches
// (same namespace, not being deleted) per domain of its topologyKey, over
// the nodes that match the pod's node selector/affinity and carry every
// constraint's key. Filter (whenUnsatisfiable: DoNotSchedule): placing the
// pod in the node's domain must keep count + 1 − the smallest domain's count
// within maxSkew (the smallest counts as 0 while there are fewer domains
// than minDomains). Score (ScheduleAnyway, or kube-scheduler's system
// defaults for a pod without constraints that a Service, ReplicaSet or
// StatefulSet selects: hostname maxSkew 3, zone maxSkew 5): fewer matching
// pods in the node's domains is better, each constraint weighted by
// log(domains + 2).
import { type LabelRequirement, labelSelectorToRequirements, matchesLabels, newRequirement } from '../../../api/selectors.ts';
import { type ClusterView, type CycleState, type FilterPlugin, MAX_NODE_SCORE, type PreFilterPlugin, type PreScorePlugin, SKIP, type ScorePlugin, type Status, unresolvable, unschedulable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import type { PodInfo } from '../pod-info.ts';
import { podMatchesNodeSelectorAndAffinity } from './node-affinity.ts';

export const ERR_CONSTRAINTS = "node(s) didn't match pod topology spread constraints";
export const ERR_MISSING_LABEL = `${ERR_CONSTRAINTS} (missing required label)`;
export const HOSTNAME = 'kubernetes.io/hostname';
export const ZONE = 'topology.kubernetes.io/zone';

export interface Constraint {
  maxSkew: number;
  topologyKey: string;
  whenUnsatisfiable: 'DoNotSchedule' | 'ScheduleAnyway';
  selector: LabelRequirement[] | null;
  minDomains: number;
}

/** kube-scheduler's default system constraints (applied with the pod's owners' selector). */
export const SYSTEM_DEFAULT_CONSTRAINTS = [
  { topologyKey: HOSTNAME, maxSkew: 3, whenUnsatisfiable: 'ScheduleAnyway' as const },
  { topologyKey: ZONE, maxSkew: 5, whenUnsatisfiable: 'ScheduleAnyway' as const },
];

/** The pod's own constraints, matchLabelKeys folded into the selector. */
export function podConstraints(pod: PodInfo, when: Constraint['whenUnsatisfiable']): Constraint[] {
  const raw = ((pod.pod.spec as any)?.topologySpreadConstraints ?? []) as any[];
  return raw.filter((c) => c.whenUnsatisfiable === when).map((c) => {
    let selector: LabelRequirement[] | null;
    try {
      selector = labelSelectorToRequirements(c.labelSelector);
    } catch {
      selector = null;
    }
    if (selector) {
      for (const k of (c.matchLabelKeys ?? []) as string[]) {
        const v = pod.labels[k];
        if (v !== undefined) selector = [...selector, newRequirement(k, '=', [v])];
      }
    }
    return { maxSkew: c.maxSkew ?? 1, topologyKey: c.topologyKey ?? '', whenUnsatisfiable: when, selector, minDomains: c.minDomains ?? 1 };
  });
}

/**
 * kube-scheduler's DefaultSelector: the selectors of the Services selecting
 * the pod and of its controlling ReplicaSet/StatefulSet, ANDed; null when
 * none (no default spreading).
 */
export function defaultSelector(pod: PodInfo, view: ClusterView): LabelRequirement[] | null {
  const reqs: LabelRequirement[] = [];
  let any = false;
  for (const svc of view.list('services', pod.namespace)) {
    const sel = (svc as any).spec?.selector as Record<string, string> | undefined;
    if (!sel || !Object.keys(sel).length) continue;
    if (!Object.entries(sel).every(([k, v]) => pod.labels[k] === v)) continue;
    for (const [k, v] of Object.entries(sel)) reqs.push(newRequirement(k, '=', [v]));
    any = true;
  }
  const ref = (pod.pod.metadata.ownerReferences ?? []).find((r) => r.controller);
  const resource = ref?.kind === 'ReplicaSet' ? 'replicasets' : ref?.kind === 'StatefulSet' ? 'statefulsets' : undefined;
  if (ref && resource) {
    const owner = view.get(resource, pod.namespace, ref.name) as any;
    try {
      const sel = labelSelectorToRequirements(owner?.spec?.selector);
      if (sel?.length) {
        reqs.push(...sel);
        any = true;
      }
    } catch {
      /* an invalid selector selects nothing to spread against */
    }
  }
  return any ? reqs : null;
}

function countMatching(node: NodeInfo, selector: LabelRequirement[] | null, namespace: string): number {
  if (selector === null) return 0;
  let n = 0;
  for (const p of node.pods.values()) {
    if (p.namespace !== namespace || p.pod.metadata.deletionTimestamp) continue;
    if (matchesLabels(selector, p.labels)) n++;
  }
  return n;
}

const hasAllKeys = (node: NodeInfo, cs: Constraint[]) => cs.every((c) => node.labels[c.topologyKey] !== undefined);

interface FilterState {
  constraints: Constraint[];
  /** Per constraint: domain value → matching pods. */
  counts: Map<string, number>[];
}

interface ScoreState {
  constraints: Constraint[];
  ignored: Set<string>;
  counts: Map<string, number>[];
  weights: number[];
}

const FILTER = 'PodTopologySpread';
const SCORE = 'PodTopologySpread/score';

export class PodTopologySpread implements PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin {
  readonly name = 'PodTopologySpread';
  constructor(readonly weight = 2, private readonly systemDefaults = true) {}

  preFilter(state: CycleState, pod: PodInfo, view: ClusterView): Status | typeof SKIP | undefined {
    const constraints = podConstraints(pod, 'DoNotSchedule');
    if (!constraints.length) return SKIP;
    const counts = constraints.map(() => new Map<string, number>());
    for (const n of view.nodes()) {
      if (!podMatchesNodeSelectorAndAffinity(pod, n) || !hasAllKeys(n, constraints)) continue;
      constraints.forEach((c, i) => {
        const v = n.labels[c.topologyKey]!;
        counts[i]!.set(v, (counts[i]!.get(v) ?? 0) + countMatching(n, c.selector, pod.namespace));
      });
    }
    state.set(FILTER, { constraints, counts } satisfies FilterState);
    return undefined;
  }

  filter(state: CycleState, pod: PodInfo, node: NodeInfo): Status | undefined {
    const s = state.get(FILTER) as FilterState | undefined;
    if (!s) return undefined;
    for (const [i, c] of s.constraints.entries()) {
      const v = node.labels[c.topologyKey];
      if (v === undefined) return unresolvable(ERR_MISSING_LABEL);
      const domains = s.counts[i]!;
      let min = domains.size < c.minDomains ? 0 : Infinity;
      for (const x of domains.values()) if (x < min) min = x;
      if (min === Infinity) min = 0;
      const self = c.selector !== null && matchesLabels(c.selector, pod.labels) ? 1 : 0;
      if ((domains.get(v) ?? 0) + self - min > c.maxSkew) return unschedulable(ERR_CONSTRAINTS);
    }
    return undefined;
  }

  preScore(state: CycleState, pod: PodInfo, feasible: NodeInfo[], view: ClusterView): typeof SKIP | undefined {
    let constraints = podConstraints(pod, 'ScheduleAnyway');
    const own = ((pod.pod.spec as any)?.topologySpreadConstraints ?? []).length > 0;
    let systemDefaulted = false;
    if (!own && this.systemDefaults) {
      const selector = defaultSelector(pod, view);
      if (selector) {
        constraints = SYSTEM_DEFAULT_CONSTRAINTS.map((c) => ({ ...c, selector, minDomains: 1 }));
        systemDefaulted = true;
      }
    }
    if (!constraints.length) return SKIP;
    const requireAll = own || !systemDefaulted;
    const ignored = new Set<string>();
    // Per constraint: domain value → matching pods (a node without the key counts under "" here, as in Kubernetes).
    const counts = constraints.map(() => new Map<string, number>());
    for (const n of feasible) {
      if (requireAll && !hasAllKeys(n, constraints)) {
        ignored.add(n.name);
        continue;
      }
      constraints.forEach((c, i) => {
        if (c.topologyKey !== HOSTNAME) counts[i]!.set(n.labels[c.topologyKey] ?? '', 0);
      });
    }
    const weights = constraints.map((c, i) => Math.log((c.topologyKey === HOSTNAME ? feasible.length - ignored.size : counts[i]!.size) + 2));
    for (const n of view.nodes()) {
      if (!podMatchesNodeSelectorAndAffinity(pod, n) || (requireAll && !hasAllKeys(n, constraints))) continue;
      constraints.forEach((c, i) => {
        if (c.topologyKey === HOSTNAME) return;
        const v = n.labels[c.topologyKey] ?? '';
        const m = counts[i]!;
        if (m.has(v)) m.set(v, m.get(v)! + countMatching(n, c.selector, pod.namespace));
      });
    }
    state.set(SCORE, { constraints, ignored, counts, weights } satisfies ScoreState);
    return undefined;
  }

  score(state: CycleState, pod: PodInfo, node: NodeInfo): number {
    const s = state.get(SCORE) as ScoreState | undefined;
    if (!s || s.ignored.has(node.name)) return 0;
    let score = 0;
    s.constraints.forEach((c, i) => {
      const v = node.labels[c.topologyKey];
      if (v === undefined) return;
      const cnt = c.topologyKey === HOSTNAME ? countMatching(node, c.selector, pod.namespace) : s.counts[i]!.get(v) ?? 0;
      score += cnt * s.weights[i]! + (c.maxSkew - 1);
    });
    return Math.round(score);
  }

  normalize(state: CycleState, _p: PodInfo, scores: number[], nodes: NodeInfo[]): void {
    const s = state.get(SCORE) as ScoreState | undefined;
    if (!s) return;
    let min = Infinity;
    let max = 0;
    nodes.forEach((n, i) => {
      if (s.ignored.has(n.name)) return;
      if (scores[i]! < min) min = scores[i]!;
      if (scores[i]! > max) max = scores[i]!;
    });
    nodes.forEach((n, i) => {
      if (s.ignored.has(n.name)) scores[i] = 0;
      else if (max === 0) scores[i] = MAX_NODE_SCORE;
      else scores[i] = Math.trunc((MAX_NODE_SCORE * (max + min - scores[i]!)) / max);
    });
  }
}
