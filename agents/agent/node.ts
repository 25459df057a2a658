// The node agent's Node object: registered at start (created, or its status
// and labels brought up to date when it exists — an agent restart), then its
// status kept current: conditions re-measured every status interval and
// written when one changed or a minute passed (the heartbeat; the Lease is
// the fast one). The pod CIDR comes from the node IPAM controller (or
// --pod-cidr at registration, as kubelet's standalone mode).
import { type ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import type { Logger } from '../informer/informer.ts';
import type { Node } from '../informer/types.ts';
import { type Measurements, type NodeCondition, type ResourceList, conditionsChanged, conditionsFrom, mergeConditions } from './node-status.ts';

const NODES = resolveKind('nodes')!;
const HEARTBEAT_MS = 60_000;

export interface NodeOptions {
  client: ApiClient;
  name: string;
  /** The node's InternalIP (a loopback address such as 127.0.0.11). */
  address: string;
  labels: Record<string, string>;
  capacity: ResourceList;
  allocatable: ResourceList;
  nodeInfo: Record<string, string>;
  /** The port of the agent's endpoint (logs), published as status.daemonEndpoints.kubeletEndpoint.Port. */
  kubeletPort: number;
  /** Set spec.podCIDR at registration (no IPAM controller). */
  podCIDR?: string;
  measure: () => Measurements;
  /** Appended to the Ready message (e.g. how limits are enforced). */
  readyNote?: () => string;
  statusIntervalMs?: number;
  log: Logger;
}

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class NodeStatusManager {
  node?: Node;
  statusWrites = 0;
  private conditions?: NodeCondition[];
  private lastWrite = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly o: NodeOptions) {}

  get path(): string {
    return resourcePath(NODES, '', this.o.name);
  }

  private status(conditions: NodeCondition[]): Record<string, unknown> {
    return {
      capacity: this.o.capacity,
      allocatable: this.o.allocatable,
      conditions,
      addresses: [{ type: 'InternalIP', address: this.o.address }, { type: 'Hostname', address: this.o.name }],
      daemonEndpoints: { kubeletEndpoint: { Port: this.o.kubeletPort } },
      nodeInfo: this.o.nodeInfo,
    };
  }

  private currentConditions(): NodeCondition[] {
    return conditionsFrom(this.o.measure(), this.o.readyNote?.() ?? '');
  }

  /** Creates the Node, or (restart) updates the labels and status of the existing one. */
  async register(): Promise<Node> {
    const t = now();
    this.conditions = mergeConditions(undefined, this.currentConditions(), t);
    const body = {
      apiVersion: 'v1', kind: 'Node',
      metadata: { name: this.o.name, labels: this.o.labels },
      spec: this.o.podCIDR ? { podCIDR: this.o.podCIDR, podCIDRs: [this.o.podCIDR] } : {},
      status: this.status(this.conditions),
    };
    try {
      this.node = await this.o.client.create<Node>(resourcePath(NODES), body);
      this.o.log.info({ node: this.o.name }, 'node registered');
    } catch (e) {
      if (!(e instanceof ApiClientError && e.code === 409)) throw e;
      await this.o.client.patch(this.path, { metadata: { labels: this.o.labels } }, 'application/merge-patch+json');
      this.node = await this.o.client.patch<Node>(`${this.path}/status`, { status: this.status(this.conditions) }, 'application/merge-patch+json');
      this.o.log.info({ node: this.o.name }, 'node existed: status brought up to date');
    }
    this.statusWrites++;
    this.lastWrite = Date.now();
    return this.node;
  }

  /** Re-measures; writes the status when a condition changed or the heartbeat is due. */
  async update(force = false): Promise<void> {
    const next = this.currentConditions();
    if (!force && !conditionsChanged(this.conditions, next) && Date.now() - this.lastWrite < HEARTBEAT_MS) return;
    const merged = mergeConditions(this.conditions, next, now());
    this.node = await this.o.client.patch<Node>(`${this.path}/status`, { status: this.status(merged) }, 'application/merge-patch+json');
    this.conditions = merged;
    this.statusWrites++;
    this.lastWrite = Date.now();
  }

  start(): void {
    this.timer = setInterval(() => void this.update().catch((e) => this.o.log.warn({ node: this.o.name, err: (e as Error).message }, 'node status update failed')), this.o.statusIntervalMs ?? 10_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The node's pod CIDR, once the IPAM controller assigned it (polled). */
  async waitForPodCIDR(signal?: AbortSignal, pollMs = 500): Promise<string> {
    for (;;) {
      const cidr = (this.node?.spec as { podCIDR?: string } | undefined)?.podCIDR;
      if (cidr) return cidr;
      if (signal?.aborted) throw new Error('stopped');
      await new Promise((r) => setTimeout(r, pollMs));
      try {
        this.node = await this.o.client.get<Node>(this.path);
      } catch (e) {
        this.o.log.warn({ err: (e as Error).message }, 'reading the node for its pod CIDR failed');
      }
    }
  }
}
