// The simulated runtime: N hollow nodes in one process, for scale tests and
// benchmarks (kubemark's hollow kubelets). Each is a real Node with a real
// Lease and status heartbeats; its pods run no process: after a start
// latency they are Running and Ready (or, at the given failure rate, Failed
// with exit code 1), with a pod IP from the node's pod CIDR; a deleted pod
// is confirmed (DELETE with grace 0) after the same latency. All nodes share
// one pod informer: one LIST+WATCH of all pods, kept to the pods bound to
// these nodes by a client-side filter (no field selector names a set of nodes).
import { type ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import { Informer, type Logger, keyOf } from '../informer/informer.ts';
import type { Pod } from '../informer/types.ts';
import { formatIPv4, parseIPv4 } from '../../api/ipv4.ts';
import { NodeLease } from './lease.ts';
import { NodeStatusManager } from './node.ts';
import { type Measurements, type ResourceList } from './node-status.ts';
import { PodIPAllocator } from './pod-ip.ts';
import { podStatus } from './pod-status.ts';

const PODS = resolveKind('pods')!;

export interface SimOptions {
  client: ApiClient;
  count: number;
  namePrefix: string;
  /** The first node's address; the others follow (127.0.64.1, .2, …). */
  baseAddress: string;
  labels: Record<string, string>;
  capacity: ResourceList;
  allocatable: ResourceList;
  nodeInfo: Record<string, string>;
  kubeletPort: number;
  startLatencyMs: number;
  failureRate: number;
  statusIntervalMs?: number;
  leaseIntervalMs?: number;
  log: Logger;
  /** Deterministic failures for tests; default Math.random. */
  random?: () => number;
}

/** A hollow node measures nothing: it never has pressure. */
const NO_PRESSURE: Measurements = { memoryAvailableBytes: 2 ** 40, diskAvailableBytes: 2 ** 40, diskTotalBytes: 2 ** 40, pidsUsed: 0, pidMax: 2 ** 22 };

interface HollowNode {
  name: string;
  address: string;
  status: NodeStatusManager;
  lease?: NodeLease;
  ips?: Promise<PodIPAllocator>;
}

export class SimNodes {
  readonly nodes = new Map<string, HollowNode>();
  readonly pods: Informer<Pod>;
  readonly counters = { started: 0, failed: 0, deleted: 0, statusWrites: 0 };
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly done = new Set<string>();
  private readonly abort = new AbortController();

  constructor(private readonly o: SimOptions) {
    const base = parseIPv4(o.baseAddress);
    if (base === undefined) throw new Error(`invalid address ${o.baseAddress}`);
    for (let i = 0; i < o.count; i++) {
      const name = `${o.namePrefix}${i}`;
      const address = formatIPv4(base + i);
      this.nodes.set(name, {
        name, address,
        status: new NodeStatusManager({
          client: o.client, name, address, labels: { ...o.labels, 'kubernetes.io/hostname': name }, capacity: o.capacity, allocatable: o.allocatable,
          nodeInfo: { ...o.nodeInfo, containerRuntimeVersion: 'flotilla-sim://0.1.0' }, kubeletPort: o.kubeletPort, measure: () => NO_PRESSURE,
          readyNote: () => '; hollow node (simulated runtime: no processes)', statusIntervalMs: o.statusIntervalMs, log: o.log,
        }),
      });
    }
    this.pods = new Informer<Pod>({
      client: o.client, kind: PODS, source: 'watch', name: `pods@${o.namePrefix}*`, logger: o.log,
      filter: (p) => this.nodes.has((p as Pod).spec?.nodeName ?? ''),
    });
  }

  async start(): Promise<void> {
    // Registration in bounded parallel: a thousand nodes should not open a thousand requests at once.
    const all = [...this.nodes.values()];
    for (let i = 0; i < all.length; i += 50) {
      await Promise.all(all.slice(i, i + 50).map(async (n) => {
        const node = await n.status.register();
        n.lease = new NodeLease({ client: this.o.client, node: n.name, nodeUid: node.metadata.uid, intervalMs: this.o.leaseIntervalMs, log: this.o.log });
      }));
    }
    // Spread the renewals over the interval rather than all at once.
    const spread = this.o.leaseIntervalMs ?? 10_000;
    all.forEach((n, i) => {
      const t = setTimeout(() => {
        n.lease!.start();
        n.status.start();
      }, Math.floor((spread * i) / Math.max(1, all.length)));
      t.unref();
    });
    this.pods.addEventHandler({
      onAdd: (p) => this.sync(p),
      onUpdate: (_o, p) => this.sync(p),
      onDelete: (p) => this.forget(p),
    });
    await this.pods.start();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const t of this.pending.values()) clearTimeout(t);
    for (const n of this.nodes.values()) {
      n.lease?.stop();
      n.status.stop();
    }
    await this.pods.stop();
  }

  private later(key: string, fn: () => Promise<void>): void {
    if (this.pending.has(key)) return;
    const t = setTimeout(() => {
      fn().catch((e) => this.o.log.warn({ pod: key, err: (e as Error).message }, 'hollow pod write failed')).finally(() => {
        this.pending.delete(key);
        // What changed meanwhile is looked at again.
        const cur = this.pods.getByKey(key);
        if (cur) this.sync(cur);
      });
    }, this.o.startLatencyMs);
    t.unref();
    this.pending.set(key, t);
  }

  private sync(pod: Pod): void {
    const key = keyOf(pod);
    const uid = pod.metadata.uid ?? '';
    const node = this.nodes.get(pod.spec?.nodeName ?? '');
    if (!node) return;
    if (pod.metadata.deletionTimestamp) {
      this.later(key, async () => {
        await this.o.client.delete(resourcePath(PODS, pod.metadata.namespace, pod.metadata.name), { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid } })
          .catch((e) => { if (!(e instanceof ApiClientError && (e.code === 404 || e.code === 409))) throw e; });
        this.counters.deleted++;
      });
      return;
    }
    if (this.done.has(uid) || pod.status?.phase === 'Running' || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') {
      this.done.add(uid);
      // Marked not ready by the node lifecycle controller while this process was down: a kubelet writes its Ready again.
      const conds = pod.status?.conditions ?? [];
      if (pod.status?.phase === 'Running' && conds.some((c) => c.type === 'Ready' && c.status !== 'True')) {
        this.later(key, () => this.o.client.patch(resourcePath(PODS, pod.metadata.namespace, pod.metadata.name, 'status'), { status: { conditions: conds.map((c) => (c.type === 'Ready' ? { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') } : c)) } }, 'application/merge-patch+json').then(() => undefined));
      }
      return;
    }
    this.later(key, async () => {
      const cur = this.pods.getByKey(key);
      if (!cur || cur.metadata.uid !== uid || cur.metadata.deletionTimestamp || this.done.has(uid)) return;
      node.ips ??= node.status.waitForPodCIDR(this.abort.signal).then((c) => new PodIPAllocator(c));
      const ip = (await node.ips).allocate(uid);
      const fail = (this.o.random ?? Math.random)() < this.o.failureRate;
      const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const containers = (cur.spec?.containers ?? []).map((c) => ({
        name: c.name, image: c.image ?? '', restartCount: 0, ready: !fail, started: !fail,
        ...(fail ? { terminated: { exitCode: 1, reason: 'Error', message: 'simulated failure', startedAt: now, finishedAt: now } } : { running: { startedAt: now, containerID: `sim://${uid}/${c.name}` } }),
      }));
      const status = podStatus({ pod: { ...cur, spec: { ...cur.spec!, restartPolicy: fail ? 'Never' : cur.spec?.restartPolicy } }, init: [], containers, hostIP: node.address, podIP: ip, startTime: now }, cur.status, now);
      await this.o.client.patch(resourcePath(PODS, cur.metadata.namespace, cur.metadata.name, 'status'), { status }, 'application/merge-patch+json');
      this.done.add(uid);
      this.counters.statusWrites++;
      if (fail) this.counters.failed++;
      else this.counters.started++;
    });
  }

  private forget(pod: Pod): void {
    const uid = pod.metadata.uid ?? '';
    const node = this.nodes.get(pod.spec?.nodeName ?? '');
    this.done.delete(uid);
    void node?.ips?.then((a) => a.release(uid));
  }
}
