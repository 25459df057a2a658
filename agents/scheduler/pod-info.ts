// What the scheduler derives once from a pod (kube-scheduler's PodInfo):
// requests, host ports and parsed affinity terms, so that filters and
// scores over thousands of nodes never re-parse the spec.
import { type LabelRequirement, labelSelectorToRequirements, matchesLabels } from '../../api/selectors.ts';
import type { Toleration } from '../../api/taints.ts';
import type { LabelSelector, Pod } from '../informer/types.ts';
import { keyOf } from '../informer/informer.ts';
import { type Resources, podRequests } from './resources.ts';

export interface AffinityTerm {
  /** null: the selector selects nothing (Kubernetes: a nil labelSelector). */
  selector: LabelRequirement[] | null;
  /** The namespaces the term looks in; empty with `allNamespaces` false means the pod's own. */
  namespaces: Set<string>;
  /** A namespaceSelector's requirements (null: none given). */
  namespaceSelector: LabelRequirement[] | null;
  topologyKey: string;
}

export interface WeightedAffinityTerm extends AffinityTerm {
  weight: number;
}

export interface HostPort {
  protocol: string;
  ip: string;
  port: number;
}

/** Labels of a namespace (for namespaceSelector); undefined when unknown. */
export type NamespaceLabels = (namespace: string) => Record<string, string> | undefined;

export class PodInfo {
  readonly key: string;
  readonly requests: Resources;
  /** The requests above zero (not "pods"), as pairs: what NodeResourcesFit checks. */
  readonly requestList: [string, number][];
  /** Requests with the scoring defaults for missing cpu/memory. */
  readonly nonZero: Resources;
  readonly hostPorts: HostPort[];
  readonly requiredAffinity: AffinityTerm[];
  readonly requiredAntiAffinity: AffinityTerm[];
  readonly preferredAffinity: WeightedAffinityTerm[];
  readonly preferredAntiAffinity: WeightedAffinityTerm[];
  readonly tolerations: Toleration[];
  readonly priority: number;

  constructor(readonly pod: Pod) {
    this.key = keyOf(pod);
    this.requests = podRequests(pod);
    this.requestList = Object.entries(this.requests).filter(([r, v]) => v > 0 && r !== 'pods');
    this.nonZero = podRequests(pod, true);
    const spec = (pod.spec ?? {}) as Record<string, any>;
    this.hostPorts = [];
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      for (const p of c.ports ?? []) {
        if (p.hostPort > 0) this.hostPorts.push({ protocol: p.protocol ?? 'TCP', ip: p.hostIP || '0.0.0.0', port: p.hostPort });
      }
    }
    const ns = pod.metadata.namespace ?? 'default';
    const aff = spec.affinity?.podAffinity ?? {};
    const anti = spec.affinity?.podAntiAffinity ?? {};
    this.requiredAffinity = (aff.requiredDuringSchedulingIgnoredDuringExecution ?? []).map((t: any) => parseTerm(t, ns));
    this.requiredAntiAffinity = (anti.requiredDuringSchedulingIgnoredDuringExecution ?? []).map((t: any) => parseTerm(t, ns));
    this.preferredAffinity = (aff.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((w: any) => ({ ...parseTerm(w.podAffinityTerm ?? {}, ns), weight: w.weight ?? 0 }));
    this.preferredAntiAffinity = (anti.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((w: any) => ({ ...parseTerm(w.podAffinityTerm ?? {}, ns), weight: w.weight ?? 0 }));
    this.tolerations = spec.tolerations ?? [];
    this.priority = typeof spec.priority === 'number' ? spec.priority : 0;
  }

  get namespace(): string {
    return this.pod.metadata.namespace ?? 'default';
  }

  get labels(): Record<string, string> {
    return this.pod.metadata.labels ?? {};
  }

  /** Whether this pod carries any inter-pod (anti-)affinity term. */
  get hasAffinity(): boolean {
    return this.requiredAffinity.length + this.requiredAntiAffinity.length + this.preferredAffinity.length + this.preferredAntiAffinity.length > 0;
  }
}

function selectorOf(sel: LabelSelector | null | undefined): LabelRequirement[] | null {
  try {
    return labelSelectorToRequirements(sel);
  } catch {
    return null;
  }
}

/**
 * A PodAffinityTerm: the namespaces it names, or its namespaceSelector, or
 * (neither given) the pod's own namespace; matchLabelKeys/mismatchLabelKeys
 * are not applied.
 */
function parseTerm(t: any, podNamespace: string): AffinityTerm {
  const namespaces = new Set<string>(t.namespaces ?? []);
  const namespaceSelector = t.namespaceSelector == null ? null : selectorOf(t.namespaceSelector);
  if (!namespaces.size && namespaceSelector === null) namespaces.add(podNamespace);
  return { selector: selectorOf(t.labelSelector), namespaces, namespaceSelector, topologyKey: t.topologyKey ?? '' };
}

/** Whether `pod` is selected by the term (its namespace and labels). */
export function termMatches(term: AffinityTerm, pod: PodInfo, nsLabels: NamespaceLabels): boolean {
  if (!term.namespaces.has(pod.namespace)) {
    if (term.namespaceSelector === null) return false;
    if (!matchesLabels(term.namespaceSelector, nsLabels(pod.namespace) ?? {})) return false;
  }
  return term.selector !== null && matchesLabels(term.selector, pod.labels);
}
