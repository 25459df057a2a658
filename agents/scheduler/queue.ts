// kube-scheduler's PriorityQueue: activeQ (highest priority first, then the
// oldest), backoffQ (pods that failed wait 1 s, doubling per attempt up to
// 10 s) and the unschedulable pods, which stay put until a cluster event
// that may help them (a node added or changed, a pod deleted, a claim
// changed) moves them back — or 5 minutes pass. A pod that failed while such
// an event happened during its attempt goes to backoffQ instead of waiting
// for another event (kube-scheduler's moveRequestCycle).
import type { Pod } from '../informer/types.ts';
import { PodInfo } from './pod-info.ts';

export interface QueuedPod {
  info: PodInfo;
  /** When it entered the queue (ordering among equal priorities). */
  timestamp: number;
  /** When it was first queued (end-to-end latency). */
  initialAttempt: number;
  attempts: number;
  /** Failed: not tried again before this (ms). */
  backoffUntil: number;
  /** The scheduling cycle that popped it last. */
  cycle: number;
}

export interface QueueOptions {
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Unschedulable pods are retried at least this often (ms; kube-scheduler: 5 min). */
  maxUnschedulableMs?: number;
  now?: () => number;
}

type Where = 'active' | 'backoff' | 'unschedulable' | 'inflight';

export class SchedulingQueue {
  private readonly heap: QueuedPod[] = [];
  private readonly where = new Map<string, { qp: QueuedPod; at: Where }>();
  private readonly unschedulableSince = new Map<string, number>();
  private waiters: ((qp: QueuedPod | undefined) => void)[] = [];
  private closed = false;
  private cycle = 0;
  private moveRequestCycle = -1;
  private readonly o: Required<QueueOptions>;
  private timer?: NodeJS.Timeout;

  constructor(o: QueueOptions = {}) {
    this.o = { initialBackoffMs: 1000, maxBackoffMs: 10_000, maxUnschedulableMs: 300_000, now: Date.now, ...o };
  }

  /** Starts the periodic flushes of backoffQ (every 100 ms) and of old unschedulable pods. */
  run(): void {
    this.timer ??= setInterval(() => this.flush(), 100);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  get schedulingCycle(): number {
    return this.cycle;
  }

  /** Pods per sub-queue (kube-scheduler's pending_pods{queue}). */
  counts(): { active: number; backoff: number; unschedulable: number } {
    const c = { active: 0, backoff: 0, unschedulable: 0 };
    for (const { at } of this.where.values()) if (at !== 'inflight') c[at]++;
    return c;
  }

  has(key: string): boolean {
    return this.where.has(key);
  }

  /** A new pending pod. */
  add(pod: Pod): void {
    const info = new PodInfo(pod);
    const cur = this.where.get(info.key);
    if (cur) return this.update(pod);
    const now = this.o.now();
    this.toActive({ info, timestamp: now, initialAttempt: now, attempts: 0, backoffUntil: 0, cycle: -1 });
  }

  /** A pending pod changed: the new spec is used; an unschedulable pod whose spec or labels changed is tried again. */
  update(pod: Pod): void {
    const info = new PodInfo(pod);
    const cur = this.where.get(info.key);
    if (!cur) return this.add(pod);
    const old = cur.qp.info.pod;
    cur.qp.info = info;
    if (cur.at === 'unschedulable' && (JSON.stringify(old.spec) !== JSON.stringify(pod.spec) || JSON.stringify(old.metadata.labels) !== JSON.stringify(pod.metadata.labels))) {
      this.unschedulableSince.delete(info.key);
      if (cur.qp.backoffUntil > this.o.now()) cur.at = 'backoff';
      else this.toActive(cur.qp);
    }
  }

  delete(key: string): void {
    this.where.delete(key);
    this.unschedulableSince.delete(key);
  }

  /** The next pod to schedule; waits for one; undefined once closed. */
  pop(): Promise<QueuedPod | undefined> {
    const qp = this.tryPop();
    if (qp || this.closed) return Promise.resolve(qp);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The next pod, or undefined when activeQ is empty. */
  tryPop(): QueuedPod | undefined {
    while (this.heap.length) {
      const qp = heapPop(this.heap);
      const cur = this.where.get(qp.info.key);
      if (!cur || cur.qp !== qp || cur.at !== 'active') continue; // deleted or moved since it was pushed
      cur.at = 'inflight';
      qp.attempts++;
      qp.cycle = ++this.cycle;
      return qp;
    }
    return undefined;
  }

  /** The pod was bound (or given up): it leaves the queue. */
  done(key: string): void {
    this.delete(key);
  }

  /**
   * The attempt failed. `unschedulable`: no node fits — wait for a cluster
   * event (or backoff if one came during the attempt); otherwise (an error)
   * back off.
   */
  requeue(qp: QueuedPod, unschedulable: boolean): void {
    const cur = this.where.get(qp.info.key);
    if (!cur || cur.qp !== qp) return; // deleted meanwhile, or re-added as a new object
    const now = this.o.now();
    qp.backoffUntil = now + this.backoffMs(qp.attempts);
    qp.timestamp = now;
    if (unschedulable && this.moveRequestCycle < qp.cycle) {
      cur.at = 'unschedulable';
      this.unschedulableSince.set(qp.info.key, now);
    } else {
      cur.at = 'backoff';
    }
  }

  /** A cluster event that may make unschedulable pods fit: all of them go back (to backoffQ while backing off). */
  moveAllToActiveOrBackoff(): void {
    const now = this.o.now();
    for (const [key, cur] of this.where) {
      if (cur.at !== 'unschedulable') continue;
      this.unschedulableSince.delete(key);
      if (cur.qp.backoffUntil > now) cur.at = 'backoff';
      else this.toActive(cur.qp);
    }
    this.moveRequestCycle = this.cycle;
  }

  backoffMs(attempts: number): number {
    let d = this.o.initialBackoffMs;
    for (let i = 1; i < attempts && d < this.o.maxBackoffMs; i++) d *= 2;
    return Math.min(d, this.o.maxBackoffMs);
  }

  /** Moves pods whose backoff ended to activeQ, and unschedulable pods waiting too long. */
  flush(): void {
    const now = this.o.now();
    for (const [key, cur] of this.where) {
      if (cur.at === 'backoff' && cur.qp.backoffUntil <= now) this.toActive(cur.qp);
      else if (cur.at === 'unschedulable' && now - (this.unschedulableSince.get(key) ?? now) >= this.o.maxUnschedulableMs) {
        this.unschedulableSince.delete(key);
        this.toActive(cur.qp);
      }
    }
  }

  private toActive(qp: QueuedPod): void {
    this.where.set(qp.info.key, { qp, at: 'active' });
    const w = this.waiters.shift();
    if (w) {
      heapPush(this.heap, qp);
      w(this.tryPop());
      return;
    }
    heapPush(this.heap, qp);
  }
}

/** activeQ order: higher priority first, then the earlier timestamp. */
function less(a: QueuedPod, b: QueuedPod): boolean {
  return a.info.priority !== b.info.priority ? a.info.priority > b.info.priority : a.timestamp < b.timestamp;
}

function heapPush(h: QueuedPod[], x: QueuedPod): void {
  h.push(x);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!less(h[i]!, h[p]!)) break;
    [h[i], h[p]] = [h[p]!, h[i]!];
    i = p;
  }
}

function heapPop(h: QueuedPod[]): QueuedPod {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length) {
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && less(h[l]!, h[m]!)) m = l;
      if (r < h.length && less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
  return top;
}
