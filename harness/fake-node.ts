// Nodes for tests and benchmarks before the scheduler and the node agent
// exist: FakeNodes registers N Node objects, binds every unbound pod to one
// of them (honouring spec.nodeName, nodeSelector and a required node
// affinity on metadata.name, as DaemonSet pods carry), marks bound pods
// Running and Ready in one status write, and confirms the graceful deletion
// of pods on its nodes. Tests steer it: make a pod un-ready, fail or succeed,
// stop renewing a node's Lease.
import { type ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { Informer, keyOf } from '../agents/informer/informer.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { WorkQueue, runWorkers } from '../agents/informer/workqueue.ts';

const NODES = resolveKind('nodes')!;
const PODS = resolveKind('pods')!;
const LEASES = resolveKind('leases')!;

export interface FakeNodesOptions {
  client: ApiClient;
  nats: string;
  /** Node names (default node-1 … node-N for `count`, default 2). */
  names?: string[];
  count?: number;
  labels?: Record<string, string>;
  /** status.allocatable/capacity (default cpu 64, memory 256Gi, pods 1000). */
  allocatable?: Record<string, string>;
  /** Renew each node's Lease in kube-node-lease this often (ms); 0: no leases (default 0). */
  leaseRenewMs?: number;
  /** Concurrent pod writes (default 16). */
  workers?: number;
  /** Leave pods Running but not Ready until setReady (default false). */
  startUnready?: boolean;
  /** Bind unbound pods (default true); false when a real scheduler runs. */
  bind?: boolean;
}

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class FakeNodes {
  readonly names: string[];
  readonly pods: Informer<Pod>;
  /** API writes made, by kind of write. */
  readonly writes = { bind: 0, status: 0, delete: 0, node: 0, lease: 0 };
  private readonly queue = new WorkQueue<string>({ name: 'fake-nodes' });
  private readonly unready = new Set<string>();
  private readonly silent = new Set<string>();
  private readonly finished = new Map<string, { phase: 'Succeeded' | 'Failed'; exitCode: number }>();
  private running?: Promise<void>;
  private leaseTimer?: NodeJS.Timeout;
  private next = 0;
  private ip = 0;

  constructor(private readonly o: FakeNodesOptions) {
    this.names = o.names ?? Array.from({ length: o.count ?? 2 }, (_, i) => `node-${i + 1}`);
    this.pods = new Informer<Pod>({ client: o.client, nats: o.nats, kind: PODS, name: 'fake-nodes' });
    this.pods.addEventHandler({
      onAdd: (p) => this.queue.add(keyOf(p)),
      onUpdate: (_o, p) => this.queue.add(keyOf(p)),
    });
  }

  async start(): Promise<void> {
    const alloc = this.o.allocatable ?? { cpu: '64', memory: '256Gi', pods: '1000', 'ephemeral-storage': '1Ti' };
    await Promise.all(this.names.map(async (name, i) => {
      const node = {
        apiVersion: 'v1', kind: 'Node',
        metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', ...this.o.labels } },
        spec: {},
        status: {
          capacity: alloc, allocatable: alloc,
          addresses: [{ type: 'InternalIP', address: `127.0.${200 + Math.floor(i / 250)}.${(i % 250) + 1}` }, { type: 'Hostname', address: name }],
          conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'fake node is ready', lastHeartbeatTime: now(), lastTransitionTime: now() }],
        },
      };
      try {
        await this.o.client.create(resourcePath(NODES), node);
        this.writes.node++;
      } catch (e) {
        if (!(e instanceof ApiClientError && e.code === 409)) throw e;
      }
    }));
    if (this.o.leaseRenewMs) {
      await this.renewLeases();
      this.leaseTimer = setInterval(() => void this.renewLeases().catch(() => {}), this.o.leaseRenewMs);
      this.leaseTimer.unref();
    }
    await this.pods.start();
    this.running = runWorkers(this.queue, this.o.workers ?? 16, (key) => this.sync(key), { onError: () => {} });
  }

  async stop(): Promise<void> {
    clearInterval(this.leaseTimer);
    this.queue.shutdown();
    await this.running;
    await this.pods.stop();
  }

  /** Makes a pod's Ready condition follow `ready`. */
  setReady(namespace: string, name: string, ready: boolean): void {
    const key = `${namespace}/${name}`;
    if (ready) this.unready.delete(key);
    else this.unready.add(key);
    this.queue.add(key);
  }

  /** Ends a pod's containers: Succeeded (exit 0) or Failed. */
  finish(namespace: string, name: string, phase: 'Succeeded' | 'Failed', exitCode = phase === 'Succeeded' ? 0 : 1): void {
    const key = `${namespace}/${name}`;
    this.finished.set(key, { phase, exitCode });
    this.queue.add(key);
  }

  /**
   * Stops (or resumes) renewing a node's Lease, as a node that went silent:
   * a silent node writes nothing (no pod status, no deletion confirmations).
   * Resuming posts Ready=True node status, as a node agent that reconnects
   * does, and catches up with its pods.
   */
  async setSilent(node: string, silent: boolean): Promise<void> {
    if (silent) {
      this.silent.add(node);
      return;
    }
    this.silent.delete(node);
    await this.renewLeases();
    const path = resourcePath(NODES, '', node);
    const cur = await this.o.client.get<KubeObject & { status?: { conditions?: Record<string, unknown>[] } }>(path);
    const others = (cur.status?.conditions ?? []).filter((c) => c.type !== 'Ready');
    const ready = { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'fake node is ready', lastHeartbeatTime: now(), lastTransitionTime: now() };
    await this.o.client.update(`${path}/status`, { ...cur, status: { ...cur.status, conditions: [...others, ready] } });
    this.writes.node++;
    for (const p of this.pods.byNode(node)) this.queue.add(keyOf(p));
  }

  private async renewLeases(): Promise<void> {
    const renewTime = new Date().toISOString().replace('Z', '000Z').replace(/(\.\d{6})\d*Z$/, '$1Z');
    await Promise.all(this.names.filter((n) => !this.silent.has(n)).map(async (name) => {
      const path = resourcePath(LEASES, 'kube-node-lease', name);
      const spec = { holderIdentity: name, leaseDurationSeconds: 40, renewTime };
      try {
        await this.o.client.patch(path, { spec }, 'application/merge-patch+json');
      } catch (e) {
        if (!(e instanceof ApiClientError && e.code === 404)) throw e;
        await this.o.client.create(resourcePath(LEASES, 'kube-node-lease'), { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'kube-node-lease' }, spec });
      }
      this.writes.lease++;
    }));
  }

  /** Where an unbound pod may go, or undefined to leave it for someone else. */
  private placement(pod: Pod): string | undefined {
    const spec = pod.spec as Record<string, any> | undefined;
    const terms: any[] = spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
    for (const t of terms) {
      for (const f of t.matchFields ?? []) {
        if (f.key === 'metadata.name' && f.operator === 'In') return (f.values as string[]).find((v) => this.names.includes(v));
      }
    }
    const sel = spec?.nodeSelector as Record<string, string> | undefined;
    const fits = (n: string) => !sel || Object.entries(sel).every(([k, v]) => (k === 'kubernetes.io/hostname' ? v === n : this.o.labels?.[k] === v));
    for (let i = 0; i < this.names.length; i++) {
      const n = this.names[(this.next + i) % this.names.length]!;
      if (fits(n)) {
        this.next = (this.next + i + 1) % this.names.length;
        return n;
      }
    }
    return undefined;
  }

  private async sync(key: string): Promise<void> {
    const pod = this.pods.getByKey(key);
    if (!pod) return;
    const m = pod.metadata;
    const node = pod.spec?.nodeName;
    if (!node) {
      if (this.o.bind === false || m.deletionTimestamp) return;
      const target = this.placement(pod);
      if (!target) return;
      await this.o.client.create(resourcePath(PODS, m.namespace, m.name, 'binding'), {
        apiVersion: 'v1', kind: 'Binding', metadata: { name: m.name, namespace: m.namespace }, target: { apiVersion: 'v1', kind: 'Node', name: target },
      }).catch((e) => { if (!(e instanceof ApiClientError && (e.code === 409 || e.code === 404))) throw e; });
      this.writes.bind++;
      return;
    }
    if (!this.names.includes(node) || this.silent.has(node)) return;
    if (m.deletionTimestamp) {
      await this.o.client.delete(resourcePath(PODS, m.namespace, m.name), { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: m.uid } })
        .catch((e) => { if (!(e instanceof ApiClientError && (e.code === 404 || e.code === 409))) throw e; });
      this.writes.delete++;
      return;
    }
    const status = this.desiredStatus(pod, key);
    if (!status) return;
    await this.o.client.update(resourcePath(PODS, m.namespace, m.name, 'status'), { ...pod, status })
      .catch((e) => { if (!(e instanceof ApiClientError && (e.code === 404 || e.code === 409))) throw e; else this.queue.addAfter(key, 50); });
    this.writes.status++;
  }

  /** The status this pod should have, or undefined when it already has it. */
  private desiredStatus(pod: Pod, key: string): Record<string, unknown> | undefined {
    const cur = (pod.status ?? {}) as Record<string, any>;
    const done = this.finished.get(key);
    const phase = done?.phase ?? 'Running';
    const ready = !done && !this.unready.has(key);
    const curReady = (cur.conditions ?? []).find((c: any) => c.type === 'Ready')?.status === 'True';
    if (cur.phase === phase && curReady === ready) return undefined;
    if (cur.phase === 'Succeeded' || cur.phase === 'Failed') return undefined; // terminal phases never change
    const t = now();
    const cond = (type: string, status: boolean) => ({ type, status: status ? 'True' : 'False', lastTransitionTime: t, lastProbeTime: null });
    const containers = (pod.spec?.containers ?? []).map((c) => ({
      name: c.name, image: c.image ?? '', imageID: '', ready, restartCount: 0, started: !done,
      state: done ? { terminated: { exitCode: done.exitCode, reason: done.phase === 'Succeeded' ? 'Completed' : 'Error', startedAt: cur.startTime ?? t, finishedAt: t } } : { running: { startedAt: cur.startTime ?? t } },
    }));
    return {
      ...cur,
      phase,
      podIP: cur.podIP ?? this.nextIp(),
      hostIP: '127.0.200.1',
      startTime: cur.startTime ?? t,
      conditions: [cond('PodScheduled', true), cond('Initialized', true), cond('ContainersReady', ready), cond('Ready', ready)],
      containerStatuses: containers,
    };
  }

  private nextIp(): string {
    const n = this.ip++;
    return `127.100.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`;
  }
}

export type { KubeObject };
