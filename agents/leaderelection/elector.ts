// Leader election on a coordination.k8s.io/v1 Lease, with client-go's
// semantics (tools/leaderelection): every candidate tries to acquire or
// renew the lease every retry period; a holder renews it, and a candidate
// takes it over only once it has seen no change to the lease for a whole
// lease duration on its own clock. Every write is conditional on the
// resourceVersion that was read, so of two candidates racing for an expired
// lease exactly one wins (the other gets 409 Conflict).
//
// The one guarantee callers build on: the AbortSignal handed to
// onStartedLeading is aborted no later than renewDeadline after the start of
// the last renewal that succeeded, whatever the network does (a timer
// enforces it, not the outcome of a hanging request). A candidate cannot take
// over before a whole leaseDuration has passed since it saw that renewal,
// which happened after it started; so with leaseDuration > renewDeadline two
// electors never hold unaborted signals at once, with leaseDuration -
// renewDeadline to spare (for timers that fire late and clocks that run at
// slightly different rates).
//
// Usage:
//   const le = new LeaderElector({ client, lease: { namespace: 'kube-system', name: 'flotilla-controller-manager' },
//     onStartedLeading: (signal) => runControllers(signal), onStoppedLeading: () => log.info('stopped leading') });
//   void le.run();
//   ...
//   await le.stop(); // aborts the signal, then releases the lease so a standby takes over at once
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import type client from 'prom-client';
import { lease as LEASE_KIND } from '../../api/kinds/coordination.ts';
import { type ApiClient, ApiClientError, resourcePath, statusFromResponse } from '../client/api.ts';
import { type Logger, silentLogger } from '../informer/stream.ts';
import { type LeaderElectionMetrics, leaderElectionMetrics } from './metrics.ts';
import { type LeaderElectionRecord, type LeaseObject, LeaseObservation, formatMicroTime, leaseWithRecord, recordFromLease, specOf } from './record.ts';

/** A logger with pino's call shape (pino loggers fit). */
// The consumers' one logger shape (pino fits).
export type { Logger };

/** client-go's JitterFactor: waits between acquire attempts are retryPeriod × [1, 2.2). */
export const JITTER_FACTOR = 1.2;

export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;

export interface LeaderElectorOptions {
  client: ApiClient;
  /** The Lease everyone competing for this role uses, e.g. kube-system/flotilla-controller-manager. */
  lease: { namespace: string; name: string };
  /** Unique per process (default `${hostname}_${random hex}`). */
  identity?: string;
  /** How long candidates wait without seeing a change before taking the lease over (default 15 s; whole seconds). */
  leaseDurationMs?: number;
  /** How long the leader keeps failing to renew before it gives up leading (default 10 s). */
  renewDeadlineMs?: number;
  /** Time between tries (default 2 s); candidates add up to 1.2× of it as jitter. */
  retryPeriodMs?: number;
  /** Time one try (a read and an update) may take, at most retryPeriodMs (default 3/4 of it). */
  attemptTimeoutMs?: number;
  /** On stop() while leading, release the lease so a standby takes over at once (default true). */
  releaseOnCancel?: boolean;
  /** After losing the lease, compete for it again (default true); false: run() resolves. */
  reacquire?: boolean;
  /**
   * Called when this elector becomes leader. The work it starts must stop
   * when `signal` aborts. If it returns a promise, stop() waits for it to
   * settle before releasing the lease (at most until the lease would expire).
   * Errors are logged; they do not end leadership.
   */
  onStartedLeading: (signal: AbortSignal) => unknown;
  /** Called right after the signal aborts, whether leadership was lost or stop() was called. */
  onStoppedLeading?: () => unknown;
  /** Called whenever the observed holder changes to another (non-empty) identity, this one included. */
  onNewLeader?: (identity: string) => unknown;
  /** Defaults to a pino logger on stderr at $FLOTILLA_LOG_LEVEL (default warn). */
  logger?: Logger;
  /** The `name` label of the metrics (default the lease's name). */
  name?: string;
  /** Registers the metrics on this registry (see registerMetrics). */
  registry?: client.Registry;
}

interface Resolved {
  client: ApiClient;
  namespace: string;
  leaseName: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  attemptTimeoutMs: number;
  releaseOnCancel: boolean;
  reacquire: boolean;
  name: string;
}

export class LeaderElectionConfigError extends Error {
  override name = 'LeaderElectionConfigError';
}

export function defaultIdentity(): string {
  return `${hostname()}_${randomBytes(8).toString('hex')}`;
}

/** The options with their defaults, or a LeaderElectionConfigError listing every problem. */
export function resolveOptions(o: LeaderElectorOptions): Resolved {
  const leaseDurationMs = o.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
  const renewDeadlineMs = o.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
  const retryPeriodMs = o.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
  const attemptTimeoutMs = o.attemptTimeoutMs ?? retryPeriodMs * 0.75;
  const errs: string[] = [];
  const positive = (v: number, what: string) => {
    if (!Number.isFinite(v) || v <= 0) errs.push(`${what} must be greater than zero`);
  };
  positive(leaseDurationMs, 'leaseDurationMs');
  positive(renewDeadlineMs, 'renewDeadlineMs');
  positive(retryPeriodMs, 'retryPeriodMs');
  positive(attemptTimeoutMs, 'attemptTimeoutMs');
  if (!errs.length) {
    if (leaseDurationMs % 1000 !== 0) errs.push('leaseDurationMs must be a whole number of seconds (the Lease holds leaseDurationSeconds)');
    if (leaseDurationMs <= renewDeadlineMs) errs.push('leaseDurationMs must be greater than renewDeadlineMs');
    if (renewDeadlineMs <= JITTER_FACTOR * retryPeriodMs) errs.push(`renewDeadlineMs must be greater than retryPeriodMs*${JITTER_FACTOR}`);
    if (attemptTimeoutMs > retryPeriodMs) errs.push('attemptTimeoutMs must not be greater than retryPeriodMs');
  }
  if (!o.client) errs.push('client is required');
  if (!o.lease?.namespace) errs.push('lease.namespace is required');
  if (!o.lease?.name) errs.push('lease.name is required');
  const identity = o.identity ?? defaultIdentity();
  if (!identity) errs.push('identity must not be empty');
  if (typeof o.onStartedLeading !== 'function') errs.push('onStartedLeading callback is required');
  if (errs.length) throw new LeaderElectionConfigError(`invalid leader election options: ${errs.join('; ')}`);
  return {
    client: o.client, namespace: o.lease.namespace, leaseName: o.lease.name, identity,
    leaseDurationMs, renewDeadlineMs, retryPeriodMs, attemptTimeoutMs,
    releaseOnCancel: o.releaseOnCancel ?? true, reacquire: o.reacquire ?? true,
    name: o.name ?? o.lease.name,
  };
}

/** The reason a leader's signal aborts with. */
export class LeadershipLostError extends Error {
  override name = 'LeadershipLostError';
}

/** One period of leadership. */
interface Term {
  ctl: AbortController;
  /** Local time the last successful try (acquire or renew) started. */
  lastRenew: number;
  timer?: NodeJS.Timeout;
  /** What onStartedLeading returned, if a promise. */
  work?: Promise<unknown>;
}

const now = () => performance.now();

/** Resolves after ms, or at once when signal aborts. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return !!v && typeof (v as { then?: unknown }).then === 'function';
}

function errInfo(e: unknown): Record<string, unknown> {
  if (e instanceof ApiClientError) return { code: e.code, reason: e.reason, error: e.message };
  return { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
}

export class LeaderElector {
  readonly identity: string;
  /** The `name` label of the metrics. */
  readonly name: string;
  private readonly o: Resolved;
  private readonly log: Logger;
  private readonly objectPath: string;
  private readonly collectionPath: string;
  private readonly callbacks: Pick<LeaderElectorOptions, 'onStartedLeading' | 'onStoppedLeading' | 'onNewLeader'>;
  private readonly observed = new LeaseObservation();
  /** The Lease as last read or written: updates carry its resourceVersion. */
  private lease?: LeaseObject;
  private reported = '';
  private term?: Term;
  private readonly stopCtl = new AbortController();
  private running?: Promise<void>;
  private stopping?: Promise<void>;
  private lastStampMicros = 0;
  private metrics?: LeaderElectionMetrics;

  constructor(opts: LeaderElectorOptions) {
    this.o = resolveOptions(opts);
    this.identity = this.o.identity;
    this.name = this.o.name;
    this.callbacks = { onStartedLeading: opts.onStartedLeading, onStoppedLeading: opts.onStoppedLeading, onNewLeader: opts.onNewLeader };
    this.log = opts.logger ?? pino({ name: `leaderelection/${this.o.name}`, level: process.env.FLOTILLA_LOG_LEVEL ?? 'warn' }, pino.destination(2));
    this.collectionPath = resourcePath(LEASE_KIND, this.o.namespace);
    this.objectPath = resourcePath(LEASE_KIND, this.o.namespace, this.o.leaseName);
    if (opts.registry) this.registerMetrics(opts.registry);
  }

  /** Reports leader_election_master_status and leader_election_transitions_total{name} on this registry. */
  registerMetrics(registry: client.Registry): void {
    this.metrics = leaderElectionMetrics(registry);
    this.metrics.status.set({ name: this.name }, this.isLeader() ? 1 : 0);
    this.metrics.transitions.inc({ name: this.name }, 0); // the series exists from the start
  }

  /** Whether this elector leads now (its signal is not aborted). */
  isLeader(): boolean {
    return !!this.term && !this.term.ctl.signal.aborted;
  }

  /** The holder this elector last observed (itself included); undefined when none is known. */
  leader(): string | undefined {
    return this.observed.holder || undefined;
  }

  /**
   * Competes for the lease until stop() (or, with reacquire: false, until
   * leadership is lost). Never rejects: API errors are retried.
   */
  run(): Promise<void> {
    if (this.running) throw new Error('LeaderElector.run() was already called');
    this.running = this.loop().catch((e) => this.log.error(errInfo(e), 'leader election loop failed'));
    return this.running;
  }

  /**
   * Ends run(). While leading, first aborts the signal (and calls
   * onStoppedLeading), then, with releaseOnCancel, waits for the promise
   * onStartedLeading returned and releases the lease: holderIdentity '' and
   * leaseDurationSeconds 1, so a standby takes over on its next try.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown().catch((e) => this.log.error(errInfo(e), 'leader election shutdown failed'));
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.stopCtl.abort();
    const term = this.term;
    if (term) this.endTerm(term, 'stopping');
    await this.running;
    if (!this.o.releaseOnCancel) return;
    if (term?.work) {
      // Another leader may start once we release: let our work wind down first,
      // but no longer than the lease would stay ours anyway.
      const left = term.lastRenew + this.o.leaseDurationMs - now();
      let settled = false;
      const ctl = new AbortController();
      await Promise.race([term.work.then(() => { settled = true; }), delay(Math.max(0, left), ctl.signal)]);
      ctl.abort();
      if (!settled) {
        this.log.warn({ lease: this.describe() }, 'the work started on leading did not finish; not releasing the lease (it will expire)');
        return;
      }
    }
    await this.release();
  }

  private describe(): string {
    return `${this.o.namespace}/${this.o.leaseName}`;
  }

  private async loop(): Promise<void> {
    const stop = this.stopCtl.signal;
    this.log.info({ lease: this.describe(), identity: this.identity }, 'attempting to acquire the leader lease');
    while (!stop.aborted) {
      const started = now();
      const ok = await this.tryAcquireOrRenew(stop);
      this.reportTransition();
      if (stop.aborted) break;
      if (ok) {
        await this.lead(started);
        if (stop.aborted || !this.o.reacquire) break;
      }
      await delay(this.nextTryIn(), stop);
    }
  }

  /**
   * How long a candidate waits before trying again: client-go's jittered
   * retry period, but no longer than until the lease it sees expires (plus a
   * little jitter), so a standby takes over at expiry rather than up to a
   * retry period later. Expiry is still judged as before, by local
   * observation: trying earlier changes nothing about safety.
   */
  private nextTryIn(): number {
    const retry = this.o.retryPeriodMs * (1 + Math.random() * JITTER_FACTOR);
    const expires = this.observed.expiresAt();
    if (!Number.isFinite(expires) || this.observed.holder === '' || this.observed.holder === this.identity) return retry;
    const untilExpiry = expires - now() + 20 + Math.random() * 100;
    return Math.max(20, Math.min(retry, untilExpiry));
  }

  /** Leads from a successful try that started at `acquiredAt` until the signal aborts (lost or stopped). */
  private async lead(acquiredAt: number): Promise<void> {
    if (now() - acquiredAt >= this.o.renewDeadlineMs) {
      // Only an event loop stalled for seconds gets here: the margin is gone.
      this.log.warn({ lease: this.describe() }, 'acquired the lease too late to lead safely; trying again');
      return;
    }
    const ctl = new AbortController();
    // The term's signal is shared by everything that runs while leading (the controller manager starts ~25
    // controllers on it, each listening for the end): no listener limit, or Node warns of a leak that is not one.
    setMaxListeners(0, ctl.signal);
    const term: Term = { ctl, lastRenew: acquiredAt };
    this.term = term;
    this.armDeadline(term);
    this.setStatus(1);
    this.log.info({ lease: this.describe(), identity: this.identity }, 'acquired the lease: leading');
    try {
      const r = this.callbacks.onStartedLeading(ctl.signal);
      if (isPromiseLike(r)) {
        term.work = Promise.resolve(r).then(
          () => undefined,
          (e: unknown) => this.log.error(errInfo(e), 'onStartedLeading failed'),
        );
      }
    } catch (e) {
      this.log.error(errInfo(e), 'onStartedLeading failed');
    }
    while (!ctl.signal.aborted) {
      await delay(this.o.retryPeriodMs, ctl.signal);
      if (ctl.signal.aborted) break;
      const started = now();
      const ok = await this.tryAcquireOrRenew(ctl.signal);
      this.reportTransition();
      if (ctl.signal.aborted) break;
      if (ok) {
        term.lastRenew = started;
        this.armDeadline(term);
        continue;
      }
      if (this.observed.holder !== this.identity) {
        this.endTerm(term, `the lease is now held by ${this.observed.holder ? JSON.stringify(this.observed.holder) : 'nobody'}`);
        break;
      }
      const left = Math.round(term.lastRenew + this.o.renewDeadlineMs - now());
      this.log.warn({ lease: this.describe(), msLeft: left }, 'failed to renew the lease; retrying until the renew deadline');
    }
  }

  /** (Re)sets the timer that ends the term renewDeadline after its last successful renewal started. */
  private armDeadline(term: Term): void {
    clearTimeout(term.timer);
    const fire = () => {
      const left = term.lastRenew + this.o.renewDeadlineMs - now();
      if (left > 0) {
        term.timer = setTimeout(fire, Math.ceil(left));
        return;
      }
      this.endTerm(term, `no successful renewal within the renew deadline (${this.o.renewDeadlineMs} ms)`);
    };
    term.timer = setTimeout(fire, Math.max(0, Math.ceil(term.lastRenew + this.o.renewDeadlineMs - now())));
  }

  /** Aborts the term's signal (once) and reports it. */
  private endTerm(term: Term, why: string): void {
    if (term.ctl.signal.aborted) return;
    clearTimeout(term.timer);
    term.ctl.abort(new LeadershipLostError(`stopped leading ${this.describe()}: ${why}`));
    this.setStatus(0);
    if (why === 'stopping') this.log.info({ lease: this.describe() }, 'stopped leading: shutting down');
    else this.log.warn({ lease: this.describe(), why }, 'lost the lease: stopped leading');
    this.safeCall('onStoppedLeading', () => this.callbacks.onStoppedLeading?.());
  }

  private setStatus(v: 0 | 1): void {
    this.metrics?.status.set({ name: this.name }, v);
    this.metrics?.transitions.inc({ name: this.name });
  }

  private safeCall(what: string, fn: () => unknown): void {
    try {
      const r = fn();
      if (isPromiseLike(r)) Promise.resolve(r).catch((e: unknown) => this.log.error(errInfo(e), `${what} failed`));
    } catch (e) {
      this.log.error(errInfo(e), `${what} failed`);
    }
  }

  private reportTransition(): void {
    const h = this.observed.holder;
    if (h === this.reported) return;
    this.reported = h;
    if (!h) return;
    this.log.info({ lease: this.describe(), leader: h }, 'new leader observed');
    const cb = this.callbacks.onNewLeader;
    if (cb) this.safeCall('onNewLeader', () => cb(h));
  }

  /** A MicroTime for renewTime/acquireTime, strictly after the last one written (a renewal must change the record). */
  private stamp(): string {
    let micros = Math.round(Date.now() * 1000);
    if (micros <= this.lastStampMicros) micros = this.lastStampMicros + 1;
    this.lastStampMicros = micros;
    return formatMicroTime(micros / 1000);
  }

  /**
   * One try: renew optimistically with the cached Lease if we hold it,
   * else (or if that fails) read the Lease, create it if missing, back off
   * if another holder's lease has not expired by our observation, and take
   * or renew it with an update conditional on the version read.
   */
  private async tryAcquireOrRenew(parent: AbortSignal): Promise<boolean> {
    const ctl = new AbortController();
    const cut = () => ctl.abort(parent.reason);
    parent.addEventListener('abort', cut, { once: true });
    const timer = setTimeout(() => ctl.abort(new Error(`the try took longer than ${this.o.attemptTimeoutMs} ms`)), this.o.attemptTimeoutMs);
    try {
      if (parent.aborted) return false;
      return await this.tryOnce(ctl.signal);
    } finally {
      clearTimeout(timer);
      parent.removeEventListener('abort', cut);
    }
  }

  private async tryOnce(signal: AbortSignal): Promise<boolean> {
    const start = now();
    const deadline = start + this.o.attemptTimeoutMs;
    const stamp = this.stamp();
    const desired: LeaderElectionRecord = {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.o.leaseDurationMs / 1000,
      acquireTime: stamp,
      renewTime: stamp,
      leaseTransitions: 0,
    };

    // 1. The fast path: we hold it and nothing changed since our last write.
    if (this.lease && this.observed.holder === this.identity && this.observed.validAt(start)) {
      const prev = this.observed.record!;
      desired.acquireTime = prev.acquireTime;
      desired.leaseTransitions = prev.leaseTransitions;
      try {
        this.written(await this.request('PUT', leaseWithRecord(this.lease, desired), signal, deadline));
        return true;
      } catch (e) {
        if (signal.aborted) return this.failed('renew', e, signal);
        this.log.debug({ lease: this.describe(), ...errInfo(e) }, 'optimistic renewal failed; reading the lease');
      }
    }

    // 2. Read it (create it when missing).
    let cur: LeaseObject;
    try {
      cur = await this.request('GET', undefined, signal, deadline);
    } catch (e) {
      if (!(e instanceof ApiClientError && e.code === 404)) return this.failed('read', e, signal);
      this.observed.reset();
      this.lease = undefined;
      try {
        const created = await this.request('POST', {
          apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
          metadata: { name: this.o.leaseName, namespace: this.o.namespace },
          spec: specOf(desired),
        }, signal, deadline);
        this.written(created);
        return true;
      } catch (e2) {
        return this.failed('create', e2, signal);
      }
    }
    this.lease = cur;
    const rec = recordFromLease(cur);
    this.observed.observe(rec, now());

    // 3. Someone else holds it and we have not seen it go unchanged for a lease duration.
    if (this.observed.heldByOther(this.identity, start)) {
      this.log.debug({ lease: this.describe(), holder: rec.holderIdentity }, 'the lease is held by another and has not expired');
      return false;
    }

    // 4. Take it over, or renew it.
    if (rec.holderIdentity === this.identity) {
      desired.acquireTime = rec.acquireTime;
      desired.leaseTransitions = rec.leaseTransitions;
    } else {
      desired.leaseTransitions = rec.leaseTransitions + 1;
    }
    try {
      this.written(await this.request('PUT', leaseWithRecord(cur, desired), signal, deadline));
      return true;
    } catch (e) {
      return this.failed(rec.holderIdentity === this.identity ? 'renew' : 'acquire', e, signal);
    }
  }

  /** Our write succeeded: remember the Lease (its new resourceVersion) and what it says. */
  private written(lease: LeaseObject): void {
    this.lease = lease;
    this.observed.observe(recordFromLease(lease), now());
  }

  private failed(what: string, e: unknown, signal: AbortSignal): false {
    const info = { lease: this.describe(), ...errInfo(e) };
    if (this.stopCtl.signal.aborted) return false;
    if (signal.aborted) this.log.warn(info, `${what}: the try timed out or was cut short`);
    else if (e instanceof ApiClientError && e.code === 409) this.log.debug(info, `${what}: lost a race (the lease changed since it was read)`);
    else if (e instanceof ApiClientError && e.code === 504) this.log.warn(info, `${what}: outcome unknown (504); the next try re-reads the lease`);
    else this.log.warn(info, `${what} failed`);
    return false;
  }

  /** One request within a try's deadline; a non-2xx answer throws ApiClientError. */
  private async request(method: 'GET' | 'PUT' | 'POST', body: unknown, signal: AbortSignal, deadline: number): Promise<LeaseObject> {
    signal.throwIfAborted();
    const left = Math.max(1, Math.floor(deadline - now()));
    const path = method === 'POST' ? this.collectionPath : this.objectPath;
    const r = await this.o.client.raw(method, path, { body, signal, deadlineMs: left, timeoutMs: left });
    if (r.status < 200 || r.status > 299) throw new ApiClientError(statusFromResponse(r.status, r.text), method, path);
    const obj = JSON.parse(r.text) as LeaseObject;
    if (!obj || typeof obj !== 'object' || !obj.metadata) throw new Error(`${method} ${path}: the answer is not a Lease`);
    return obj;
  }

  /** Gives the lease up if we hold it by our last observation: a conditional update, re-read once if it fails. */
  private async release(): Promise<void> {
    for (let i = 0; i < 2; i++) {
      if (this.observed.holder !== this.identity) return;
      const deadline = now() + this.o.attemptTimeoutMs;
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(new Error(`the release took longer than ${this.o.attemptTimeoutMs} ms`)), this.o.attemptTimeoutMs);
      const signal = ctl.signal;
      try {
        if (i > 0 || !this.lease) {
          const cur = await this.request('GET', undefined, signal, deadline);
          this.lease = cur;
          this.observed.observe(recordFromLease(cur), now());
          if (this.observed.holder !== this.identity) return;
        }
        const stamp = this.stamp();
        const rec: LeaderElectionRecord = {
          holderIdentity: '', leaseDurationSeconds: 1, acquireTime: stamp, renewTime: stamp,
          leaseTransitions: this.observed.record!.leaseTransitions,
        };
        this.written(await this.request('PUT', leaseWithRecord(this.lease!, rec), signal, deadline));
        this.reportTransition();
        this.log.info({ lease: this.describe() }, 'released the lease');
        return;
      } catch (e) {
        this.log.warn({ lease: this.describe(), ...errInfo(e), try: i + 1 }, 'failed to release the lease');
      } finally {
        clearTimeout(timer);
      }
    }
  }
}
