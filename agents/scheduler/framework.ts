// kube-scheduler's framework, reduced to what Flotilla's default profile
// uses: PreFilter (per-pod state, may reject the pod outright), Filter (per
// node), PreScore/Score/NormalizeScore (per feasible node, 0–100, times the
// plugin's weight) and PreBind (writes before the binding, e.g. a claim's
// selected node). Plugins read the cluster only through ClusterView.
import type { LabelRequirement } from '../../api/selectors.ts';
import type { KubeObject } from '../informer/types.ts';
import type { NodeInfo } from './node-info.ts';
import type { NamespaceLabels, PodInfo } from './pod-info.ts';

export const MAX_NODE_SCORE = 100;

/**
 * Unschedulable: this node does not fit now (preemption might help);
 * UnschedulableAndUnresolvable: it will not fit whatever is removed.
 * Both make the pod wait for a cluster event; Error backs off.
 */
export type Code = 'Unschedulable' | 'UnschedulableAndUnresolvable' | 'Error';

export interface Status {
  code: Code;
  /** Human reasons, counted in the FailedScheduling message ("3 Insufficient cpu"). */
  reasons: string[];
  plugin?: string;
}

export const unschedulable = (...reasons: string[]): Status => ({ code: 'Unschedulable', reasons });
export const unresolvable = (...reasons: string[]): Status => ({ code: 'UnschedulableAndUnresolvable', reasons });

/** What plugins may read besides nodes: listers over the informers' caches. */
export interface ClusterView {
  nodes(): NodeInfo[];
  nodeInfo(name: string): NodeInfo | undefined;
  /** Placed pods a selector may match, with their nodes (SchedulerCache.podsFor). */
  podsFor(selector: readonly LabelRequirement[] | null): Iterable<[PodInfo, NodeInfo]>;
  /** Placed pods with a required anti-affinity term that may select a pod with these labels, with their nodes. */
  podsWithRequiredAntiAffinity(labels: Record<string, string>): Iterable<[PodInfo, NodeInfo]>;
  /** Placed pods with any inter-pod (anti-)affinity term, with their nodes. */
  podsWithAffinity(): Iterable<[PodInfo, NodeInfo]>;
  /** Pending pods that preemption nominated to this node (their room is kept for them). */
  nominatedPods(node: string): PodInfo[];
  namespaceLabels: NamespaceLabels;
  get(resource: 'persistentvolumeclaims' | 'persistentvolumes' | 'storageclasses' | 'replicasets' | 'statefulsets', namespace: string, name: string): KubeObject | undefined;
  list(resource: 'persistentvolumes' | 'services' | 'poddisruptionbudgets', namespace?: string): KubeObject[];
}

/** Per-pod state one plugin computes in PreFilter/PreScore and reads in Filter/Score. */
export type CycleState = Map<string, unknown>;

export interface Plugin {
  readonly name: string;
}

/** From PreFilter/PreScore: this plugin has nothing to say about this pod; its Filter/Score is not run (kube-scheduler's Skip). */
export const SKIP = 'skip';

export interface PreFilterPlugin extends Plugin {
  /** undefined: go on; SKIP: its Filter is not needed for this pod; a Status: the pod fits no node (the reason counts for every node). */
  preFilter(state: CycleState, pod: PodInfo, view: ClusterView): Status | typeof SKIP | undefined;
}

export interface FilterPlugin extends Plugin {
  filter(state: CycleState, pod: PodInfo, node: NodeInfo): Status | undefined;
}

export interface PreScorePlugin extends Plugin {
  /** SKIP: its Score is not needed for this pod (every node would score the same). */
  preScore(state: CycleState, pod: PodInfo, feasible: NodeInfo[], view: ClusterView): typeof SKIP | undefined;
}

export interface ScorePlugin extends Plugin {
  readonly weight: number;
  score(state: CycleState, pod: PodInfo, node: NodeInfo): number;
  /** Scales the raw scores (one per feasible node, same order) to 0–100 in place. */
  normalize?(state: CycleState, pod: PodInfo, scores: number[], nodes: NodeInfo[]): void;
}

export interface PreBindPlugin extends Plugin {
  preBind(state: CycleState, pod: PodInfo, node: string): Promise<void>;
}

export interface Profile {
  schedulerName: string;
  preFilter: PreFilterPlugin[];
  filter: FilterPlugin[];
  preScore: PreScorePlugin[];
  score: ScorePlugin[];
  preBind: PreBindPlugin[];
}

/**
 * DefaultNormalizeScore: scores scaled so the largest is 100; `reverse`
 * turns them around (fewer is better). All zero: all 0, or all 100 reversed.
 */
export function defaultNormalize(scores: number[], reverse: boolean): void {
  let max = 0;
  for (const s of scores) if (s > max) max = s;
  for (let i = 0; i < scores.length; i++) {
    if (max === 0) {
      scores[i] = reverse ? MAX_NODE_SCORE : 0;
      continue;
    }
    const s = Math.trunc((MAX_NODE_SCORE * scores[i]!) / max);
    scores[i] = reverse ? MAX_NODE_SCORE - s : s;
  }
}
