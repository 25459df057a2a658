// A rate-limited work queue with client-go's semantics (k8s.io/client-go/util/workqueue):
//
// - an item queued twice before a worker takes it is processed once (dedup);
// - an item being processed is never handed to a second worker: adding it
//   meanwhile marks it dirty, and done() queues it again;
// - addAfter() delays an item (the earliest pending time wins);
// - addRateLimited() delays it by its rate limiter: by default the larger of a
//   per-item exponential backoff (5 ms, 10 ms, … up to 1000 s) and an overall
//   token bucket (10 per second, bursts of 100), like
//   workqueue.DefaultControllerRateLimiter; forget() resets the item's backoff;
// - shutdown() stops accepting items; get() keeps handing out what is queued,
//   then resolves undefined to every waiting worker.
//
// Workers yield to the event loop after every item (see runWorkers).
//
// Items are compared with SameValueZero (Map keys): use strings ("ns/name")
// or other primitives, as controllers do.

import { setImmediate } from 'node:timers/promises';

/** Decides how long an item waits before being re-queued. */
export interface RateLimiter<T> {
  /** The delay (ms) for this item now; records the attempt. */
  when(item: T): number;
  /** Clears the item's history (after a success, or when giving up). */
  forget(item: T): void;
  /** How many times the item has been rate limited since it was last forgotten. */
  numRequeues(item: T): number;
}

/** Per-item exponential backoff: baseMs · 2^failures, capped at maxMs. */
export class ItemExponentialFailureRateLimiter<T> implements RateLimiter<T> {
  private readonly failures = new Map<T, number>();

  constructor(
    readonly baseMs = 5,
    readonly maxMs = 1_000_000,
  ) {
    if (!(baseMs > 0) || !(maxMs >= baseMs)) throw new Error(`invalid backoff: base ${baseMs} ms, max ${maxMs} ms`);
  }

  when(item: T): number {
    const n = this.failures.get(item) ?? 0;
    this.failures.set(item, n + 1);
    // 2^n overflows to Infinity long before it matters; the cap keeps it finite.
    return Math.min(this.maxMs, this.baseMs * 2 ** n);
  }

  forget(item: T): void {
    this.failures.delete(item);
  }

  numRequeues(item: T): number {
    return this.failures.get(item) ?? 0;
  }
}

/**
 * An overall token bucket (golang.org/x/time/rate semantics): `qps` tokens a
 * second, at most `burst` saved up; every call takes a token, and a call that
 * finds none waits for the token it reserved. Not per item: it bounds the
 * retry rate of the whole queue.
 */
export class BucketRateLimiter<T> implements RateLimiter<T> {
  private tokens: number;
  private last: number;

  constructor(
    readonly qps = 10,
    readonly burst = 100,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(qps > 0) || !(burst >= 1)) throw new Error(`invalid token bucket: ${qps} qps, burst ${burst}`);
    this.tokens = burst;
    this.last = now();
  }

  when(_item: T): number {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.qps) / 1000);
    this.last = t;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.qps;
  }

  forget(_item: T): void {}

  numRequeues(_item: T): number {
    return 0;
  }
}

/** The largest delay of several limiters (each records every attempt). */
export class MaxOfRateLimiter<T> implements RateLimiter<T> {
  private readonly limiters: RateLimiter<T>[];

  constructor(...limiters: RateLimiter<T>[]) {
    if (!limiters.length) throw new Error('MaxOfRateLimiter needs at least one limiter');
    this.limiters = limiters;
  }

  when(item: T): number {
    let d = 0;
    for (const l of this.limiters) d = Math.max(d, l.when(item));
    return d;
  }

  forget(item: T): void {
    for (const l of this.limiters) l.forget(item);
  }

  numRequeues(item: T): number {
    let n = 0;
    for (const l of this.limiters) n = Math.max(n, l.numRequeues(item));
    return n;
  }
}

/** client-go's DefaultControllerRateLimiter: max(per-item 5 ms → 1000 s, 10 qps / burst 100). */
export function defaultControllerRateLimiter<T>(): RateLimiter<T> {
  return new MaxOfRateLimiter<T>(new ItemExponentialFailureRateLimiter<T>(5, 1_000_000), new BucketRateLimiter<T>(10, 100));
}

export interface WorkQueueOptions<T> {
  /** For logs and metrics. */
  name?: string;
  /** Defaults to defaultControllerRateLimiter(). */
  rateLimiter?: RateLimiter<T>;
}

export interface WorkQueueStats {
  /** add() calls that queued an item (not deduplicated ones). */
  adds: number;
  /** addRateLimited() calls. */
  retries: number;
  /** Items handed to workers by get(). */
  gets: number;
  /** Items finished with done(). */
  done: number;
}

/** A deduplicating, delaying, rate-limited queue of keys for controller workers. */
export class WorkQueue<T = string> {
  readonly name: string;
  readonly stats: WorkQueueStats = { adds: 0, retries: 0, gets: 0, done: 0 };
  private readonly limiter: RateLimiter<T>;
  /** Ready items in FIFO order from `head` (compacted now and then, so get() is O(1)). */
  private queue: T[] = [];
  private head = 0;
  /** Items that need processing (queued, or added again while processing). */
  private readonly dirty = new Set<T>();
  /** Items handed out and not yet done(). */
  private readonly processing = new Set<T>();
  /** Delayed items: when each becomes ready, and its timer. */
  private readonly waiting = new Map<T, { at: number; timer: NodeJS.Timeout }>();
  /** Workers blocked in get(). */
  private readonly getters: ((item: T | undefined) => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  private shutDown = false;

  constructor(opts: WorkQueueOptions<T> = {}) {
    this.name = opts.name ?? 'workqueue';
    this.limiter = opts.rateLimiter ?? defaultControllerRateLimiter<T>();
  }

  /** Queues an item unless it is already queued; an item being processed is queued again when done. */
  add(item: T): void {
    if (this.shutDown || this.dirty.has(item)) return;
    this.stats.adds++;
    this.dirty.add(item);
    if (this.processing.has(item)) return;
    const getter = this.getters.shift();
    if (getter) {
      this.handOut(item);
      getter(item);
    } else {
      this.queue.push(item);
    }
  }

  /** Queues the item after `delayMs` (at once if <= 0). A pending earlier time is kept. */
  addAfter(item: T, delayMs: number): void {
    if (this.shutDown) return;
    if (!(delayMs > 0)) {
      this.add(item);
      return;
    }
    const at = performance.now() + delayMs;
    const w = this.waiting.get(item);
    if (w) {
      if (w.at <= at) return;
      clearTimeout(w.timer);
    }
    const timer = setTimeout(() => {
      this.waiting.delete(item);
      this.add(item);
    }, delayMs);
    // Kept referenced: a worker waiting for a delayed retry must not see the
    // process exit under it. shutdown() clears these timers.
    this.waiting.set(item, { at, timer });
  }

  /** Queues the item after the delay its rate limiter decides (a failed attempt's retry). */
  addRateLimited(item: T): void {
    if (this.shutDown) return;
    this.stats.retries++;
    this.addAfter(item, this.limiter.when(item));
  }

  /** The item succeeded (or is given up): reset its backoff. Does not remove it from the queue. */
  forget(item: T): void {
    this.limiter.forget(item);
  }

  numRequeues(item: T): number {
    return this.limiter.numRequeues(item);
  }

  /**
   * The next item to process; wait for one if none is ready. Resolves
   * undefined once the queue is shut down and empty. Every item returned must
   * be passed to done() when its processing ends, successful or not.
   */
  get(): Promise<T | undefined> {
    if (this.head < this.queue.length) {
      const item = this.queue[this.head++];
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.handOut(item);
      return Promise.resolve(item);
    }
    if (this.shutDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Ends the processing of an item; if it was added meanwhile, it is queued again. */
  done(item: T): void {
    if (!this.processing.delete(item)) return;
    this.stats.done++;
    if (this.dirty.has(item)) {
      const getter = this.getters.shift();
      if (getter) {
        this.handOut(item);
        getter(item);
      } else {
        this.queue.push(item);
      }
    }
    if (!this.processing.size && this.drainWaiters.length) {
      const ws = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of ws) w();
    }
  }

  /** Items ready to be processed (not counting delayed or in-process ones). */
  len(): number {
    return this.queue.length - this.head;
  }

  /** Items waiting for their delay (addAfter, addRateLimited). */
  delayed(): number {
    return this.waiting.size;
  }

  /** Items handed out and not yet done. */
  inProgress(): number {
    return this.processing.size;
  }

  shuttingDown(): boolean {
    return this.shutDown;
  }

  /**
   * Stops accepting items and drops delayed ones. Items already queued are
   * still handed out; workers blocked in get() once it is empty get undefined.
   */
  shutdown(): void {
    if (this.shutDown) return;
    this.shutDown = true;
    for (const { timer } of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    // Workers only wait on an empty queue: release them all.
    for (const g of this.getters.splice(0)) g(undefined);
  }

  /** shutdown(), then waits until every queued and in-process item is done. */
  async shutDownWithDrain(): Promise<void> {
    this.shutdown();
    while (this.len() > 0 || this.processing.size > 0) {
      await new Promise<void>((r) => this.drainWaiters.push(r));
    }
  }

  private handOut(item: T): void {
    this.stats.gets++;
    this.processing.add(item);
    this.dirty.delete(item);
  }
}

export interface RunWorkersOptions {
  /** Give an item up (forget it, log it) after this many failed attempts in a row; default: retry forever. */
  maxRetries?: number;
  /** Told about failures; defaults to stderr. */
  onError?: (item: unknown, err: unknown, attempts: number, givenUp: boolean) => void;
}

/**
 * The standard controller loop over a queue, with `workers` concurrent
 * workers: take a key, reconcile it, forget() it on success or
 * addRateLimited() it on failure, done() either way. Resolves when the queue
 * has been shut down and every worker has finished.
 */
export async function runWorkers<T>(
  queue: WorkQueue<T>,
  workers: number,
  reconcile: (item: T) => Promise<void> | void,
  opts: RunWorkersOptions = {},
): Promise<void> {
  const onError = opts.onError ?? ((item: unknown, err: unknown, attempts: number, givenUp: boolean) => {
    process.stderr.write(`${queue.name}: reconciling ${String(item)} failed (attempt ${attempts}${givenUp ? ', giving up' : ''}): ${(err as Error)?.message ?? String(err)}\n`);
  });
  const worker = async () => {
    for (;;) {
      const item = await queue.get();
      if (item === undefined) return;
      try {
        await reconcile(item);
        queue.forget(item);
      } catch (e) {
        const attempts = queue.numRequeues(item) + 1;
        const giveUp = opts.maxRetries !== undefined && attempts > opts.maxRetries;
        try {
          onError(item, e, attempts, giveUp);
        } catch {
          /* a failing error hook must not kill the worker */
        }
        if (giveUp) queue.forget(item);
        else queue.addRateLimited(item);
      } finally {
        queue.done(item);
      }
      // Let the event loop turn between items. get() resolves at once while
      // keys are queued, so a key that comes back during its own reconcile
      // (re-added with no delay) and a reconcile that awaits no I/O would
      // otherwise loop in the microtask queue for ever: no timer, socket or
      // log write of the process would run again — Lease renewals and
      // /healthz included (the controller manager hang of the 30-minute
      // mixed chaos run). Goroutines are preempted; promises are not.
      await setImmediate();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, workers) }, worker));
}
