// Request limits in front of the handlers, as kube-apiserver's max-in-flight
// filter: at most --max-requests-inflight read-only and
// --max-mutating-requests-inflight mutating requests at once on this server,
// the next one answered 429 with Retry-After: 1. Long-running requests
// (watch, proxy, and the attach, exec, log, portforward and proxy
// subresources) hold no slot, or informers would starve everyone else; nor
// do the health and metrics endpoints (a balancer that gets 429 from
// /readyz would take a busy server out of rotation), nor system:masters.
// A per-user token bucket also paces expensive LISTs: unpaginated lists of a
// collection of more than --list-rate-limit-min-objects objects.
import type { Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import client from 'prom-client';
import { ApiError } from '../errors.ts';
import type { Attributes, UserInfo } from '../auth/rules.ts';

export interface FlowControlOptions {
  /** Read-only requests in flight at once; 0 = no limit (default 400). */
  maxReadOnly: number;
  /** Mutating requests in flight at once; 0 = no limit (default 200). */
  maxMutating: number;
  /** Expensive LISTs per second per user; 0 = no limit (default 20). */
  listQps: number;
  /** Expensive LISTs a user may make at once before being paced (default 200). */
  listBurst: number;
  /** A LIST is expensive when it is unpaginated and the collection holds more objects than this (default 1000). */
  listMinObjects: number;
}

export const DEFAULT_FLOW_CONTROL: FlowControlOptions = { maxReadOnly: 400, maxMutating: 200, listQps: 20, listBurst: 200, listMinObjects: 1000 };

/** Kubernetes' answer when a limit is hit. */
export const TOO_MANY_REQUESTS = 'Too many requests, please try again later.';

const LONG_RUNNING_VERBS = new Set(['watch', 'proxy']);
const LONG_RUNNING_SUBRESOURCES = new Set(['attach', 'exec', 'proxy', 'log', 'portforward']);
const READ_ONLY_VERBS = new Set(['get', 'list', 'watch']);
const EXEMPT_PATHS = new Set(['/healthz', '/livez', '/readyz', '/metrics']);
const PRIVILEGED_GROUP = 'system:masters';
/** Users whose buckets are remembered at most (the oldest are forgotten: a forgotten user starts with a full bucket). */
const MAX_BUCKETS = 10_000;

export function tooManyRequests(retryAfterSeconds: number): ApiError {
  return new ApiError(429, 'TooManyRequests', TOO_MANY_REQUESTS, { retryAfterSeconds });
}

export function isLongRunning(a: Attributes): boolean {
  if (LONG_RUNNING_VERBS.has(a.verb)) return true;
  return a.resourceRequest && LONG_RUNNING_SUBRESOURCES.has(a.subresource);
}

interface Bucket {
  tokens: number;
  at: number;
}

export class FlowControl {
  private readOnly = 0;
  private mutating = 0;
  private readonly buckets = new Map<string, Bucket>();
  private readonly rejected: client.Counter<string>;

  constructor(
    private readonly o: FlowControlOptions,
    /** Objects a collection ("<group>/<plural>") holds now. */
    private readonly collectionSize: (res: string) => number,
    metrics: client.Registry,
  ) {
    const self = this;
    new client.Gauge({
      name: 'apiserver_current_inflight_requests', help: 'Requests holding a max-in-flight slot, by kind (readOnly, mutating)',
      labelNames: ['request_kind'], registers: [metrics],
      collect() { this.set({ request_kind: 'readOnly' }, self.readOnly); this.set({ request_kind: 'mutating' }, self.mutating); },
    });
    this.rejected = new client.Counter({
      name: 'apiserver_flowcontrol_rejected_requests_total',
      help: 'Requests answered 429, by kind (readOnly, mutating, list) and reason (max-inflight, rate-limit)',
      labelNames: ['request_kind', 'reason'], registers: [metrics],
    });
  }

  get inflight(): { readOnly: number; mutating: number } {
    return { readOnly: this.readOnly, mutating: this.mutating };
  }

  /**
   * Admits a request or throws 429. An admitted request holds its slot until
   * its response is finished or its connection closes, whichever is first.
   */
  admit(who: UserInfo, a: Attributes, query: URLSearchParams, res: ServerResponse): void {
    if (!a.resourceRequest && EXEMPT_PATHS.has(a.path.replace(/\/+$/, '') || '/')) return;
    if (isLongRunning(a) || who.groups.includes(PRIVILEGED_GROUP)) return;
    const mutating = !READ_ONLY_VERBS.has(a.verb);
    if (!mutating && a.resourceRequest && a.verb === 'list') this.pace(who, a, query);
    const limit = mutating ? this.o.maxMutating : this.o.maxReadOnly;
    const held = mutating ? this.mutating : this.readOnly;
    if (limit > 0 && held >= limit) {
      this.rejected.inc({ request_kind: mutating ? 'mutating' : 'readOnly', reason: 'max-inflight' });
      throw tooManyRequests(1);
    }
    if (mutating) this.mutating++;
    else this.readOnly++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (mutating) this.mutating--;
      else this.readOnly--;
    };
    res.once('finish', release);
    res.once('close', release);
  }

  /** The per-user token bucket for expensive LISTs. */
  private pace(who: UserInfo, a: Extract<Attributes, { resourceRequest: true }>, query: URLSearchParams): void {
    const { listQps: qps, listBurst: burst, listMinObjects: min } = this.o;
    if (qps <= 0) return;
    const limit = Number(query.get('limit') ?? 0);
    const paginated = Number.isFinite(limit) && limit > 0 && limit <= min;
    if (paginated || a.name || this.collectionSize(`${a.apiGroup}/${a.resource}`) <= min) return;
    const now = performance.now();
    let b = this.buckets.get(who.user);
    if (b) {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * qps);
      b.at = now;
      // Most recently used last, so the oldest are forgotten first.
      this.buckets.delete(who.user);
    } else {
      b = { tokens: Math.max(1, burst), at: now };
    }
    this.buckets.set(who.user, b);
    if (this.buckets.size > MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return;
    }
    this.rejected.inc({ request_kind: 'list', reason: 'rate-limit' });
    throw tooManyRequests(Math.max(1, Math.ceil((1 - b.tokens) / qps)));
  }
}

/**
 * Counts what Node's HTTP server refuses before a request reaches the
 * handler (headers too large or too slow, the request too slow, a malformed
 * request) and answers as Node would: 431, 408 or 400, then closes.
 */
export function countClientErrors(server: Server, metrics: client.Registry): void {
  const refused = new client.Counter({
    name: 'apiserver_listener_refused_total', help: 'Connections closed by the API listener before a request was handled, by reason',
    labelNames: ['reason'], registers: [metrics],
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const [reason, status] = err.code === 'HPE_HEADER_OVERFLOW' ? ['header-too-large', '431 Request Header Fields Too Large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? ['request-timeout', '408 Request Timeout']
      : err.code === 'ECONNRESET' ? ['reset', ''] : ['bad-request', '400 Bad Request'];
    refused.inc({ reason });
    const pending = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (status && socket.writable && !pending?.headersSent) {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    } else {
      socket.destroy();
    }
  });
}

