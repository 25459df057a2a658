// The HTTP front of a Flotilla server: the request pipeline (authentication →
// authorization → routing → handler), discovery, OpenAPI, health, metrics and
// cluster status. Any member serves any request: writes go through Raft (a
// follower's proposals are forwarded to the leader), reads are linearizable
// through ReadIndex unless resourceVersion=0 asks for local state.
import type { DefaultTolerationSecondsOptions } from './default-toleration-seconds.ts';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { proxyPodUpgrade, refuseUpgrade } from './pod-exec.ts';
import type { AgentDialer } from './agent-dialer.ts';
import type { Logger } from 'pino';
import client from 'prom-client';
import { Agent, request } from 'undici';
import type { RaftNode } from '../../raft/node.ts';
import { RaftError, Role } from '../../raft/types.ts';
import { ApiError, errors } from '../errors.ts';
import type { Registry } from '../registry.ts';
import { openApiV2, openApiV3Document, openApiV3Index } from '../../api/schema/openapi.ts';
import { apiGroupDoc, apiGroupList, apiVersions, resourceList, versionInfo } from './discovery.ts';
import { Handlers, type RequestContext } from './handlers.ts';
import { parseResourcePath } from './info.ts';
import { checkAcceptable, readBody, sendError, sendJson } from './io.ts';
import { type MemberRecord, isLoopback, tokenAccepted } from './members.ts';
import { OPENAPI_V2_PROTOBUF, OPENAPI_V2_PROTOBUF_ACCEPT, openApiV2Protobuf } from './openapi-v2-proto.ts';
import { validateBooleans } from './query.ts';
import { type ResourceMetricsApi, isResourceMetricsPath, resourceMetricsGroup } from '../resource-metrics/api.ts';
import { WatchHub } from './watch.ts';
import { Auth } from '../auth/auth.ts';
import { requestAttributes } from '../auth/request-info.ts';
import { checkNodeRestriction } from '../auth/node-authorizer.ts';
import { checkEscalation } from '../auth/escalation.ts';
import { isReviewPath, serveReview } from '../auth/reviews.ts';
import type { UserInfo } from '../auth/rules.ts';
import { requestAudit } from './request-audit.ts';
import type { RefusedAudit } from '../audit/refused.ts';
import { DEFAULT_FLOW_CONTROL, FlowControl, type FlowControlOptions, countClientErrors } from './flow-control.ts';
import { serveTokenRequest } from '../auth/token-request.ts';

/** Answered to anyone, identity or not. */
const HEALTH_PATHS = new Set(['/healthz', '/livez', '/readyz']);
const UPGRADE_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);


export interface MemberInfo {
  id: string;
  peer: string;
  api: string;
  voter: boolean;
}

export interface ApiServerOptions {
  node: RaftNode;
  registry: Registry;
  logger: Logger;
  metrics: client.Registry;
  /** This member's API URL (http://host:port). */
  apiUrl: string;
  /** API URLs of the current members, from the replicated member directory. */
  memberApis: () => Map<string, string>;
  /** Who may change the membership: this server's admin token, and the current members' records (their token hashes). */
  admin: { token: string; members: () => MemberRecord[] };
  /** Node's headersTimeout: the whole header block must arrive within this (default 30 s). */
  headersTimeoutMs?: number;
  /** Node's requestTimeout: the whole request (headers and body) must arrive within this (default 60 s). Responses - watches - are not limited. */
  requestReadTimeoutMs?: number;
  /** Membership changes (POST/DELETE /cluster/members), run on the leader. */
  addMember: (id: string, peer: string) => Promise<unknown>;
  removeMember: (id: string) => Promise<unknown>;
  defaultTimeoutMs?: number;
  /** The DefaultTolerationSeconds admission plugin's settings (300 s each by default). */
  defaultTolerationSeconds?: DefaultTolerationSecondsOptions;
  /** metrics.k8s.io, when the server receives node usage reports over NATS. */
  resourceMetrics?: ResourceMetricsApi;
  /** The event publisher's state, when the server publishes to NATS. */
  events?: () => Record<string, unknown>;
  /** Authentication and authorization (AlwaysAllow for everyone anonymous unless the server was started with RBAC). */
  auth?: Auth;
  /** Max requests in flight and the per-user pace of expensive LISTs (flow-control.ts; defaults as kube-apiserver's). */
  flowControl?: FlowControlOptions;
  /** Node's maxHeaderSize: the largest header block accepted (default 16 KiB); a larger one is answered 431. */
  maxHeaderBytes?: number;
  /** Where refused requests (401/403) are recorded, when the server publishes to NATS. */
  refusedAudit?: RefusedAudit;
  /** HTTPS (PEM): the serving pair, and the CA client certificates are verified against (asked for, never required). */
  tls?: { cert: string; key: string; clientCA?: string };
  /** How pods/log, exec, attach and portforward reach node agents (plain TCP unless --kubelet-client-certificate). */
  agentDialer?: AgentDialer;
}

export class ApiHttpServer {
  readonly server: Server;
  private readonly handlers: Handlers;
  readonly watches: WatchHub;
  private ready = false;
  private readyCheck?: NodeJS.Timeout;
  private readonly requests: client.Counter<string>;
  private readonly latency: client.Histogram<string>;

  constructor(private readonly o: ApiServerOptions) {
    this.auth = o.auth ?? new Auth({ mode: 'AlwaysAllow', tokens: new Map(), anonymous: true }, o.registry.store);
    this.handlers = new Handlers(o.registry, { defaultTolerationSeconds: o.defaultTolerationSeconds, agentDialer: o.agentDialer });
    this.watches = new WatchHub(o.registry);
    // Slow or stalled senders are cut off: headers within headersTimeout, the
    // whole request within requestTimeout. Both cover receiving the request
    // only, so long responses (watches) are not affected.
    const requestTimeout = o.requestReadTimeoutMs ?? 60_000;
    const headersTimeout = Math.min(o.headersTimeoutMs ?? 30_000, requestTimeout);
    const httpOptions = {
      keepAliveTimeout: 65_000, requestTimeout, headersTimeout, maxHeaderSize: o.maxHeaderBytes ?? 16 * 1024,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, headersTimeout / 4)),
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    // With a client CA the handshake asks for a certificate but lets a client
    // without one (or with one that does not verify) through: apiserver/auth
    // decides, so tokens and anonymous requests keep working, as kube-apiserver.
    this.server = o.tls
      ? createHttpsServer({
        ...httpOptions, cert: o.tls.cert, key: o.tls.key,
        ...(o.tls.clientCA ? { ca: o.tls.clientCA, requestCert: true, rejectUnauthorized: false } : {}),
      }, handler)
      : createServer(httpOptions, handler);
    countClientErrors(this.server, o.metrics);
    this.flow = new FlowControl(o.flowControl ?? DEFAULT_FLOW_CONTROL, (res) => o.registry.store.countOf(res), o.metrics);
    // pods/exec, attach and portforward arrive as upgrades; authorized, then proxied to the pod's node agent.
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.handleUpgrade(req, socket, head));
    this.requests = new client.Counter({
      name: 'apiserver_request_total', help: 'API requests by verb, resource and HTTP code', labelNames: ['verb', 'resource', 'code'], registers: [o.metrics],
    });
    this.latency = new client.Histogram({
      name: 'apiserver_request_duration_seconds', help: 'API request latency (watches excluded)', labelNames: ['verb'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [o.metrics],
    });
    const hub = this.watches;
    new client.Gauge({ name: 'apiserver_watchers', help: 'Open watch streams', registers: [o.metrics], collect() { this.set(hub.active); } });
    const store = o.registry.store;
    new client.Gauge({ name: 'apiserver_storage_objects', help: 'Objects in the store', registers: [o.metrics], collect() { this.set(store.objectCount); } });
    new client.Gauge({ name: 'apiserver_store_revision', help: 'Last applied store revision', registers: [o.metrics], collect() { this.set(store.revision); } });
    const node = o.node;
    new client.Gauge({ name: 'raft_term', help: 'Current Raft term', registers: [o.metrics], collect() { this.set(node.status().term); } });
    new client.Gauge({ name: 'raft_commit_index', help: 'Raft commit index', registers: [o.metrics], collect() { this.set(node.status().commit); } });
    new client.Gauge({ name: 'raft_applied_index', help: 'Raft applied index', registers: [o.metrics], collect() { this.set(node.appliedIndex); } });
    new client.Gauge({ name: 'raft_is_leader', help: '1 on the Raft leader', registers: [o.metrics], collect() { this.set(node.role === Role.Leader ? 1 : 0); } });
  }

  async listen(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    this.watchReadiness();
  }

  async close(): Promise<void> {
    if (this.readyCheck) clearTimeout(this.readyCheck);
    this.server.closeAllConnections?.();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Ready once there is a leader and this member has applied everything committed when it became ready. */
  private watchReadiness(): void {
    const check = async () => {
      if (this.ready) return;
      try {
        if (this.o.node.leader) {
          await this.o.node.readIndex(2000);
          this.ready = true;
          this.o.logger.info({ revision: this.o.registry.store.revision }, 'API server ready');
          return;
        }
      } catch {
        /* not yet */
      }
      this.readyCheck = setTimeout(check, 100);
    };
    void check();
  }

  private readonly auth: Auth;
  readonly flow: FlowControl;

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const received = new Date();
    const url = new URL(req.url ?? '/', 'http://localhost');
    let verb = req.method ?? 'GET';
    let resource = '';
    res.on('finish', () => {
      this.requests.inc({ verb, resource, code: String(res.statusCode) });
      if (verb !== 'watch') this.latency.observe({ verb }, (performance.now() - started) / 1000);
    });
    let identity: UserInfo | undefined; // for the record of a refused request
    try {
      // The cluster endpoints carry the members' admin token (authorizeAdmin), not an API identity.
      const clusterPath = /^\/(cluster|debug)\//.test(url.pathname);
      const who = clusterPath ? { user: 'system:anonymous', groups: ['system:unauthenticated'] } : await this.auth.authenticate(req);
      identity = who;
      // Authorized before anything is looked up. The cluster and debug endpoints stay as they were (membership
      // changes check the admin token in authorizeAdmin) until component identities arrive. The health endpoints
      // are always open (genericapiserver's always-allow paths): a load balancer or harness asks them before the
      // leader has reconciled the default policy that grants them to system:public-info-viewer.
      const attrs = requestAttributes(req.method ?? 'GET', url.pathname, url.searchParams);
      // After authentication, before authorization, as kube-apiserver's max-in-flight filter: 429 when full.
      this.flow.admit(who, attrs, url.searchParams, res);
      if (!clusterPath && !HEALTH_PATHS.has(url.pathname)) this.auth.authorize(who, attrs);
      const timeoutMs = parseTimeout(url.searchParams.get('timeout')) ?? this.o.defaultTimeoutMs ?? 10_000;
      validateBooleans(url.searchParams);
      if (isResourceMetricsPath(url.pathname)) {
        resource = 'metrics.k8s.io';
        if (!this.o.resourceMetrics) throw errors.unavailable('metrics.k8s.io is served only by servers started with --nats (node usage reports arrive over NATS)', 5);
        return sendJson(res, 200, this.o.resourceMetrics.respond(req.method ?? 'GET', url.pathname, url.searchParams), req);
      }
      if (isReviewPath(url.pathname)) return await serveReview(req, res, url.pathname, who, this.auth);
      const r = parseResourcePath(req.method ?? 'GET', url.pathname, url.searchParams);
      if (r) {
        verb = r.verb;
        resource = r.subresource ? `${r.kind.plural}/${r.subresource}` : r.kind.plural;
        checkAcceptable(req);
        if (r.subresource === 'token') return await serveTokenRequest(this.o.registry, this.auth.serviceAccountTokens, r, req, res, timeoutMs);
        const ctx: RequestContext = {
          req, res, query: url.searchParams, user: who.user, audit: requestAudit(req, who), warnings: [], timeoutMs,
          guard: this.auth.rbac ? (rr, obj) => { checkEscalation(this.auth, who, rr, obj); checkNodeRestriction(who, rr, obj); } : undefined,
        };
        if (r.verb === 'watch') return await this.watches.serve(r, ctx);
        return await this.handlers.handle(r, ctx);
      }
      return await this.handleOther(req, res, url);
    } catch (e) {
      if (!(e instanceof ApiError)) {
        // An unexpected failure on a Secret is logged without its message and stack, which could quote the data.
        const err = resource === 'secrets' ? { type: (e as Error)?.name } : e;
        this.o.logger.error({ err, url: req.url, method: req.method }, 'request failed');
      } else if ((e.code === 401 || e.code === 403) && this.o.refusedAudit) {
        await this.o.refusedAudit.record(req, identity, e, received);
      }
      sendError(res, e);
    }
  }

  /**
   * An upgrade request (exec, attach, portforward) bypasses handle(): it is
   * authenticated and authorized here, before anything is looked up, the same
   * way. These run commands in a pod or open connections into it, so they are
   * authorized as `create` on the subresource whatever the method: kubectl's
   * WebSocket exec is a GET, and authorizing it as `get` would let a role that
   * only reads pods/exec (edit's read rules) run commands — what Kubernetes
   * closed with AuthorizePodWebsocketUpgradeCreatePermission (1.35).
   */
  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const received = new Date();
    let identity: UserInfo | undefined;
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const who = await this.auth.authenticate(req);
      identity = who;
      const attrs = requestAttributes(req.method ?? 'GET', url.pathname, url.searchParams);
      if (attrs.resourceRequest && UPGRADE_SUBRESOURCES.has(attrs.subresource)) attrs.verb = 'create';
      this.auth.authorize(who, attrs);
    } catch (e) {
      if (e instanceof ApiError && (e.code === 401 || e.code === 403) && this.o.refusedAudit) await this.o.refusedAudit.record(req, identity, e, received).catch(() => {});
      else if (!(e instanceof ApiError)) this.o.logger.error({ err: e, url: req.url }, 'upgrade request failed');
      return refuseUpgrade(socket, e);
    }
    await proxyPodUpgrade(this.o.registry, req, socket, head, this.o.defaultTimeoutMs ?? 10_000, this.o.agentDialer);
  }

  private async handleOther(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const p = url.pathname.replace(/\/+$/, '') || '/';
    if (req.method === 'GET' || req.method === 'HEAD') {
      switch (p) {
        case '/healthz':
        case '/livez':
          return text(res, 200, 'ok');
        case '/readyz':
          return this.ready ? text(res, 200, 'ok') : text(res, 503, 'not ready: waiting for a leader and for this member to catch up');
        case '/metrics':
          return text(res, 200, await this.o.metrics.metrics(), this.o.metrics.contentType);
        case '/version':
          return sendJson(res, 200, versionInfo());
        case '/api':
          return sendJson(res, 200, apiVersions(url.host));
        case '/apis': {
          const groups = apiGroupList();
          if (this.o.resourceMetrics) (groups.groups as unknown[]).push(resourceMetricsGroup());
          return sendJson(res, 200, groups);
        }
        case '/openapi/v2':
          // kubectl asks for the protobuf form; JSON for everyone else.
          if (OPENAPI_V2_PROTOBUF_ACCEPT.some((t) => acceptsType(req, t))) {
            const pb = openApiV2Protobuf();
            res.writeHead(200, { 'content-type': OPENAPI_V2_PROTOBUF, 'content-length': pb.length });
            return void res.end(pb);
          }
          if (!acceptsType(req, 'application/json')) throw errors.notAcceptable(`only application/json and ${OPENAPI_V2_PROTOBUF} are served here (asked for "${req.headers.accept}")`);
          return sendJson(res, 200, openApiV2());
        case '/openapi/v3':
          return sendJson(res, 200, openApiV3Index());
        case '/cluster/status':
          return sendJson(res, 200, this.clusterStatus());
      }
      if (p === '/debug/raft/hash') {
        // Chaos checks compare members' applied logs through this hash chain.
        const index = Number(url.searchParams.get('index'));
        const hash = Number.isInteger(index) ? this.o.node.appliedHashAt(index) : undefined;
        if (!hash) throw new ApiError(404, 'NotFound', `no applied-log hash for index ${url.searchParams.get('index')} on this member`);
        return sendJson(res, 200, { index, hash, appliedIndex: this.o.node.appliedIndex });
      }
      if (p.startsWith('/openapi/v3/')) {
        const doc = openApiV3Document(p.slice('/openapi/v3/'.length));
        if (doc) return sendJson(res, 200, doc);
        throw new ApiError(404, 'NotFound', `no OpenAPI document for ${p}`);
      }
      const parts = p.split('/').filter(Boolean);
      if (parts[0] === 'api' && parts.length === 2) {
        const doc = resourceList('', parts[1]);
        if (doc) return sendJson(res, 200, doc);
      }
      if (parts[0] === 'apis' && parts.length === 2) {
        const doc = apiGroupDoc(parts[1]);
        if (doc) return sendJson(res, 200, doc);
      }
      if (parts[0] === 'apis' && parts.length === 3) {
        const doc = resourceList(parts[1], parts[2]);
        if (doc) return sendJson(res, 200, doc);
      }
    }
    if (p === '/cluster/members' && req.method === 'POST') return this.memberChange(req, res, 'add');
    if (p.startsWith('/cluster/members/') && req.method === 'DELETE') return this.memberChange(req, res, 'remove', decodeURIComponent(p.slice(17)));
    throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${req.method} ${p})`);
  }

  clusterStatus(): Record<string, unknown> {
    const s = this.o.node.status();
    const apis = this.o.memberApis();
    return {
      id: s.id, role: s.role, term: s.term, leader: s.leader, commitIndex: s.commit, appliedIndex: s.applied,
      revision: this.o.registry.store.revision,
      ...(this.o.events ? { events: this.o.events() } : {}),
      members: s.members.map((m) => ({ id: m.id, peer: m.peer, api: apis.get(m.id) ?? '', voter: m.voter })),
    };
  }

  /**
   * Membership changes need the admin token (this server's or another
   * member's) and, until authentication arrives, a caller on loopback or on a
   * member's peer host (a follower forwarding to the leader).
   */
  private authorizeAdmin(req: IncomingMessage): void {
    const remote = req.socket.remoteAddress;
    const hosts = new Set(this.o.node.status().members.map((m) => m.peer.slice(0, m.peer.lastIndexOf(':')).replace(/^\[|\]$/g, '')));
    const plain = remote?.replace(/^::ffff:/i, '');
    if (!isLoopback(remote) && !(plain && hosts.has(plain))) {
      throw errors.forbidden(`membership changes are only accepted from loopback (or from a member forwarding them); ${remote ?? 'this client'} is neither`);
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(String(req.headers.authorization ?? ''));
    if (!m) throw new ApiError(401, 'Unauthorized', 'membership changes need the admin token (Authorization: Bearer <token>); it is in <data dir>/admin-token of any server');
    if (!tokenAccepted(m[1], this.o.admin.token, this.o.admin.members())) throw new ApiError(401, 'Unauthorized', 'the admin token is not valid for this cluster');
  }

  /** Membership changes run on the leader; a follower forwards the request to it. */
  private async memberChange(req: IncomingMessage, res: ServerResponse, op: 'add' | 'remove', id?: string): Promise<void> {
    this.authorizeAdmin(req);
    let body: { id?: string; peer?: string } = {};
    if (op === 'add') {
      try {
        body = JSON.parse((await readBody(req)).toString() || '{}') as { id?: string; peer?: string };
      } catch (e) {
        throw errors.badRequest(`the body must be JSON {"id": ..., "peer": "host:port"}: ${(e as Error).message}`);
      }
    }
    const node = this.o.node;
    if (node.role !== Role.Leader) {
      // The leader's address comes from the member directory (replicated, written only by servers).
      const leaderApi = this.o.memberApis().get(node.leader);
      if (!leaderApi) throw errors.unavailable('no leader (or its API address is not known yet); retry', 1);
      const path = op === 'add' ? '/cluster/members' : `/cluster/members/${encodeURIComponent(id!)}`;
      // Longer than the leader's own wait for a new member to catch up (60 s).
      let r;
      // Over HTTPS the leader's serving certificate chains to the cluster CA, the one --client-ca-file names.
      const dispatcher = leaderApi.startsWith('https:') && this.o.tls?.clientCA ? new Agent({ connect: { ca: this.o.tls.clientCA } }) : undefined;
      try {
        r = await request(`${leaderApi}${path}`, {
          dispatcher, method: op === 'add' ? 'POST' : 'DELETE', body: op === 'add' ? JSON.stringify(body) : undefined, headersTimeout: 90_000, bodyTimeout: 90_000,
          headers: { authorization: String(req.headers.authorization), 'content-type': 'application/json' },
        });
      } catch (e) {
        await dispatcher?.close();
        throw errors.unavailable(`could not reach the leader (${node.leader}) at ${leaderApi}: ${(e as Error).message}`, 1);
      }
      res.writeHead(r.statusCode, { 'content-type': 'application/json' });
      res.end(await r.body.text());
      await dispatcher?.close();
      return;
    }
    try {
      if (op === 'add') {
        if (!body.id || !body.peer) throw errors.badRequest('id and peer are required');
        await this.o.addMember(body.id, body.peer);
      } else {
        await this.o.removeMember(id!);
      }
    } catch (e) {
      if (e instanceof ApiError) throw e;
      if (e instanceof RaftError && (e.code === 'timeout' || e.code === 'unknown-outcome')) {
        // The conf change may still be applied: not something to replay blindly.
        throw new ApiError(504, 'Timeout', `the server was unable to return a response in the time allotted, but may still be processing the request (membership change: ${e.message})`);
      }
      throw errors.unavailable(`membership change failed: ${(e as Error).message}`, 1);
    }
    sendJson(res, 200, this.clusterStatus());
  }
}

function parseTimeout(v: string | null): number | undefined {
  if (!v) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v);
  if (!m) throw errors.badRequest(`invalid timeout "${v}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000);
}

/**
 * Whether the Accept header names `type` explicitly (for protobuf) or admits
 * it (JSON: also through wildcards and when there is no header).
 */
function acceptsType(req: IncomingMessage, type: string): boolean {
  const a = req.headers.accept;
  const exactOnly = type !== 'application/json';
  if (!a) return !exactOnly;
  return a.split(',').some((part) => {
    const [t, ...params] = part.trim().toLowerCase().split(';').map((x) => x.trim());
    if (params.some((p) => /^q=0(\.0*)?$/.test(p))) return false;
    if (t === type.toLowerCase()) return true;
    return !exactOnly && (t === 'application/*' || t === '*/*');
  });
}

function text(res: ServerResponse, code: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
