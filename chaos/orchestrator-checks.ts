// Checkers of the orchestrator's guarantees over the event stream: the
// stream is the whole history of every object, so replaying it gives the
// cluster's state after each committed write, and each invariant is checked
// at every step, not only at the end.
// - rollout bounds: outside windows of involuntary disruption, a Deployment
//   that reached its bounds never has fewer than replicas − maxUnavailable
//   Ready pods nor more than replicas + maxSurge non-terminating pods (a
//   change of replicas or strategy starts over, bounded again once within
//   its new bounds with the Deployment and its ReplicaSets at
//   observedGeneration: Kubernetes bounds rollouts, not scaling);
// - no node is ever over-committed (the requests of the pods bound to it,
//   as the scheduler counts them, within its allocatable);
// - a StatefulSet ordinal never has two pods (and no name two objects);
// - every dependent of a deleted owner is collected (by the end);
// - the cluster converges (every workload at its desired state) within a
//   bound after the faults stop.
import { resolveFenceposts } from '../agents/controllers/deployment/fenceposts.ts';
import type { Pod } from '../agents/informer/types.ts';
import { podRequests, toResources } from '../agents/scheduler/resources.ts';
import type { CheckOutcome, StreamEvent } from './checks.ts';

/** A window of involuntary disruption (a killed agent, an evicted node), in ms since the epoch. */
export interface Disruption {
  from: number;
  to: number;
  what: string;
}

interface Meta {
  name: string;
  namespace?: string;
  uid: string;
  generation?: number;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  ownerReferences?: { uid: string; kind: string; name: string; controller?: boolean }[];
}

// Loosely typed: the checker reads what the stream holds, whatever its shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export interface Obj { metadata: Meta; spec?: any; status?: any }

const MAX_DETAILS = 20;

/** The objects after each event of the stream. */
export class ClusterState {
  /** `resource/namespace/name` → object. */
  readonly objects = new Map<string, { resource: string; obj: Obj }>();
  /** uid → key, for the live objects. */
  readonly byUid = new Map<string, string>();
  /** uids of objects the stream deleted. */
  readonly deleted = new Set<string>();

  static key(resource: string, namespace: string, name: string): string {
    return `${resource}/${namespace}/${name}`;
  }

  /** Applies one event; returns the object before and after it. */
  apply(e: Pick<StreamEvent, 'type' | 'resource' | 'namespace' | 'name' | 'object'>): { before?: Obj; after?: Obj } {
    const key = ClusterState.key(e.resource, e.namespace, e.name);
    const before = this.objects.get(key)?.obj;
    const obj = JSON.parse(e.object) as Obj;
    if (before && before.metadata.uid !== obj.metadata.uid) this.byUid.delete(before.metadata.uid);
    if (e.type === 'DELETED') {
      this.objects.delete(key);
      this.byUid.delete(obj.metadata.uid);
      this.deleted.add(obj.metadata.uid);
      return { before };
    }
    this.objects.set(key, { resource: e.resource, obj });
    this.byUid.set(obj.metadata.uid, key);
    return { before, after: obj };
  }

  get(uid: string | undefined): Obj | undefined {
    const key = uid ? this.byUid.get(uid) : undefined;
    return key ? this.objects.get(key)?.obj : undefined;
  }

  *of(resource: string): Iterable<Obj> {
    for (const v of this.objects.values()) if (v.resource === resource) yield v.obj;
  }
}

const controllerUid = (o: Obj | undefined): string | undefined => o?.metadata.ownerReferences?.find((r) => r.controller)?.uid;
const terminal = (p: Obj) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
/** Neither being deleted nor finished. */
export const activePod = (p: Obj) => !p.metadata.deletionTimestamp && !terminal(p);
export const readyPod = (p: Obj) => activePod(p) && (p.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
/** A node the control plane sees as down: not Ready, or tainted unreachable / not-ready. */
export const nodeDisrupted = (n: Obj) => !(n.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True')
  || (n.spec?.taints ?? []).some((t: { key: string }) => t.key === 'node.kubernetes.io/unreachable' || t.key === 'node.kubernetes.io/not-ready');

/** The pods of a Deployment: those whose controlling ReplicaSet it controls. */
function deploymentPods(state: ClusterState, uid: string): Obj[] {
  const rss = new Set([...state.of('replicasets')].filter((rs) => controllerUid(rs) === uid).map((rs) => rs.metadata.uid));
  return [...state.of('pods')].filter((p) => rss.has(controllerUid(p) ?? ''));
}

/**
 * A Deployment whose controller, and the controller of each of its
 * ReplicaSets, has observed its current spec: after a scale, pods asked for
 * under the old size (a creation still on its way) can land until then.
 */
function observed(state: ClusterState, d: Obj): boolean {
  const seen = (o: Obj) => (o.status?.observedGeneration ?? 0) >= (o.metadata.generation ?? 0);
  return seen(d) && [...state.of('replicasets')].every((rs) => controllerUid(rs) !== d.metadata.uid || seen(rs));
}

function bounds(d: Obj): { replicas: number; surge: number; unavailable: number } | undefined {
  if ((d.spec?.strategy?.type ?? 'RollingUpdate') !== 'RollingUpdate') return undefined;
  const replicas = d.spec?.replicas ?? 1;
  const ru = d.spec?.strategy?.rollingUpdate ?? {};
  const [surge, unavailable] = resolveFenceposts(ru.maxSurge ?? '25%', ru.maxUnavailable ?? '25%', replicas);
  return { replicas, surge, unavailable };
}

export function checkRolloutBounds(stream: readonly StreamEvent[], disruptions: readonly Disruption[] = []): CheckOutcome & { checks: number } {
  const state = new ClusterState();
  const details: string[] = [];
  let anomalies = 0;
  let checks = 0;
  /** Deployment uid → the bounds it reached (undefined: not yet, or started over) and whether it is out of them now. */
  const tracked = new Map<string, { key?: string; violating: boolean }>();
  const disruptedNodes = new Set<string>();
  for (const e of stream) {
    const { before, after } = state.apply(e);
    const o = after ?? before;
    if (!o) continue;
    if (e.resource === 'nodes') {
      if (after && nodeDisrupted(after)) disruptedNodes.add(e.name);
      else disruptedNodes.delete(e.name);
    }
    // During involuntary disruption nothing is bounded: every Deployment starts over.
    if (disruptedNodes.size > 0 || disruptions.some((w) => e.time >= w.from && e.time <= w.to)) {
      tracked.clear();
      continue;
    }
    let uid: string | undefined;
    if (e.resource === 'deployments') uid = o.metadata.uid;
    else if (e.resource === 'replicasets') uid = controllerUid(o);
    else if (e.resource === 'pods') uid = controllerUid(state.get(controllerUid(o)));
    if (!uid) continue;
    const d = state.get(uid);
    if (!d || d.metadata.deletionTimestamp) {
      tracked.delete(uid);
      continue;
    }
    const b = bounds(d);
    if (!b) continue;
    const pods = deploymentPods(state, uid);
    const available = pods.filter(readyPod).length;
    const active = pods.filter(activePod).length;
    const key = `${b.replicas}/${b.surge}/${b.unavailable}`;
    const tr = tracked.get(uid);
    const within = available >= b.replicas - b.unavailable && active <= b.replicas + b.surge;
    if (!tr || tr.key !== key) {
      // Not bounded until it first gets within its bounds at these replicas,
      // its controllers having observed them (not in the wake of a scale).
      tracked.set(uid, { key: within && observed(state, d) ? key : undefined, violating: false });
      continue;
    }
    checks++;
    if (within) {
      tr.violating = false;
      continue;
    }
    if (tr.violating) continue;
    tr.violating = true;
    anomalies++;
    if (details.length < MAX_DETAILS) {
      details.push(`deployment ${d.metadata.namespace}/${d.metadata.name} at index ${e.index}: ${available} available (at least ${b.replicas - b.unavailable}), ${active} non-terminating pods (at most ${b.replicas + b.surge})`);
    }
  }
  return { anomalies, details, checks };
}

export function checkNodeOvercommit(stream: readonly StreamEvent[]): CheckOutcome {
  const state = new ClusterState();
  const details: string[] = [];
  let anomalies = 0;
  const violating = new Set<string>();
  for (const e of stream) {
    const { before, after } = state.apply(e);
    let node: string | undefined;
    if (e.resource === 'nodes') node = e.name;
    else if (e.resource === 'pods') node = after?.spec?.nodeName ?? before?.spec?.nodeName;
    if (!node) continue;
    const n = state.objects.get(ClusterState.key('nodes', '', node))?.obj;
    if (!n?.status?.allocatable) continue;
    const alloc = toResources(n.status.allocatable);
    const used: Record<string, number> = { pods: 0 };
    for (const p of state.of('pods')) {
      if (p.spec?.nodeName !== node || terminal(p)) continue;
      used.pods++;
      for (const [k, v] of Object.entries(podRequests(p as unknown as Pod))) used[k] = (used[k] ?? 0) + v;
    }
    const over = Object.entries(used).filter(([k, v]) => k in alloc && v > alloc[k]);
    if (over.length === 0) {
      violating.delete(node);
      continue;
    }
    if (violating.has(node)) continue;
    violating.add(node);
    anomalies++;
    if (details.length < MAX_DETAILS) details.push(`node ${node} over-committed at index ${e.index}: ${over.map(([k, v]) => `${k} ${v} > ${alloc[k]}`).join(', ')}`);
  }
  return { anomalies, details };
}

export function checkStatefulSetOrdinals(stream: readonly StreamEvent[]): CheckOutcome {
  const state = new ClusterState();
  const details: string[] = [];
  let anomalies = 0;
  const add = (d: string) => {
    anomalies++;
    if (details.length < MAX_DETAILS) details.push(d);
  };
  for (const e of stream) {
    const { before, after } = state.apply(e);
    if (e.resource !== 'pods' || !after) continue;
    if (before && before.metadata.uid !== after.metadata.uid) add(`pod ${e.namespace}/${e.name} at index ${e.index}: created (uid ${after.metadata.uid}) while ${before.metadata.uid} still existed`);
    const owner = after.metadata.ownerReferences?.find((r) => r.controller && r.kind === 'StatefulSet');
    if (!owner) continue;
    // A pod's ordinal: its pod-index label, else its name's suffix.
    const ordinalOf = (p: Obj) => p.metadata.labels?.['apps.kubernetes.io/pod-index'] ?? p.metadata.name.slice(owner.name.length + 1);
    const ordinal = ordinalOf(after);
    const same = [...state.of('pods')].filter((p) => p.metadata.namespace === after.metadata.namespace
      && p.metadata.ownerReferences?.some((r) => r.uid === owner.uid) && ordinalOf(p) === ordinal);
    if (same.length > 1) add(`statefulset ${e.namespace}/${owner.name} ordinal ${ordinal} at index ${e.index}: ${same.length} pods (${same.map((p) => p.metadata.name).join(', ')})`);
  }
  return { anomalies, details };
}

/** Live objects (Events aside) whose every owner is gone: garbage the collector left. */
export function garbage(state: ClusterState): string[] {
  const out: string[] = [];
  for (const [key, { resource, obj }] of state.objects) {
    if (resource === 'events') continue;
    const owners = obj.metadata.ownerReferences ?? [];
    if (owners.length === 0 || owners.some((r) => state.byUid.has(r.uid))) continue;
    out.push(`${key}${obj.metadata.deletionTimestamp ? ' (being deleted)' : ''} of deleted ${owners.map((r) => `${r.kind}/${r.name}`).join(', ')}`);
  }
  return out;
}

export function checkGarbageCollected(stream: readonly StreamEvent[]): CheckOutcome {
  const state = new ClusterState();
  for (const e of stream) state.apply(e);
  const left = garbage(state);
  return { anomalies: left.length, details: left.slice(0, MAX_DETAILS) };
}

/** Why the workloads are not at their desired state (empty: converged). */
export function notConverged(state: ClusterState): string[] {
  const out: string[] = [];
  const pods = [...state.of('pods')];
  const ownedBy = (uid: string) => pods.filter((p) => controllerUid(p) === uid);
  for (const d of state.of('deployments')) {
    if (d.metadata.deletionTimestamp) continue;
    const r = d.spec?.replicas ?? 1;
    const s = d.status ?? {};
    const name = `deployment ${d.metadata.namespace}/${d.metadata.name}`;
    if ((s.observedGeneration ?? 0) < (d.metadata.generation ?? 0)) out.push(`${name}: generation ${d.metadata.generation} not observed`);
    else if ((s.updatedReplicas ?? 0) !== r || (s.replicas ?? 0) !== r || (s.availableReplicas ?? 0) !== r) out.push(`${name}: ${s.updatedReplicas ?? 0} updated, ${s.replicas ?? 0} total, ${s.availableReplicas ?? 0} available of ${r}`);
  }
  for (const rs of state.of('replicasets')) {
    if (rs.metadata.deletionTimestamp) continue;
    const r = rs.spec?.replicas ?? 1;
    const mine = ownedBy(rs.metadata.uid);
    if (mine.filter(activePod).length !== r || mine.filter(readyPod).length !== r) out.push(`replicaset ${rs.metadata.namespace}/${rs.metadata.name}: ${mine.filter(readyPod).length} ready, ${mine.filter(activePod).length} pods of ${r}`);
  }
  for (const ss of state.of('statefulsets')) {
    if (ss.metadata.deletionTimestamp) continue;
    const r = ss.spec?.replicas ?? 1;
    const s = ss.status ?? {};
    const name = `statefulset ${ss.metadata.namespace}/${ss.metadata.name}`;
    if ((s.observedGeneration ?? 0) < (ss.metadata.generation ?? 0)) out.push(`${name}: generation ${ss.metadata.generation} not observed`);
    else if ((s.readyReplicas ?? 0) !== r || (s.replicas ?? 0) !== r || (s.updatedReplicas ?? 0) !== r) out.push(`${name}: ${s.readyReplicas ?? 0} ready, ${s.updatedReplicas ?? 0} updated, ${s.replicas ?? 0} total of ${r}`);
  }
  const pending = pods.filter((p) => activePod(p) && !p.spec?.nodeName);
  if (pending.length) out.push(`${pending.length} pods not scheduled, e.g. ${pending[0].metadata.namespace}/${pending[0].metadata.name}`);
  out.push(...garbage(state).map((g) => `garbage: ${g}`));
  return out;
}

/**
 * The workloads converge within `boundMs` after `faultsStopped` (ms since the
 * epoch) and stay converged to the end of the stream. Returns how long it took.
 */
export function checkConvergence(stream: readonly StreamEvent[], faultsStopped: number, boundMs: number): CheckOutcome & { convergedMs: number | null } {
  const state = new ClusterState();
  let since: number | undefined;
  let last: string[] = ['no event after the faults stopped'];
  let evaluated = false;
  const evaluate = (time: number) => {
    last = notConverged(state);
    evaluated = true;
    if (last.length === 0) since ??= Math.max(time, faultsStopped);
    else since = undefined;
  };
  for (let i = 0; i < stream.length; i++) {
    const e = stream[i];
    state.apply(e);
    // Only the state after the last event with this timestamp counts (writes of one moment are one step).
    if (e.time >= faultsStopped && stream[i + 1]?.time !== e.time) evaluate(e.time);
    else if (e.time < faultsStopped && (stream[i + 1]?.time ?? Infinity) >= faultsStopped) evaluate(faultsStopped);
  }
  if (!evaluated) evaluate(faultsStopped);
  if (since === undefined) return { anomalies: 1, details: [`not converged at the end of the stream: ${last.slice(0, 5).join('; ')}`], convergedMs: null };
  const convergedMs = since - faultsStopped;
  if (convergedMs > boundMs) return { anomalies: 1, details: [`converged ${convergedMs} ms after the faults stopped (bound ${boundMs} ms)`], convergedMs };
  return { anomalies: 0, details: [], convergedMs };
}
