// kube-scheduler's DefaultPreemption (PostFilter), run when a pod fits
// nowhere. On every node the filters refused for a reason that removing
// pods could fix, it takes out the pods of lower priority (not those whose
// binding is still in flight), checks the pod then fits, and puts back as
// many as it can, highest priority first and those a PodDisruptionBudget
// protects before the others: what stays out are the victims. Of these
// candidates it picks the node with the fewest budget violations, then the
// lowest highest-priority victim, the smallest sum of priorities, the
// fewest victims. The caller deletes the victims and nominates the node.
import { labelSelectorToRequirements, matchesLabels } from '../../api/selectors.ts';
import type { KubeObject } from '../informer/types.ts';
import type { Algorithm, FitError } from './algorithm.ts';
import type { SchedulerCache } from './cache.ts';
import type { ClusterView } from './framework.ts';
import type { NodeInfo } from './node-info.ts';
import type { PodInfo } from './pod-info.ts';

export interface Candidate {
  node: string;
  /** Highest priority first. */
  victims: PodInfo[];
  pdbViolations: number;
}

export type PreemptionResult = { candidate: Candidate } | { message: string };

export const NOT_HELPFUL = 'Preemption is not helpful for scheduling';
export const NO_VICTIMS = 'No preemption victims found for incoming pod';

/** kube-scheduler looks for candidates on at least 100 nodes or 10 % of them. */
const MIN_CANDIDATES_ABSOLUTE = 100;
const MIN_CANDIDATES_PERCENTAGE = 10;

/** More important first: higher priority, then the one started earlier. */
function moreImportant(a: PodInfo, b: PodInfo): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  const ta = String((a.pod.status as { startTime?: string } | undefined)?.startTime ?? a.pod.metadata.creationTimestamp ?? '');
  const tb = String((b.pod.status as { startTime?: string } | undefined)?.startTime ?? b.pod.metadata.creationTimestamp ?? '');
  return ta < tb ? -1 : ta > tb ? 1 : 0;
}

/** Splits pods into those whose eviction a PodDisruptionBudget forbids and the rest (filterPodsWithPDBViolation). */
function splitByBudget(pods: PodInfo[], pdbs: KubeObject[]): { violating: PodInfo[]; fine: PodInfo[] } {
  const allowed = pdbs.map((p) => Number((p as { status?: { disruptionsAllowed?: number } }).status?.disruptionsAllowed ?? 0));
  const violating: PodInfo[] = [];
  const fine: PodInfo[] = [];
  for (const pod of pods) {
    let violates = false;
    pdbs.forEach((pdb, i) => {
      if (pdb.metadata?.namespace !== pod.namespace) return;
      const sel = (() => {
        try {
          return labelSelectorToRequirements((pdb as { spec?: { selector?: never } }).spec?.selector);
        } catch {
          return null;
        }
      })();
      // An empty or missing selector protects nothing here, as in kube-scheduler.
      if (!sel?.length || !matchesLabels(sel, pod.labels)) return;
      if ((pdb as { status?: { disruptedPods?: Record<string, string> } }).status?.disruptedPods?.[pod.pod.metadata.name]) return;
      allowed[i]!--;
      if (allowed[i]! < 0) violates = true;
    });
    (violates ? violating : fine).push(pod);
  }
  return { violating, fine };
}

export class Preemptor {
  constructor(private readonly algorithm: Algorithm, private readonly cache: SchedulerCache) {}

  /** Why this pod may not preempt now, or undefined when it may (PodEligibleToPreemptOthers). */
  ineligible(pod: PodInfo, view: ClusterView): string | undefined {
    if ((pod.pod.spec as { preemptionPolicy?: string } | undefined)?.preemptionPolicy === 'Never') return 'not eligible due to preemptionPolicy=Never.';
    const nominated = (pod.pod.status as { nominatedNodeName?: string } | undefined)?.nominatedNodeName;
    const n = nominated ? view.nodeInfo(nominated) : undefined;
    if (n) {
      // Victims of an earlier preemption are still going: wait for them rather than evict more.
      for (const p of n.pods.values()) if (p.pod.metadata.deletionTimestamp && p.priority < pod.priority) return 'not eligible due to a terminating pod on the nominated node.';
    }
    return undefined;
  }

  /** The victims on one node, or undefined when evicting lower-priority pods would not make room (SelectVictimsOnNode). */
  selectVictims(pod: PodInfo, node: NodeInfo, view: ClusterView, pdbs: KubeObject[]): Candidate | undefined {
    const lower = [...node.pods.values()].filter((p) => p.priority < pod.priority && !this.cache.isAssumed(p.key) && !p.pod.metadata.deletionTimestamp);
    if (!lower.length) return undefined;
    return this.cache.withoutPods(lower.map((p) => p.key), ({ restore, remove }) => {
      if (this.algorithm.filterOnNode(pod, node, view)) return undefined;
      lower.sort(moreImportant);
      const { violating, fine } = splitByBudget(lower, pdbs);
      const victims: PodInfo[] = [];
      let pdbViolations = 0;
      const reprieve = (p: PodInfo): boolean => {
        restore(p.key);
        if (!this.algorithm.filterOnNode(pod, node, view)) return true;
        remove(p.key);
        victims.push(p);
        return false;
      };
      for (const p of violating) if (!reprieve(p)) pdbViolations++;
      for (const p of fine) reprieve(p);
      victims.sort(moreImportant);
      return { node: node.name, victims, pdbViolations };
    });
  }

  /** Finds where the pod may go by evicting lower-priority pods, or why it cannot. */
  preempt(pod: PodInfo, err: FitError, view: ClusterView, pdbs: KubeObject[]): PreemptionResult {
    const why = this.ineligible(pod, view);
    if (why) return { message: `preemption: ${why}` };
    const nodes = view.nodes();
    const want = Math.max(MIN_CANDIDATES_ABSOLUTE, Math.trunc((nodes.length * MIN_CANDIDATES_PERCENTAGE) / 100));
    const reasons = new Map<string, number>();
    const candidates: Candidate[] = [];
    for (const n of nodes) {
      const status = err.nodeReasons.get(n.name);
      if (!status || status.code === 'UnschedulableAndUnresolvable' || err.preFilter) {
        reasons.set(NOT_HELPFUL, (reasons.get(NOT_HELPFUL) ?? 0) + 1);
        continue;
      }
      if (candidates.length >= want) continue;
      const c = this.selectVictims(pod, n, view, pdbs);
      if (c) candidates.push(c);
      else reasons.set(NO_VICTIMS, (reasons.get(NO_VICTIMS) ?? 0) + 1);
    }
    if (!candidates.length) {
      const parts = [...reasons].map(([r, k]) => `${k} ${r}`).sort();
      return { message: `preemption: 0/${nodes.length} nodes are available: ${parts.join(', ')}.` };
    }
    return { candidate: pickOne(candidates) };
  }
}

/** pickOneNodeForPreemption: fewest budget violations, lowest top victim, least priority, fewest victims, then the first. */
export function pickOne(candidates: Candidate[]): Candidate {
  const OFFSET = 2 ** 31; // priorities may be negative: sum (priority + MaxInt32 + 1), as Kubernetes does
  const keys = (c: Candidate): number[] => [
    c.pdbViolations,
    c.victims[0]?.priority ?? -Infinity,
    c.victims.reduce((s, v) => s + v.priority + OFFSET, 0),
    c.victims.length,
  ];
  let best = candidates[0]!;
  let bestKeys = keys(best);
  for (const c of candidates.slice(1)) {
    const k = keys(c);
    for (let i = 0; i < k.length; i++) {
      if (k[i]! < bestKeys[i]!) {
        best = c;
        bestKeys = k;
        break;
      }
      if (k[i]! > bestKeys[i]!) break;
    }
  }
  return best;
}
