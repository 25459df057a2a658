// The one HTTP client of every Flotilla client process (CLI, controllers,
// scheduler, node agents). It talks to any member of the cluster: every
// server answers every request (followers forward writes to the leader), so
// the client only has to spread load and step around members that are down
// or not ready:
//
// - each client starts on a random server (spreading many clients over the
//   cluster) and sticks to the last one that answered;
// - a connection failure or a 503 (no leader yet, not caught up, shutting
//   down) moves on to the next server at once; after a whole round of
//   failures it backs off (exponential with jitter, at least what the
//   server's Retry-After asked) and tries again, until a deadline;
// - a request that may have reached a server is never replayed unless the
//   method is idempotent: a POST whose connection broke mid-flight may well
//   have been committed, and sending it twice could create two objects;
// - a 503 means the server did not apply the request (safe to send again,
//   any method); a 504 Timeout means the outcome is unknown (the write may
//   still be applied), so only reads are retried on it.
//
// Non-2xx answers become ApiClientError carrying the server's Kubernetes
// Status, so callers can branch on `reason` exactly as client-go users do.
import { StringDecoder } from 'node:string_decoder';
import { Agent, type Dispatcher, request } from 'undici';
import type { KindDef, KubeObject } from '../../api/schema/types.ts';
import { apiVersionOf } from '../../api/kinds/index.ts';
import type { ClientCredentials } from './kubeconfig.ts';

export type QueryValue = string | number | boolean | null | undefined | readonly string[];
export type Query = Record<string, QueryValue>;

/** The Kubernetes `Status` of a failed request (metav1.Status). */
export interface Status {
  kind: 'Status';
  apiVersion: string;
  metadata?: Record<string, unknown>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  code: number;
  details?: StatusDetails;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: { reason?: string; message: string; field?: string; type?: string }[];
  retryAfterSeconds?: number;
}

export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface ObjectList<T = KubeObject> {
  apiVersion?: string;
  kind?: string;
  metadata: ListMeta;
  items: T[];
}

/** meta.k8s.io/v1 TableColumnDefinition. */
export interface TableColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  /** 0: always shown; higher: only with -o wide. */
  priority: number;
}

export interface TableRow {
  cells: unknown[];
  /** PartialObjectMetadata (the default) or the full object with includeObject=Object. */
  object?: KubeObject;
}

/** meta.k8s.io/v1 Table, the server-side printing that `get` shows. */
export interface Table {
  kind: 'Table';
  apiVersion: string;
  metadata: ListMeta;
  columnDefinitions: TableColumn[];
  rows: TableRow[];
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

/** One event of a watch stream. ERROR events are not delivered: they reject watch() instead. */
export interface WatchEvent<T = KubeObject> {
  type: WatchEventType;
  object: T;
}

export interface ApiClientOptions {
  /** Total time a call may spend failing over and backing off (default 30 s). */
  deadlineMs?: number;
  /** Time one attempt may wait for response headers (default 30 s, capped by the deadline). */
  attemptTimeoutMs?: number;
  /** TCP connect timeout (default 3 s): a dead host should not eat the whole deadline. */
  connectTimeoutMs?: number;
  /** First backoff after a round of failures (default 100 ms); doubles up to maxBackoffMs (default 2 s). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** User-Agent; the server derives the default field manager from its first segment. */
  userAgent?: string;
  /** Called for each `Warning` header the server sends (deprecations, unknown fields). */
  onWarning?: (message: string) => void;
  /** A shared dispatcher; by default the client owns an Agent and close() closes it. */
  dispatcher?: Dispatcher;
  /**
   * TLS trust and credentials (from a kubeconfig): the CA the servers'
   * certificates chain to, a client certificate and key (x509 authentication)
   * and/or a bearer token. Like client-go, the token and the certificate are
   * only sent over https:// (never over plain HTTP).
   */
  credentials?: ClientCredentials;
}

export interface RequestOptions {
  query?: Query;
  /** An object is sent as JSON; a string or Buffer as it is. */
  body?: unknown;
  contentType?: string;
  accept?: string;
  headers?: Record<string, string>;
  /** Overrides the client's deadline for this call. */
  deadlineMs?: number;
  /** Overrides the client's per-attempt timeout for this call. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The server that answered. */
  server: string;
}

/** A non-2xx answer from a server, with its Kubernetes Status. */
export class ApiClientError extends Error {
  override name = 'ApiClientError';
  readonly code: number;
  readonly reason: string;
  readonly details?: StatusDetails;

  constructor(
    readonly status: Status,
    readonly method: string,
    readonly path: string,
  ) {
    super(status.message);
    this.code = status.code;
    this.reason = status.reason;
    this.details = status.details;
  }
}

/** No server could be reached (or a connection broke where a retry was unsafe). */
export class ApiConnectionError extends Error {
  override name = 'ApiConnectionError';
  constructor(
    message: string,
    readonly servers: string[],
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

export const TABLE_ACCEPT = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';
const JSON_TYPE = 'application/json';

/** Kubernetes' reason for an HTTP code, for answers that carry no Status (proxies, plain-text errors). */
function reasonForCode(code: number): string {
  switch (code) {
    case 400: return 'BadRequest';
    case 401: return 'Unauthorized';
    case 403: return 'Forbidden';
    case 404: return 'NotFound';
    case 405: return 'MethodNotAllowed';
    case 406: return 'NotAcceptable';
    case 409: return 'Conflict';
    case 410: return 'Expired';
    case 413: return 'RequestEntityTooLarge';
    case 415: return 'UnsupportedMediaType';
    case 422: return 'Invalid';
    case 429: return 'TooManyRequests';
    case 503: return 'ServiceUnavailable';
    case 504: return 'Timeout';
    default: return code >= 500 ? 'InternalError' : 'Unknown';
  }
}

/** The Status in an error response, or one synthesized from its code and text. */
export function statusFromResponse(code: number, text: string): Status {
  try {
    const s = JSON.parse(text) as Partial<Status>;
    if (s && s.kind === 'Status' && typeof s.message === 'string') {
      return { apiVersion: 'v1', status: 'Failure', ...s, code: s.code ?? code, reason: s.reason || reasonForCode(code) } as Status;
    }
  } catch {
    /* not JSON: fall through */
  }
  const body = text.trim();
  return {
    kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason: reasonForCode(code),
    message: body ? `the server responded with ${code}: ${body.slice(0, 500)}` : `the server responded with status ${code}`,
  };
}

/** Network errors raised before any byte of the request left: always safe to retry elsewhere. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT',
]);
/** Errors after the request may have been delivered: safe to retry only for idempotent methods. */
const MIDFLIGHT_ERRORS = new Set([
  'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** Methods that change nothing: replayed even when an earlier attempt's outcome is unknown (504). */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

function errCode(e: unknown): string {
  const err = e as { code?: string; cause?: { code?: string } };
  return err?.code ?? err?.cause?.code ?? '';
}

function retryableNetworkError(e: unknown, method: string): boolean {
  const code = errCode(e);
  if (CONNECT_ERRORS.has(code)) return true;
  return MIDFLIGHT_ERRORS.has(code) && IDEMPOTENT.has(method);
}

/** Retry-After in ms (seconds or an HTTP date), or the Status' retryAfterSeconds. */
function retryAfterMs(headers: ApiResponse['headers'], text: string): number {
  const h = headers['retry-after'];
  const v = Array.isArray(h) ? h[0] : h;
  if (v) {
    const s = Number(v);
    if (Number.isFinite(s)) return Math.max(0, s * 1000);
    const t = Date.parse(v);
    if (!Number.isNaN(t)) return Math.max(0, t - Date.now());
  }
  try {
    const s = JSON.parse(text) as Status;
    if (s?.details?.retryAfterSeconds) return s.details.retryAfterSeconds * 1000;
  } catch {
    /* no Status */
  }
  return 0;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Builds `?a=1&b=x&b=y` from a query object; undefined and null are left out. */
export function encodeQuery(q: Query | undefined): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.append(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/**
 * The REST path of a kind's collection, an object, or a subresource:
 * core kinds live under /api/v1, the others under /apis/GROUP/VERSION;
 * namespaced kinds get /namespaces/NS unless `namespace` is empty (a list
 * across all namespaces); cluster-scoped kinds never do.
 */
export function resourcePath(
  kind: Pick<KindDef, 'group' | 'version' | 'plural' | 'namespaced'>,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  const seg = encodeURIComponent;
  let p = kind.group ? `/apis/${seg(kind.group)}/${seg(kind.version)}` : `/api/${seg(kind.version)}`;
  if (kind.namespaced && namespace) p += `/namespaces/${seg(namespace)}`;
  p += `/${seg(kind.plural)}`;
  if (name) p += `/${seg(name)}`;
  else if (subresource) throw new Error(`subresource "${subresource}" needs an object name`);
  if (subresource) p += `/${seg(subresource)}`;
  return p;
}

export { apiVersionOf };

/** The answer of GET /cluster/status. */
export interface ClusterStatus {
  id: string;
  role: string;
  term: number;
  leader: string;
  commitIndex: number;
  appliedIndex: number;
  members: { id: string; peer: string; api: string; voter: boolean }[];
  [k: string]: unknown;
}

export class ApiClient {
  readonly servers: readonly string[];
  private preferred: number;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly o: Required<Omit<ApiClientOptions, 'onWarning' | 'dispatcher' | 'credentials'>> & Pick<ApiClientOptions, 'onWarning'>;
  /** The bearer token, sent to https:// servers only. */
  private readonly token?: string;
  /** What the client was made with (for a client of one member of the same cluster). */
  readonly credentials?: ClientCredentials;

  constructor(servers: readonly string[], opts: ApiClientOptions = {}) {
    if (!servers.length) throw new Error('ApiClient needs at least one server URL');
    this.servers = servers.map((s) => s.replace(/\/+$/, ''));
    this.preferred = Math.floor(Math.random() * this.servers.length);
    this.o = {
      deadlineMs: opts.deadlineMs ?? 30_000,
      attemptTimeoutMs: opts.attemptTimeoutMs ?? 30_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 3_000,
      backoffMs: opts.backoffMs ?? 100,
      maxBackoffMs: opts.maxBackoffMs ?? 2_000,
      userAgent: opts.userAgent ?? 'flotilla/0.1.0',
      onWarning: opts.onWarning,
    };
    this.ownsDispatcher = !opts.dispatcher;
    const c = opts.credentials ?? {};
    this.token = c.token;
    this.credentials = opts.credentials;
    // The TLS options only apply to https:// servers; a plain-HTTP connection ignores them.
    const tls = {
      ...(c.ca ? { ca: c.ca } : {}), ...(c.cert && c.key ? { cert: c.cert, key: c.key } : {}),
      ...(c.insecureSkipTlsVerify ? { rejectUnauthorized: false } : {}),
    };
    this.dispatcher = opts.dispatcher ?? new Agent({ connect: { timeout: this.o.connectTimeoutMs, ...tls }, keepAliveTimeout: 10_000 });
  }

  /** Releases pooled connections (so a CLI process can exit promptly). */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  // ------------------------------------------------------------------ verbs

  async get<T = KubeObject>(path: string, query?: Query): Promise<T> {
    return this.json<T>('GET', path, { query });
  }

  /** LIST; follows `continue` tokens so the result is the whole list, at the first page's revision. */
  async list<T = KubeObject>(path: string, query?: Query): Promise<ObjectList<T>> {
    const first = await this.json<ObjectList<T>>('GET', path, { query });
    first.items ??= [];
    first.metadata ??= {};
    let cont = first.metadata.continue;
    while (cont) {
      const page = await this.json<ObjectList<T>>('GET', path, { query: { ...query, continue: cont } });
      first.items.push(...(page.items ?? []));
      cont = page.metadata?.continue;
    }
    delete first.metadata.continue;
    delete first.metadata.remainingItemCount;
    return first;
  }

  async create<T = KubeObject>(path: string, obj: unknown, query?: Query): Promise<T> {
    return this.json<T>('POST', path, { body: obj, query });
  }

  async update<T = KubeObject>(path: string, obj: unknown, query?: Query): Promise<T> {
    return this.json<T>('PUT', path, { body: obj, query });
  }

  /** PATCH with the given patch type (merge-patch+json, json-patch+json, strategic-merge-patch+json, apply-patch+yaml). */
  async patch<T = KubeObject>(path: string, body: unknown, contentType: string, query?: Query): Promise<T> {
    return this.json<T>('PATCH', path, { body, contentType, query });
  }

  /** DELETE with optional DeleteOptions; resolves to what the server answered (the object or a Status). */
  async delete<T = KubeObject | Status>(path: string, body?: unknown, query?: Query): Promise<T> {
    return this.json<T>('DELETE', path, { body, query });
  }

  /** GET as a meta.k8s.io Table (server-side printing); a list follows `continue` tokens. */
  async table(path: string, query?: Query): Promise<Table> {
    const first = await this.json<Table>('GET', path, { query, accept: TABLE_ACCEPT });
    if (first.kind !== 'Table') throw new Error(`the server did not answer ${path} with a Table (got kind ${String(first.kind)})`);
    first.rows ??= [];
    first.metadata ??= {};
    let cont = first.metadata.continue;
    while (cont) {
      const page = await this.json<Table>('GET', path, { query: { ...query, continue: cont }, accept: TABLE_ACCEPT });
      first.rows.push(...(page.rows ?? []));
      cont = page.metadata?.continue;
    }
    delete first.metadata.continue;
    delete first.metadata.remainingItemCount;
    return first;
  }

  /**
   * WATCH `path` (a collection, usually with resourceVersion from a LIST).
   * Calls onEvent for each event in order (awaiting it, so a slow consumer
   * slows the stream rather than buffering without bound). Resolves when the
   * server ends the stream (timeoutSeconds, shutdown) or `signal` aborts;
   * rejects with ApiClientError on an ERROR event (410 Expired: re-list) and
   * with ApiConnectionError when the connection breaks. Either way the caller
   * resumes from the last resourceVersion it saw.
   */
  async watch<T = KubeObject>(
    path: string,
    query: Query,
    onEvent: (e: WatchEvent<T>) => void | Promise<void>,
    signal?: AbortSignal,
    opts: { table?: boolean } = {},
  ): Promise<void> {
    const method = 'GET';
    let started: Awaited<ReturnType<ApiClient['send']>>;
    try {
      started = await this.send(method, path, {
        query: { ...query, watch: 'true' }, accept: opts.table ? TABLE_ACCEPT : JSON_TYPE, signal,
      }, { stream: true });
    } catch (e) {
      if (signal?.aborted) return;
      throw e;
    }
    const { server } = started;
    const body = started.stream!;
    // A chunk may end inside a multi-byte character; the decoder carries it over.
    const decoder = new StringDecoder('utf8');
    let buf = '';
    const handle = async (line: string) => {
      let ev: { type?: string; object?: unknown };
      try {
        ev = JSON.parse(line) as typeof ev;
      } catch {
        throw new ApiConnectionError(`malformed watch event from ${server}: ${line.slice(0, 200)}`, [server]);
      }
      if (ev.type === 'ERROR') {
        const st = ev.object as Partial<Status> | undefined;
        throw new ApiClientError(statusFromResponse(st?.code ?? 500, JSON.stringify(st ?? {})), method, path);
      }
      await onEvent(ev as WatchEvent<T>);
    };
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        buf += decoder.write(chunk);
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) await handle(line);
        }
      }
      // A final event without its newline (a server that ends the stream right after writing).
      buf += decoder.end();
      if (buf.trim()) await handle(buf.trim());
    } catch (e) {
      body.destroy();
      if (signal?.aborted) return;
      if (e instanceof ApiClientError || e instanceof ApiConnectionError) throw e;
      throw new ApiConnectionError(`watch ${path} on ${server} broke: ${(e as Error).message}`, [server], e);
    }
  }

  /**
   * GET a streamed body (pods/NAME/log with follow): the bytes as they come.
   * A non-2xx answer rejects with ApiClientError before any byte.
   */
  async *stream(path: string, query?: Query, signal?: AbortSignal): AsyncGenerator<Buffer> {
    const started = await this.send('GET', path, { query, accept: '*/*', signal }, { stream: true });
    try {
      for await (const chunk of started.stream! as AsyncIterable<Buffer>) yield chunk;
    } catch (e) {
      if (!signal?.aborted) throw new ApiConnectionError(`GET ${path} on ${started.server} broke: ${(e as Error).message}`, [started.server], e);
    }
  }

  /**
   * Any request; resolves to the response whatever its status (after failing
   * over on connection errors and 503s), so callers can handle non-Kubernetes
   * endpoints and codes themselves.
   */
  async raw(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse> {
    const { stream: _none, ...r } = await this.send(method.toUpperCase(), path, opts, { stream: false });
    this.warn(r.headers);
    return r;
  }

  /** GET /cluster/status from whichever server answers. */
  async clusterStatus(opts: RequestOptions = {}): Promise<ClusterStatus> {
    return this.json<ClusterStatus>('GET', '/cluster/status', opts);
  }

  // --------------------------------------------------------------- internals

  /** A request whose 2xx body is JSON; anything else throws ApiClientError. */
  private async json<T>(method: string, path: string, opts: RequestOptions): Promise<T> {
    const r = await this.raw(method, path, opts);
    if (r.status < 200 || r.status > 299) throw new ApiClientError(statusFromResponse(r.status, r.text), method, path);
    if (!r.text) return undefined as T;
    try {
      return JSON.parse(r.text) as T;
    } catch (e) {
      throw new ApiClientError(statusFromResponse(500, `invalid JSON in the response from ${r.server}: ${(e as Error).message}`), method, path);
    }
  }

  private warn(headers: ApiResponse['headers']): void {
    const w = headers.warning;
    if (!w || !this.o.onWarning) return;
    for (const h of Array.isArray(w) ? w : [w]) {
      // `299 - "text"` (RFC 7234); a header may join several with commas.
      for (const m of h.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)) this.o.onWarning(m[1].replace(/\\(.)/g, '$1'));
    }
  }

  /**
   * Sends one request with failover. For `stream: true` the body of a 2xx
   * answer is left unread for the caller; anything else is read here.
   */
  private async send(
    method: string,
    path: string,
    opts: RequestOptions,
    mode: { stream: boolean },
  ): Promise<ApiResponse & { stream?: Dispatcher.ResponseData['body'] }> {
    const deadline = Date.now() + (opts.deadlineMs ?? this.o.deadlineMs);
    const headers: Record<string, string> = {
      accept: opts.accept ?? JSON_TYPE, 'user-agent': this.o.userAgent, ...opts.headers,
    };
    let body: string | Buffer | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' || Buffer.isBuffer(opts.body) ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? JSON_TYPE;
    }
    const url = `${path}${encodeQuery(opts.query)}`;
    let backoff = this.o.backoffMs;
    let lastError: Error | undefined;
    let last: ApiResponse | undefined;

    for (;;) {
      let waitMs = 0;
      for (let i = 0; i < this.servers.length; i++) {
        const idx = (this.preferred + i) % this.servers.length;
        const server = this.servers[idx];
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        let res: Dispatcher.ResponseData;
        try {
          const withToken = this.token && !opts.headers?.authorization && server.startsWith('https:') ? { ...headers, authorization: `Bearer ${this.token}` } : headers;
          res = await request(`${server}${url}`, {
            dispatcher: this.dispatcher, method: method as Dispatcher.HttpMethod, headers: withToken, body, signal: opts.signal,
            headersTimeout: Math.max(1, Math.min(remaining, opts.timeoutMs ?? this.o.attemptTimeoutMs)),
            // Watches may be silent for minutes; other bodies arrive right after the headers.
            bodyTimeout: mode.stream ? 0 : Math.max(1, Math.min(remaining, opts.timeoutMs ?? this.o.attemptTimeoutMs)),
          });
        } catch (e) {
          if (opts.signal?.aborted) throw e;
          if (!retryableNetworkError(e, method)) {
            throw new ApiConnectionError(`${method} ${path} on ${server} failed: ${(e as Error).message}`, [server], e);
          }
          lastError = e as Error;
          continue;
        }
        const retryable = res.statusCode === 503 || res.statusCode === 429 || (res.statusCode === 504 && SAFE.has(method));
        if (retryable) {
          const text = await res.body.text().catch(() => '');
          waitMs = Math.max(waitMs, retryAfterMs(res.headers, text));
          last = { status: res.statusCode, headers: res.headers, text, server };
          lastError = undefined;
          continue;
        }
        if (mode.stream && res.statusCode >= 200 && res.statusCode <= 299) {
          this.preferred = idx;
          return { status: res.statusCode, headers: res.headers, text: '', server, stream: res.body };
        }
        let text: string;
        try {
          text = await res.body.text();
        } catch (e) {
          // The server went away while answering: as uncertain as a broken request.
          if (opts.signal?.aborted) throw e;
          if (!IDEMPOTENT.has(method)) {
            throw new ApiConnectionError(`${method} ${path} on ${server} failed while reading the answer: ${(e as Error).message}`, [server], e);
          }
          lastError = e as Error;
          continue;
        }
        this.preferred = idx;
        // A watch that failed to start raises its Status here; everything else goes back to the caller.
        if (mode.stream) throw new ApiClientError(statusFromResponse(res.statusCode, text), method, path);
        return { status: res.statusCode, headers: res.headers, text, server };
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const jittered = backoff * (0.5 + Math.random());
      await sleep(Math.min(remaining, Math.max(jittered, waitMs)), opts.signal);
      backoff = Math.min(backoff * 2, this.o.maxBackoffMs);
    }

    if (last) {
      // Out of time with no server able to serve: an answer ("no leader yet") says more than a refused connection.
      if (mode.stream) throw new ApiClientError(statusFromResponse(last.status, last.text), method, path);
      return last;
    }
    const why = lastError ? `: ${lastError.message}` : '';
    throw new ApiConnectionError(
      `unable to reach a Flotilla server (${this.servers.join(', ')}) within ${Math.round((opts.deadlineMs ?? this.o.deadlineMs) / 1000)}s${why}`,
      [...this.servers], lastError,
    );
  }
}
