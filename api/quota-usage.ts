// What a ResourceQuota's status.used says, as Kubernetes' quota evaluators
// count it: for each resource named in spec.hard, the pods that are not
// terminal (and not stuck past their deletion deadline) with their summed
// requests and limits (init containers: the larger of their maximum and the
// sum of the app containers), services (and their node ports and load
// balancers), claims and their storage (also per class), object counts
// (configmaps, secrets, count/<resource>.<group>). Scopes (and a scope
// selector) restrict a quota to the pods they match.
// Shared by the resource-quota controller (status.used) and the server's
// ResourceQuota admission (the charge of one new object).
import { podQOSClass } from './kinds/index.ts';
import { parseQuantity } from './schema/validate.ts';
import type { KubeObject } from './schema/types.ts';

/** The parts of a Pod quota counting reads. */
export interface Pod extends KubeObject {
  spec?: unknown;
  status?: { phase?: string; [k: string]: unknown };
}

export interface ScopeRequirement { scopeName: string; operator: string; values?: string[] }

export interface QuotaSpec {
  hard?: Record<string, string | number>;
  scopes?: string[];
  scopeSelector?: { matchExpressions?: ScopeRequirement[] };
}

/** The objects of one namespace a quota may count; `count` gives any other resource's objects by its count/ key. */
export interface NamespaceObjects {
  pods: readonly Pod[];
  services: readonly KubeObject[];
  persistentvolumeclaims: readonly KubeObject[];
  count(resource: string): readonly KubeObject[] | undefined;
}

const STORAGE_CLASS_SUFFIX = '.storageclass.storage.k8s.io/';

/** A quantity in milli-units (exact for the sizes quotas deal with). */
function milli(q: unknown): number {
  if (typeof q !== 'string' && typeof q !== 'number') return 0;
  try {
    return Math.round(parseQuantity(q) * 1000);
  } catch {
    return 0;
  }
}

const BINARY: [string, number][] = [['Ei', 2 ** 60], ['Pi', 2 ** 50], ['Ti', 2 ** 40], ['Gi', 2 ** 30], ['Mi', 2 ** 20], ['Ki', 2 ** 10]];

/** A quantity string for a milli-unit amount: "1500m"/"2" for CPU-like amounts, binary suffixes for exact byte sizes. */
export function formatQuantity(m: number, bytes: boolean): string {
  if (m % 1000 !== 0) return `${m}m`;
  const n = m / 1000;
  if (bytes && n > 0) for (const [s, f] of BINARY) if (n % f === 0) return `${n / f}${s}`;
  return String(n);
}

const isBytes = (resource: string) => /memory|storage|hugepages/.test(resource);

/** QuotaV1Pod: terminal pods, and pods past their deletion deadline, are not charged. */
export function podCharged(p: Pod, now: number): boolean {
  if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') return false;
  const m = p.metadata as { deletionTimestamp?: string; deletionGracePeriodSeconds?: number };
  if (m.deletionTimestamp && typeof m.deletionGracePeriodSeconds === 'number') {
    if (now > Date.parse(m.deletionTimestamp) + m.deletionGracePeriodSeconds * 1000) return false;
  }
  return true;
}

type Container = { resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> } };

/** A pod's effective request (or limit) of a resource, milli-units: max(Σ containers, max init container) + overhead. */
export function podAmount(p: Pod, kind: 'requests' | 'limits', resource: string): number {
  const of = (c: Container) => {
    const r = c.resources ?? {};
    // An unset request defaults to the limit (Kubernetes' pod defaulting).
    const v = kind === 'requests' ? r.requests?.[resource] ?? r.limits?.[resource] : r.limits?.[resource];
    return milli(v);
  };
  const spec = (p.spec ?? {}) as { containers?: Container[]; initContainers?: Container[]; overhead?: Record<string, unknown> };
  const sum = (spec.containers ?? []).reduce((s, c) => s + of(c), 0);
  const init = Math.max(0, ...(spec.initContainers ?? []).map(of));
  return Math.max(sum, init) + milli(spec.overhead?.[resource]);
}

function scopeMatches(p: Pod, scope: string, req?: ScopeRequirement): boolean {
  const spec = (p.spec ?? {}) as { activeDeadlineSeconds?: number; priorityClassName?: string; affinity?: Record<string, unknown> };
  let v: boolean;
  switch (scope) {
    case 'Terminating': v = typeof spec.activeDeadlineSeconds === 'number'; break;
    case 'NotTerminating': v = typeof spec.activeDeadlineSeconds !== 'number'; break;
    case 'BestEffort': v = podQOSClass(p) === 'BestEffort'; break;
    case 'NotBestEffort': v = podQOSClass(p) !== 'BestEffort'; break;
    case 'PriorityClass': {
      const name = spec.priorityClassName;
      const values = req?.values ?? [];
      switch (req?.operator ?? 'Exists') {
        case 'In': return name !== undefined && values.includes(name);
        case 'NotIn': return name === undefined || !values.includes(name);
        case 'Exists': return !!name;
        case 'DoesNotExist': return !name;
        default: return false;
      }
    }
    case 'CrossNamespacePodAffinity': {
      const terms = ['podAffinity', 'podAntiAffinity'].flatMap((k) => {
        const a = (spec.affinity?.[k] ?? {}) as { requiredDuringSchedulingIgnoredDuringExecution?: unknown[]; preferredDuringSchedulingIgnoredDuringExecution?: { podAffinityTerm?: unknown }[] };
        return [...(a.requiredDuringSchedulingIgnoredDuringExecution ?? []), ...(a.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((w) => w.podAffinityTerm)];
      }) as { namespaces?: string[]; namespaceSelector?: unknown }[];
      v = terms.some((t) => t && ((t.namespaces?.length ?? 0) > 0 || t.namespaceSelector != null));
      break;
    }
    default: return false;
  }
  // For the boolean scopes a selector may say Exists (true) or DoesNotExist (negated).
  return req?.operator === 'DoesNotExist' ? !v : v;
}

/** Whether a pod is tracked by a quota with these scopes and scope selector (all must match). */
export function podInScope(p: Pod, spec: QuotaSpec): boolean {
  return (spec.scopes ?? []).every((s) => scopeMatches(p, s))
    && (spec.scopeSelector?.matchExpressions ?? []).every((r) => scopeMatches(p, r.scopeName, r));
}

const scoped = (spec: QuotaSpec) => (spec.scopes?.length ?? 0) > 0 || (spec.scopeSelector?.matchExpressions?.length ?? 0) > 0;

/** The pod part of a resource name: "requests.cpu"/"cpu" → requests of cpu, "limits.memory" → limits of memory. */
function podResource(name: string): { kind: 'requests' | 'limits'; resource: string } | undefined {
  if (name.startsWith('requests.')) return { kind: 'requests', resource: name.slice('requests.'.length) };
  if (name.startsWith('limits.')) return { kind: 'limits', resource: name.slice('limits.'.length) };
  if (['cpu', 'memory', 'ephemeral-storage'].includes(name)) return { kind: 'requests', resource: name };
  return undefined;
}

/** status.used for every resource of spec.hard. */
export function quotaUsage(spec: QuotaSpec, objs: NamespaceObjects, now: number): Record<string, string> {
  const used: Record<string, string> = {};
  const pods = objs.pods.filter((p) => podCharged(p, now) && podInScope(p, spec));
  const onlyPods = scoped(spec);
  const claims = objs.persistentvolumeclaims as { spec?: { storageClassName?: string; resources?: { requests?: Record<string, unknown> } } }[];
  for (const name of Object.keys(spec.hard ?? {})) {
    const pr = name === 'requests.storage' ? undefined : podResource(name);
    let m: number;
    if (name === 'pods' || name === 'count/pods') {
      m = pods.length * 1000;
    } else if (pr) {
      m = pods.reduce((s, p) => s + podAmount(p, pr.kind, pr.resource), 0);
    } else if (onlyPods) {
      // A scoped quota tracks pods only.
      m = 0;
    } else if (name === 'services' || name === 'count/services') {
      m = objs.services.length * 1000;
    } else if (name === 'services.nodeports') {
      // Every port of a NodePort service takes a node port; so does a LoadBalancer's unless it opts out.
      m = objs.services.reduce((s, svc) => {
        const spec = (svc as { spec?: { type?: string; ports?: unknown[]; allocateLoadBalancerNodePorts?: boolean } }).spec;
        const takes = spec?.type === 'NodePort' || (spec?.type === 'LoadBalancer' && spec.allocateLoadBalancerNodePorts !== false);
        return s + (takes ? spec?.ports?.length ?? 0 : 0);
      }, 0) * 1000;
    } else if (name === 'services.loadbalancers') {
      m = objs.services.filter((svc) => (svc as { spec?: { type?: string } }).spec?.type === 'LoadBalancer').length * 1000;
    } else if (name === 'persistentvolumeclaims' || name === 'count/persistentvolumeclaims') {
      m = claims.length * 1000;
    } else if (name === 'requests.storage') {
      m = claims.reduce((s, c) => s + milli(c.spec?.resources?.requests?.storage), 0);
    } else if (name.includes(STORAGE_CLASS_SUFFIX)) {
      const [cls, what] = name.split(STORAGE_CLASS_SUFFIX);
      const ofClass = claims.filter((c) => (c.spec?.storageClassName ?? '') === cls);
      m = what === 'persistentvolumeclaims' ? ofClass.length * 1000 : what === 'requests.storage' ? ofClass.reduce((s, c) => s + milli(c.spec?.resources?.requests?.storage), 0) : 0;
    } else {
      // configmaps, secrets, resourcequotas, replicationcontrollers and count/<resource>[.<group>].
      m = (objs.count(name.startsWith('count/') ? name.slice('count/'.length) : name)?.length ?? 0) * 1000;
    }
    used[name] = formatQuantity(m, isBytes(name));
  }
  return used;
}

/** Semantic equality of two resource lists (quantities compared by value). */
export function sameResources(a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined): boolean {
  const ka = Object.keys(a ?? {});
  const kb = Object.keys(b ?? {});
  return ka.length === kb.length && ka.every((k) => b?.[k] !== undefined && milli(a![k]) === milli(b[k]));
}
