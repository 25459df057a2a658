// The scheduler: informers feed the cache (bound pods, nodes) and the
// scheduling queue (pending pods whose schedulerName is ours); the leader
// pops pods one at a time, decides synchronously over the cache, assumes
// the pod on its node at once and sends the binding without waiting for it
// (up to --parallel-bindings in flight), so decisions run at the
// algorithm's speed while bindings stream through the log. A pod that fits
// nowhere gets PodScheduled=False/Unschedulable with kube-scheduler's
// message and a FailedScheduling event, and waits for a cluster event.
import { setImmediate as yieldToEvents } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type pino from 'pino';
import type client from 'prom-client';
import { type ApiClient, ApiClientError, ApiConnectionError, resourcePath } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import type { SharedInformerFactory } from '../informer/factory.ts';
import { type Informer, keyOf } from '../informer/informer.ts';
import type { KubeObject, Node, Pod } from '../informer/types.ts';
import type { EventRecorder } from '../recorder/recorder.ts';
import { Algorithm, FitError } from './algorithm.ts';
import { PodInfo } from './pod-info.ts';
import { Preemptor } from './preemption.ts';
import { SchedulerCache, clusterView } from './cache.ts';
import type { ClusterView, Profile } from './framework.ts';
import { type SchedulerMetrics, schedulerMetrics } from './metrics.ts';
import { DEFAULT_SCHEDULER_NAME, defaultProfile } from './profile.ts';
import { type QueuedPod, SchedulingQueue } from './queue.ts';

const PODS = resolveKind('pods')!;

export interface SchedulerOptions {
  client: ApiClient;
  informers: SharedInformerFactory;
  recorder: EventRecorder;
  log: pino.Logger;
  registry: client.Registry;
  /** Bindings in flight at once (default 64). */
  parallelBindings?: number;
  /** 0: kube-scheduler's adaptive default. */
  percentageOfNodesToScore?: number;
  profile?: Profile;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  now?: () => number;
}

const isTerminal = (p: Pod) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';

export class Scheduler {
  readonly cache = new SchedulerCache();
  readonly queue: SchedulingQueue;
  readonly algorithm: Algorithm;
  readonly metrics: SchedulerMetrics;
  readonly view: ClusterView;
  readonly preemptor: Preemptor;
  private readonly profile: Profile;
  private readonly pods: Informer<Pod>;
  private readonly nodes: Informer<Node>;
  private readonly listers: Record<string, Informer<KubeObject>>;
  private inFlight = 0;
  private slotFreed?: () => void;
  private readonly bindings = new Set<Promise<void>>();
  private readonly now: () => number;
  /** Counts for tests and /healthz. */
  readonly stats = { scheduled: 0, unschedulable: 0, errors: 0, bindFailures: 0, bindUnknown: 0, preemptions: 0 };

  constructor(private readonly o: SchedulerOptions) {
    this.now = o.now ?? Date.now;
    this.profile = o.profile ?? defaultProfile(o.client);
    this.queue = new SchedulingQueue({ initialBackoffMs: o.initialBackoffMs, maxBackoffMs: o.maxBackoffMs, now: this.now });
    this.algorithm = new Algorithm(this.profile, { percentageOfNodesToScore: o.percentageOfNodesToScore });
    this.metrics = schedulerMetrics(o.registry);
    this.preemptor = new Preemptor(this.algorithm, this.cache);
    const inf = o.informers;
    this.pods = inf.informer<Pod>('pods');
    this.nodes = inf.informer<Node>('nodes');
    this.listers = Object.fromEntries(['persistentvolumeclaims', 'persistentvolumes', 'storageclasses', 'services', 'replicasets', 'statefulsets', 'namespaces', 'poddisruptionbudgets']
      .map((r) => [r, inf.informer(r)]));
    this.view = clusterView(this.cache, {
      namespaceLabels: (ns) => this.listers.namespaces!.get('', ns)?.metadata?.labels,
      get: (r, ns, name) => this.listers[r]!.get(ns, name),
      list: (r, ns) => this.listers[r]!.list(ns),
    });
    this.pods.addEventHandler({
      onAdd: (p) => this.onPod(undefined, p),
      onUpdate: (old, p) => this.onPod(old, p),
      onDelete: (p) => this.onPodDelete(p),
    });
    this.nodes.addEventHandler({
      onAdd: (n) => { this.cache.addOrUpdateNode(n); this.queue.moveAllToActiveOrBackoff(); },
      onUpdate: (old, n) => {
        this.cache.addOrUpdateNode(n);
        if (nodeSchedulingChanged(old, n)) this.queue.moveAllToActiveOrBackoff();
      },
      onDelete: (n) => this.cache.removeNode(n.metadata.name),
    });
    // A claim, volume or class that appears or changes may unblock pods waiting for volumes.
    for (const r of ['persistentvolumeclaims', 'persistentvolumes', 'storageclasses']) {
      this.listers[r]!.addEventHandler({ onAdd: () => this.queue.moveAllToActiveOrBackoff(), onUpdate: () => this.queue.moveAllToActiveOrBackoff() });
    }
  }

  private responsible(p: Pod): boolean {
    return (p.spec?.schedulerName ?? DEFAULT_SCHEDULER_NAME) === this.profile.schedulerName;
  }

  private onPod(old: Pod | undefined, p: Pod): void {
    const key = keyOf(p);
    if (p.spec?.nodeName) {
      this.queue.delete(key);
      this.cache.unnominate(key);
      if (isTerminal(p)) {
        this.cache.removePod(key);
        // Its resources are free again.
        if (old && !isTerminal(old)) this.queue.moveAllToActiveOrBackoff();
      } else {
        this.cache.addOrUpdatePod(p);
      }
      return;
    }
    // Our own binding is on its way: the pending copy must not be scheduled again.
    if (this.cache.isAssumed(key)) return;
    if (p.metadata.deletionTimestamp || !this.responsible(p) || ((p.spec as { schedulingGates?: unknown[] })?.schedulingGates?.length ?? 0) > 0) {
      this.queue.delete(key);
      this.cache.unnominate(key);
      return;
    }
    // A nomination (ours, or a predecessor's) keeps the room preemption made.
    const nominated = (p.status as { nominatedNodeName?: string } | undefined)?.nominatedNodeName;
    if (nominated) this.cache.nominate(new PodInfo(p), nominated);
    else this.cache.unnominate(key);
    this.queue.update(p);
  }

  private onPodDelete(p: Pod): void {
    const key = keyOf(p);
    this.queue.delete(key);
    this.cache.unnominate(key);
    if (p.spec?.nodeName || this.cache.isAssumed(key)) {
      this.cache.removePod(key);
      this.queue.moveAllToActiveOrBackoff();
    }
  }

  /** Every replica: caches warm. */
  async start(): Promise<void> {
    await this.o.informers.start();
  }

  /**
   * Schedules until `signal` aborts (the leader's term). First waits until
   * the pod cache has every pod write a LIST shows, so that a new leader
   * does not decide from a view older than its predecessor's bindings.
   */
  async run(signal: AbortSignal): Promise<void> {
    this.metrics.leading.set(1);
    await this.catchUp().catch((e) => this.o.log.warn({ err: (e as Error).message }, 'could not confirm the pod cache is current; scheduling anyway'));
    this.queue.run();
    const expiry = setInterval(() => {
      for (const key of this.cache.expire(this.now())) {
        this.o.log.warn({ pod: key }, 'assumed pod expired: no event confirmed its binding');
        // Still pending (a binding whose outcome was unknown did not happen): schedule it again.
        const p = this.pods.getByKey(key);
        if (p && !p.spec?.nodeName) this.onPod(undefined, p);
      }
      const c = this.queue.counts();
      this.metrics.pending.set({ queue: 'active' }, c.active);
      this.metrics.pending.set({ queue: 'backoff' }, c.backoff);
      this.metrics.pending.set({ queue: 'unschedulable' }, c.unschedulable);
    }, 1000);
    const onAbort = () => {
      this.queue.close();
      this.slotFreed?.();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      let n = 0;
      const limit = this.o.parallelBindings ?? 64;
      while (!signal.aborted) {
        while (this.inFlight >= limit && !signal.aborted) await new Promise<void>((r) => { this.slotFreed = r; });
        if (signal.aborted) break;
        // Let informer events in between decisions under a long burst.
        const qp = this.queue.tryPop() ?? (await this.queue.pop());
        if (!qp) break;
        this.scheduleOne(qp);
        if (++n % 32 === 0) await yieldToEvents();
      }
    } finally {
      clearInterval(expiry);
      signal.removeEventListener('abort', onAbort);
      await Promise.race([Promise.allSettled([...this.bindings]), new Promise((r) => setTimeout(r, 5000).unref())]);
      this.metrics.leading.set(0);
    }
  }

  private async catchUp(): Promise<void> {
    const list = await this.o.client.list<Pod>(resourcePath(PODS));
    let max = 0;
    for (const p of list.items) max = Math.max(max, Number(p.metadata.resourceVersion ?? 0));
    if (max) await this.pods.waitForResourceVersion(max, 30_000);
  }

  /** One decision: the pod is assumed on a node and its binding sent, or it is marked unschedulable. */
  scheduleOne(qp: QueuedPod): void {
    const info = qp.info;
    const cur = this.pods.getByKey(info.key);
    if (!cur || cur.spec?.nodeName || cur.metadata.deletionTimestamp || cur.metadata.uid !== info.pod.metadata.uid) {
      this.queue.done(info.key);
      return;
    }
    const t0 = performance.now();
    let decision;
    try {
      decision = this.algorithm.schedule(info, this.view);
    } catch (e) {
      this.metrics.algorithm.observe((performance.now() - t0) / 1000);
      if (e instanceof FitError) {
        this.stats.unschedulable++;
        this.metrics.attempts.inc({ result: 'unschedulable', profile: this.profile.schedulerName });
        this.postFilter(qp, e);
      } else {
        this.stats.errors++;
        this.metrics.attempts.inc({ result: 'error', profile: this.profile.schedulerName });
        this.o.log.error({ pod: info.key, err: (e as Error).message }, 'scheduling error');
        this.fail(qp, 'SchedulerError', (e as Error).message, false);
      }
      return;
    }
    this.metrics.algorithm.observe((performance.now() - t0) / 1000);
    this.cache.assume(info, decision.node);
    this.inFlight++;
    this.metrics.bindingsInFlight.set(this.inFlight);
    const p = this.bind(qp, decision.node, decision.state).finally(() => {
      this.inFlight--;
      this.metrics.bindingsInFlight.set(this.inFlight);
      this.bindings.delete(p);
      const r = this.slotFreed;
      this.slotFreed = undefined;
      r?.();
    });
    this.bindings.add(p);
  }

  /**
   * The pod fits nowhere: preemption. Victims found: they are deleted (with
   * their grace period) and the pod is nominated to their node; it waits for
   * them to go. Otherwise the message says why preemption cannot help.
   */
  private postFilter(qp: QueuedPod, e: FitError): void {
    const info = qp.info;
    const t0 = performance.now();
    this.metrics.preemptionAttempts.inc();
    const r = this.preemptor.preempt(info, e, this.view, this.listers.poddisruptionbudgets!.list());
    this.metrics.preemptionDuration.observe((performance.now() - t0) / 1000);
    if ('message' in r) {
      this.fail(qp, 'Unschedulable', `${e.message} ${r.message}`, true);
      return;
    }
    const { node, victims } = r.candidate;
    this.stats.preemptions++;
    this.metrics.preemptionVictims.observe(victims.length);
    this.cache.nominate(info, node);
    this.o.log.info({ pod: info.key, node, victims: victims.map((v) => v.key) }, 'preempting');
    for (const v of victims) {
      const m = v.pod.metadata;
      this.o.recorder.event(v.pod, 'Normal', 'Preempted', `Preempted by pod ${info.pod.metadata.uid} on node ${node}`);
      void this.o.client.delete(resourcePath(PODS, m.namespace, m.name), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: m.uid } })
        .catch((err) => { if (!(err instanceof ApiClientError && (err.code === 404 || err.code === 409))) this.o.log.warn({ pod: v.key, err: (err as Error).message }, 'could not delete a preemption victim'); });
    }
    this.fail(qp, 'Unschedulable', e.message, true, node);
  }

  private async bind(qp: QueuedPod, node: string, state: Map<string, unknown>): Promise<void> {
    const { info } = qp;
    const m = info.pod.metadata;
    const t0 = performance.now();
    try {
      for (const pb of this.profile.preBind) await pb.preBind(state, info, node);
      await this.o.client.create(resourcePath(PODS, m.namespace, m.name, 'binding'), {
        apiVersion: 'v1', kind: 'Binding', metadata: { name: m.name, namespace: m.namespace, uid: m.uid }, target: { apiVersion: 'v1', kind: 'Node', name: node },
      });
    } catch (e) {
      if (e instanceof ApiClientError ? e.code === 504 : e instanceof ApiConnectionError) {
        // The binding may have been committed (504 Timeout: "may still be processing the
        // request"). Forgetting the assumption could let the next pod take the same room
        // and over-commit the node; keep counting the pod there until its event says where
        // it went, or the assumption expires and the pod is queued again (see run()).
        this.cache.finishBinding(info.key, this.now());
        this.queue.done(info.key);
        this.stats.bindUnknown++;
        this.o.log.warn({ pod: info.key, node, err: (e as Error).message }, 'binding outcome unknown: keeping the pod assumed until its event or expiry');
        return;
      }
      this.cache.forget(info.key);
      this.stats.bindFailures++;
      this.metrics.binding.observe({ result: 'error' }, (performance.now() - t0) / 1000);
      this.metrics.attempts.inc({ result: 'error', profile: this.profile.schedulerName });
      const err = e as Error;
      // Already bound (another scheduler, or this one before a failover) or gone: nothing to retry.
      if (e instanceof ApiClientError && (e.code === 404 || (e.code === 409 && /already assigned|being deleted/.test(e.message)))) {
        this.o.log.info({ pod: info.key, node, err: err.message }, 'binding refused');
        this.queue.done(info.key);
        return;
      }
      this.o.log.warn({ pod: info.key, node, err: err.message }, 'binding failed');
      this.fail(qp, 'SchedulerError', `Binding rejected: ${err.message}`, false);
      return;
    }
    const now = this.now();
    this.cache.finishBinding(info.key, now);
    this.queue.done(info.key);
    this.stats.scheduled++;
    this.metrics.binding.observe({ result: 'scheduled' }, (performance.now() - t0) / 1000);
    this.metrics.attempts.inc({ result: 'scheduled', profile: this.profile.schedulerName });
    this.metrics.e2e.observe({ result: 'scheduled', profile: this.profile.schedulerName }, (now - qp.initialAttempt) / 1000);
    this.metrics.podAttempts.observe(qp.attempts);
    this.o.recorder.event(info.pod, 'Normal', 'Scheduled', `Successfully assigned ${m.namespace}/${m.name} to ${node}`);
  }

  /** Back to the queue, a FailedScheduling event, and PodScheduled=False on the pod (when it says something new). */
  private fail(qp: QueuedPod, reason: 'Unschedulable' | 'SchedulerError', message: string, unschedulable: boolean, nominatedNodeName?: string): void {
    this.queue.requeue(qp, unschedulable);
    const pod = qp.info.pod;
    this.o.recorder.event(pod, 'Warning', 'FailedScheduling', message);
    const conds = (pod.status?.conditions ?? []);
    const cur = conds.find((c) => c.type === 'PodScheduled');
    const nominatedNow = (pod.status as { nominatedNodeName?: string } | undefined)?.nominatedNodeName;
    if (cur?.status === 'False' && cur.reason === reason && cur.message === message && (!nominatedNodeName || nominatedNow === nominatedNodeName)) return;
    const cond = { type: 'PodScheduled', status: 'False', reason, message, lastProbeTime: null, lastTransitionTime: cur?.status === 'False' ? cur.lastTransitionTime : new Date(this.now()).toISOString().replace(/\.\d+Z$/, 'Z') };
    const m = pod.metadata;
    void this.o.client.patch(resourcePath(PODS, m.namespace, m.name, 'status'), { status: { conditions: [...conds.filter((c) => c.type !== 'PodScheduled'), cond], ...(nominatedNodeName ? { nominatedNodeName } : {}) } }, 'application/merge-patch+json')
      .catch((e) => this.o.log.info({ pod: qp.info.key, err: (e as Error).message }, 'could not update the PodScheduled condition'));
  }
}

/** Node changes that may let a pending pod fit (kube-scheduler's node update events, heartbeats ignored). */
function nodeSchedulingChanged(a: Node, b: Node): boolean {
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  const ready = (n: Node) => n.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  return !same(a.status?.allocatable, b.status?.allocatable) || !same(a.metadata.labels, b.metadata.labels)
    || !same(a.spec?.taints, b.spec?.taints) || a.spec?.unschedulable !== b.spec?.unschedulable || ready(a) !== ready(b);
}

