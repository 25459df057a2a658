// InterPodAffinity. Filter: the pod's required anti-affinity terms refuse a
// node whose topology domain (the node's value of the term's topologyKey)
// holds a pod the term selects; its required affinity terms need such a pod
// in the node's domain for every term (unless no pod anywhere matches and
// the pod matches its own terms: the first of a group); and a pod already
// placed whose required anti-affinity selects this pod keeps it out of that
// pod's domain. Score: preferred terms of the pod (+weight per matching pod
// in the domain, −weight for anti-affinity) and those of the pods already
// placed that select this pod, scaled between min(0, lowest) and max(0, highest).
import { type ClusterView, type CycleState, type FilterPlugin, MAX_NODE_SCORE, type PreFilterPlugin, type PreScorePlugin, SKIP, type ScorePlugin, type Status, unresolvable, unschedulable } from '../framework.ts';
import type { NodeInfo } from '../node-info.ts';
import { type AffinityTerm, type NamespaceLabels, type PodInfo, termMatches } from '../pod-info.ts';

export const ERR_AFFINITY = "node(s) didn't match pod affinity rules";
export const ERR_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules";
export const ERR_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules";

/** topologyKey → value → count. */
type TopologyCounts = Map<string, Map<string, number>>;

function bump(m: TopologyCounts, key: string, value: string | undefined, by: number): void {
  if (value === undefined) return;
  let v = m.get(key);
  if (!v) m.set(key, (v = new Map()));
  v.set(value, (v.get(value) ?? 0) + by);
}

const count = (m: TopologyCounts, key: string, value: string | undefined) => (value === undefined ? 0 : m.get(key)?.get(value) ?? 0);

interface FilterState {
  existingAnti: TopologyCounts;
  affinity: TopologyCounts;
  anti: TopologyCounts;
  noneMatchAffinity: boolean;
}

interface ScoreState {
  scores: TopologyCounts;
  empty: boolean;
}

const KEY = 'InterPodAffinity';
const SCORE_KEY = 'InterPodAffinity/score';

export class InterPodAffinity implements PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin {
  readonly name = 'InterPodAffinity';
  private nsLabels: NamespaceLabels = () => undefined;
  constructor(readonly weight = 2, private readonly hardPodAffinityWeight = 1) {}

  preFilter(state: CycleState, pod: PodInfo, view: ClusterView): Status | typeof SKIP | undefined {
    this.nsLabels = view.namespaceLabels;
    const s: FilterState = { existingAnti: new Map(), affinity: new Map(), anti: new Map(), noneMatchAffinity: true };
    for (const [e, n] of view.podsWithRequiredAntiAffinity(pod.labels)) {
      for (const t of e.requiredAntiAffinity) if (termMatches(t, pod, this.nsLabels)) bump(s.existingAnti, t.topologyKey, n.labels[t.topologyKey], 1);
    }
    // Only pods a term's selector can match are looked at (the cache's label index).
    if (pod.requiredAffinity.length) {
      for (const [e, n] of view.podsFor(pod.requiredAffinity[0]!.selector)) {
        if (!pod.requiredAffinity.every((t) => termMatches(t, e, this.nsLabels))) continue;
        s.noneMatchAffinity = false;
        for (const t of pod.requiredAffinity) bump(s.affinity, t.topologyKey, n.labels[t.topologyKey], 1);
      }
    }
    for (const t of pod.requiredAntiAffinity) {
      for (const [e, n] of view.podsFor(t.selector)) if (termMatches(t, e, this.nsLabels)) bump(s.anti, t.topologyKey, n.labels[t.topologyKey], 1);
    }
    // Nothing to check: no terms of its own, no placed pod's anti-affinity selects it.
    if (!pod.requiredAffinity.length && !pod.requiredAntiAffinity.length && !s.existingAnti.size) return SKIP;
    state.set(KEY, s);
    return undefined;
  }

  filter(state: CycleState, pod: PodInfo, node: NodeInfo): Status | undefined {
    const s = state.get(KEY) as FilterState;
    const labels = node.labels;
    for (const [key, values] of s.existingAnti) {
      if (labels[key] !== undefined && (values.get(labels[key]!) ?? 0) > 0) return unschedulable(ERR_EXISTING_ANTI_AFFINITY);
    }
    for (const t of pod.requiredAntiAffinity) {
      if (count(s.anti, t.topologyKey, labels[t.topologyKey]) > 0) return unschedulable(ERR_ANTI_AFFINITY);
    }
    if (pod.requiredAffinity.length) {
      let all = true;
      for (const t of pod.requiredAffinity) {
        if (labels[t.topologyKey] === undefined) return unresolvable(ERR_AFFINITY);
        if (count(s.affinity, t.topologyKey, labels[t.topologyKey]) <= 0) all = false;
      }
      if (!all && !(s.noneMatchAffinity && pod.requiredAffinity.every((t) => termMatches(t, pod, this.nsLabels)))) return unresolvable(ERR_AFFINITY);
    }
    return undefined;
  }

  preScore(state: CycleState, pod: PodInfo, _feasible: NodeInfo[], view: ClusterView): typeof SKIP | undefined {
    const s: ScoreState = { scores: new Map(), empty: true };
    state.set(SCORE_KEY, s);
    const ns = view.namespaceLabels;
    const add = (terms: readonly (AffinityTerm & { weight?: number })[], node: NodeInfo, sign: number, weightOf: (t: AffinityTerm & { weight?: number }) => number, matches: (t: AffinityTerm) => boolean) => {
      for (const t of terms) {
        const v = node.labels[t.topologyKey];
        if (v === undefined || !matches(t)) continue;
        bump(s.scores, t.topologyKey, v, sign * weightOf(t));
        s.empty = false;
      }
    };
    // The pod's preferred terms, over the placed pods their selectors may match (the cache's label index).
    for (const [terms, sign] of [[pod.preferredAffinity, 1], [pod.preferredAntiAffinity, -1]] as const) {
      for (const t of terms) {
        for (const [e, n] of view.podsFor(t.selector)) add([t], n, sign, (x) => x.weight ?? 0, (x) => termMatches(x, e, ns));
      }
    }
    // Symmetry: the placed pods' own terms that select the incoming pod.
    for (const [e, n] of view.podsWithAffinity()) {
      add(e.requiredAffinity, n, 1, () => this.hardPodAffinityWeight, (t) => termMatches(t, pod, ns));
      add(e.preferredAffinity, n, 1, (t) => t.weight ?? 0, (t) => termMatches(t, pod, ns));
      add(e.preferredAntiAffinity, n, -1, (t) => t.weight ?? 0, (t) => termMatches(t, pod, ns));
    }
    return s.empty ? SKIP : undefined;
  }

  score(state: CycleState, _pod: PodInfo, node: NodeInfo): number {
    const s = state.get(SCORE_KEY) as ScoreState | undefined;
    if (!s || s.empty) return 0;
    let sum = 0;
    for (const [key, values] of s.scores) {
      const v = node.labels[key];
      if (v !== undefined) sum += values.get(v) ?? 0;
    }
    return sum;
  }

  normalize(state: CycleState, _p: PodInfo, scores: number[]): void {
    const s = state.get(SCORE_KEY) as ScoreState | undefined;
    if (!s || s.empty) return;
    // Both start at 0, as in Kubernetes: all-positive scores scale from 0, not from the lowest.
    let min = 0;
    let max = 0;
    for (const x of scores) {
      if (x < min) min = x;
      if (x > max) max = x;
    }
    const diff = max - min;
    for (let i = 0; i < scores.length; i++) scores[i] = diff > 0 ? Math.trunc((MAX_NODE_SCORE * (scores[i]! - min)) / diff) : 0;
  }
}
