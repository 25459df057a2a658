// The node lifecycle controller's decisions, as pure functions of what it
// observed: when a node was last heard from (its Lease renewals and status
// heartbeats, timed by this controller's clock so node clocks do not
// matter), which conditions a silent node gets, which taints a node's Ready
// condition calls for, and how disrupted a zone is (which decides how fast
// nodes may be tainted for eviction).
import {
  type Taint, TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE, TAINT_NODE_UNSCHEDULABLE,
} from '../../../api/taints.ts';
import type { Condition, Lease, Node } from '../../informer/types.ts';

/** The conditions a node agent reports that go Unknown when it falls silent. */
export const NODE_CONDITIONS = ['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure'];

/** When this controller last heard from a node, and what it heard. */
export interface Probe {
  /** Controller time (ms) of the last sign of life. */
  at: number;
  renewTime?: string;
  heartbeat?: string;
}

/**
 * Updates the probe of a node: a Lease renewTime or a Ready heartbeat that
 * differs from the last one seen is a sign of life now. A node seen for the
 * first time counts as heard from now, so that a controller that (re)starts
 * gives every node a full grace period, as Kubernetes does.
 */
export function observe(prev: Probe | undefined, node: Node, lease: Lease | undefined, now: number): Probe {
  const renewTime = lease?.spec?.renewTime;
  const heartbeat = readyCondition(node)?.lastHeartbeatTime as string | undefined;
  if (!prev) return { at: now, renewTime, heartbeat };
  if (renewTime !== prev.renewTime || heartbeat !== prev.heartbeat) return { at: now, renewTime, heartbeat };
  return prev;
}

export function readyCondition(node: Node): Condition | undefined {
  return (node.status?.conditions ?? []).find((c) => c.type === 'Ready');
}

/** 'True', 'False' or 'Unknown' (a node that never reported is Unknown). */
export function readyStatus(node: Node): string {
  return readyCondition(node)?.status ?? 'Unknown';
}

/**
 * The conditions of a node that has been silent past its grace period: every
 * node-agent condition Unknown (reason NodeStatusUnknown, or
 * NodeStatusNeverUpdated for one never posted), heartbeats kept, transition
 * time now where the status changes. Undefined when they already are.
 */
export function silentNodeConditions(node: Node, now: number): Condition[] | undefined {
  const iso = new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
  const current = node.status?.conditions ?? [];
  let changed = false;
  const out: Condition[] = current.map((c) => {
    if (!NODE_CONDITIONS.includes(c.type) || c.status === 'Unknown') return c;
    changed = true;
    return { ...c, status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastTransitionTime: iso };
  });
  for (const type of NODE_CONDITIONS) {
    if (current.some((c) => c.type === type)) continue;
    changed = true;
    out.push({
      type, status: 'Unknown', reason: 'NodeStatusNeverUpdated', message: 'Kubelet never posted node status.',
      lastHeartbeatTime: node.metadata.creationTimestamp, lastTransitionTime: iso,
    });
  }
  return changed ? out : undefined;
}

const isLifecycleTaint = (t: Taint) => t.key === TAINT_NODE_NOT_READY || t.key === TAINT_NODE_UNREACHABLE;

/**
 * The NoSchedule taints a node's state calls for (applied at once, without
 * rate limit): not-ready or unreachable by its Ready condition, and
 * unschedulable for a cordoned node. Other taints are kept as they are.
 */
export function withNoScheduleTaints(node: Node, taints: readonly Taint[]): Taint[] {
  const ready = readyStatus(node);
  const want: Taint[] = [];
  if (ready === 'False') want.push({ key: TAINT_NODE_NOT_READY, effect: 'NoSchedule' });
  if (ready === 'Unknown') want.push({ key: TAINT_NODE_UNREACHABLE, effect: 'NoSchedule' });
  if (node.spec?.unschedulable) want.push({ key: TAINT_NODE_UNSCHEDULABLE, effect: 'NoSchedule' });
  const managed = (t: Taint) => t.effect === 'NoSchedule' && (isLifecycleTaint(t) || t.key === TAINT_NODE_UNSCHEDULABLE);
  const kept = taints.filter((t) => !managed(t) || want.some((w) => w.key === t.key));
  return [...kept, ...want.filter((w) => !kept.some((t) => t.key === w.key && t.effect === 'NoSchedule'))];
}

/** The NoExecute taint the node's Ready condition calls for: not-ready (False), unreachable (Unknown), none (True). */
export function wantedNoExecuteTaint(node: Node): string | undefined {
  const ready = readyStatus(node);
  if (ready === 'False') return TAINT_NODE_NOT_READY;
  if (ready === 'Unknown') return TAINT_NODE_UNREACHABLE;
  return undefined;
}

export type NoExecuteAction =
  /** Nothing to do. */
  | { kind: 'none' }
  /** Remove the lifecycle NoExecute taints (node ready again, or a cluster-wide outage). */
  | { kind: 'remove' }
  /** Replace one lifecycle taint with the other at once (NotReady ⇄ Unknown), keeping the eviction clock. */
  | { kind: 'swap'; key: string }
  /** Add the taint: rate-limited by the node's zone. */
  | { kind: 'add'; key: string };

/** What to do about a node's lifecycle NoExecute taints. `suspend`: every zone is fully disrupted. */
export function noExecuteAction(node: Node, taints: readonly Taint[], suspend: boolean): NoExecuteAction {
  const have = taints.filter((t) => t.effect === 'NoExecute' && isLifecycleTaint(t));
  const want = suspend ? undefined : wantedNoExecuteTaint(node);
  if (!want) return have.length ? { kind: 'remove' } : { kind: 'none' };
  if (have.length === 1 && have[0]!.key === want) return { kind: 'none' };
  if (have.length) return { kind: 'swap', key: want };
  return { kind: 'add', key: want };
}

/** Applies a NoExecute action to a taint list. */
export function applyNoExecute(taints: readonly Taint[], action: NoExecuteAction, now: number): Taint[] {
  if (action.kind === 'none') return [...taints];
  const others = taints.filter((t) => !(t.effect === 'NoExecute' && isLifecycleTaint(t)));
  if (action.kind === 'remove') return others;
  const prior = taints.find((t) => t.effect === 'NoExecute' && isLifecycleTaint(t));
  // A swap keeps when the node first went bad, so pods' toleration clocks keep running.
  const timeAdded = action.kind === 'swap' && prior?.timeAdded ? prior.timeAdded : new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
  return [...others, { key: action.key, effect: 'NoExecute', timeAdded }];
}

// ---- zones -----------------------------------------------------------------------------

export type ZoneState = 'Normal' | 'PartialDisruption' | 'FullDisruption';

/** A node's zone key (region and zone labels, as Kubernetes' GetZoneKey); '' when unlabelled. */
export function zoneKey(node: Node): string {
  const l = node.metadata.labels ?? {};
  const region = l['topology.kubernetes.io/region'] ?? '';
  const zone = l['topology.kubernetes.io/zone'] ?? '';
  return region || zone ? `${region}:\u0000:${zone}` : '';
}

/**
 * A zone's state from its nodes' Ready statuses: FullDisruption when none is
 * ready; PartialDisruption when more than two are not ready and they are at
 * least `unhealthyThreshold` of the zone; else Normal.
 */
export function zoneState(statuses: readonly string[], unhealthyThreshold: number): ZoneState {
  const ready = statuses.filter((s) => s === 'True').length;
  const notReady = statuses.length - ready;
  if (ready === 0 && notReady > 0) return 'FullDisruption';
  if (notReady > 2 && notReady / statuses.length >= unhealthyThreshold) return 'PartialDisruption';
  return 'Normal';
}

export interface EvictionRates {
  /** --node-eviction-rate (0.1 nodes/s). */
  normal: number;
  /** --secondary-node-eviction-rate (0.01 nodes/s). */
  secondary: number;
  /** --large-cluster-size-threshold (50). */
  largeClusterThreshold: number;
}

/**
 * Nodes per second a zone's nodes may be tainted for eviction: the normal
 * rate when healthy; in a partial disruption, the secondary rate for a large
 * zone and none for a small one; a fully disrupted zone (while others are
 * fine) at the normal rate. When every zone is fully disrupted, the
 * controller suspends evictions altogether (see noExecuteAction's suspend).
 */
export function zoneRate(state: ZoneState, zoneSize: number, r: EvictionRates): number {
  switch (state) {
    case 'Normal': return r.normal;
    case 'PartialDisruption': return zoneSize > r.largeClusterThreshold ? r.secondary : 0;
    case 'FullDisruption': return r.normal;
  }
}

/** A token bucket of burst 1 (client-go's flowcontrol limiter as the eviction queues use it). */
export class TokenBucket {
  private tokens = 1;
  private last: number | undefined;

  constructor(public qps: number) {}

  /** Takes a token if one is there at `now`. */
  tryAccept(now: number): boolean {
    if (this.last !== undefined && this.qps > 0) this.tokens = Math.min(1, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    if (this.qps <= 0 || this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Changes the rate (a zone changed state); a bucket that had stopped starts full again, as a new limiter would. */
  setRate(qps: number): void {
    if (qps === this.qps) return;
    if (this.qps <= 0 && qps > 0) this.tokens = 1;
    this.qps = qps;
  }
}
