// Records of refused requests (401 Unauthorized, 403 Forbidden): an
// audit.k8s.io/v1 Event as JSON, published by the server that refused the
// request - straight to NATS, not through Raft: nothing was written, so
// there is nothing to replicate - on the subject
// audit.refused.<code>.<server id> of the JetStream stream AUDIT. The audit
// policy (policy.ts) chooses each record's level: None records nothing,
// Metadata who asked for what and the answer, Request adds the request body
// (capped; never a Secret's), RequestResponse also the Status sent back.
// Publishing never delays or fails the request: records wait in a bounded
// queue and are dropped (and counted) when NATS cannot keep up.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type JetStreamClient, type NatsConnection, StorageType, connect, nanos } from 'nats';
import type { Logger } from 'pino';
import client from 'prom-client';
import { KINDS } from '../../api/kinds/index.ts';
import { natsServerOptions } from '../../api/nats-url.ts';
import type { ApiError } from '../errors.ts';
import { requestAttributes } from '../auth/request-info.ts';
import type { UserInfo } from '../auth/rules.ts';
import { decodeBody, mediaType } from '../http/io.ts';
import { sourceIPs, userAgent } from '../http/request-audit.ts';
import { type AuditLevel, type AuditPolicy, auditLevel } from './policy.ts';

export const AUDIT_STREAM = 'AUDIT';
export const AUDIT_SUBJECT_PREFIX = 'audit';
/** The largest request body a Request-level record carries; a larger one is noted, not recorded. */
export const MAX_AUDIT_BODY = 64 * 1024;
/** Records waiting for NATS at most (then dropped and counted). */
const MAX_QUEUE = 1000;
/** How long a refused request's body is waited for (Request level). */
const BODY_WAIT_MS = 2000;

export interface RefusedAuditOptions {
  servers: string[];
  serverId: string;
  policy: AuditPolicy;
  maxAgeMs: number;
}

export function refusedSubject(code: number, serverId: string): string {
  return `${AUDIT_SUBJECT_PREFIX}.refused.${code}.${serverId.replace(/[.*>\s]/g, '_')}`;
}

export class RefusedAudit {
  private nc?: NatsConnection;
  private js?: JetStreamClient;
  private connecting?: Promise<void>;
  private queue: { subject: string; data: Uint8Array; id: string }[] = [];
  private draining = false;
  private stopped = false;
  private readonly recorded: client.Counter<string>;
  private readonly dropped: client.Counter;

  constructor(private readonly o: RefusedAuditOptions, private readonly log: Logger, metrics: client.Registry) {
    this.recorded = new client.Counter({
      name: 'flotilla_audit_refused_total', help: 'Refused requests (401/403) by HTTP code and the audit level the policy chose',
      labelNames: ['code', 'level'], registers: [metrics],
    });
    this.dropped = new client.Counter({ name: 'flotilla_audit_refused_dropped_total', help: 'Refused-request audit records dropped (NATS unreachable or too slow)', registers: [metrics] });
  }

  /** Records a refused request at its policy level; reads the body first when the level wants it. Never throws. */
  async record(req: IncomingMessage, who: UserInfo | undefined, err: ApiError, received: Date): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const attrs = requestAttributes(req.method ?? 'GET', url.pathname, url.searchParams);
      let level: AuditLevel = auditLevel(this.o.policy, who, attrs);
      this.recorded.inc({ code: String(err.code), level });
      if (level === 'None') return;
      // A Secret's data is never recorded, whatever the policy says.
      if (attrs.resourceRequest && attrs.apiGroup === '' && attrs.resource === 'secrets' && level !== 'Metadata') level = 'Metadata';
      const ev: Record<string, unknown> = {
        kind: 'Event', apiVersion: 'audit.k8s.io/v1', level, auditID: randomUUID(), stage: 'ResponseComplete',
        requestURI: req.url ?? '/', verb: attrs.verb,
        user: who ? { username: who.user, groups: who.groups, ...(who.uid ? { uid: who.uid } : {}) } : {},
        sourceIPs: sourceIPs(req), userAgent: userAgent(req),
      };
      if (attrs.resourceRequest) {
        const kind = KINDS.find((k) => k.group === attrs.apiGroup && k.plural === attrs.resource);
        ev.objectRef = {
          resource: attrs.resource, ...(attrs.namespace ? { namespace: attrs.namespace } : {}), ...(attrs.name ? { name: attrs.name } : {}),
          apiGroup: attrs.apiGroup, ...(kind ? { apiVersion: kind.version } : {}), ...(attrs.subresource ? { subresource: attrs.subresource } : {}),
        };
      }
      const status = err.toStatus();
      ev.responseStatus = { metadata: {}, status: 'Failure', message: err.message, reason: err.reason, code: err.code };
      if (level === 'Request' || level === 'RequestResponse') Object.assign(ev, await requestObject(req));
      if (level === 'RequestResponse') ev.responseObject = status;
      ev.requestReceivedTimestamp = micro(received);
      ev.stageTimestamp = micro(new Date());
      ev.annotations = {
        ...(err.code === 403 ? { 'authorization.k8s.io/decision': 'forbid' } : {}),
        'flotilla.dev/server': this.o.serverId,
      };
      this.enqueue(refusedSubject(err.code, this.o.serverId), Buffer.from(JSON.stringify(ev)), ev.auditID as string);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'could not record a refused request');
    }
  }

  private enqueue(subject: string, data: Uint8Array, id: string): void {
    if (this.stopped) return;
    if (this.queue.length >= MAX_QUEUE) {
      this.dropped.inc();
      return;
    }
    this.queue.push({ subject, data, id });
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length && !this.stopped) {
        try {
          await this.connect();
          const m = this.queue[0];
          await this.js!.publish(m.subject, m.data, { msgID: m.id });
          this.queue.shift();
        } catch (e) {
          // NATS is away: keep the records (bounded), retry shortly.
          this.log.warn({ err: (e as Error).message, queued: this.queue.length }, 'publishing refused-request audit records failed; retrying');
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private connect(): Promise<void> {
    if (this.js && this.nc && !this.nc.isClosed()) return Promise.resolve();
    this.connecting ??= (async () => {
      try {
        // The server URLs may carry a NATS user and password (bin/nats-auth.ts): the same options as the event publisher's.
        const nc = await connect({
          ...natsServerOptions(this.o.servers), name: `flotilla-audit-${this.o.serverId}`, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 2000,
        });
        const jsm = await nc.jetstreamManager();
        const config = {
          name: AUDIT_STREAM, subjects: [`${AUDIT_SUBJECT_PREFIX}.>`], storage: StorageType.File,
          num_replicas: Math.min(3, natsServerOptions(this.o.servers).servers.length), max_age: nanos(this.o.maxAgeMs),
        };
        try {
          await jsm.streams.info(AUDIT_STREAM);
        } catch (e) {
          if (!/stream not found/i.test((e as Error).message)) throw e;
          // Every server may create it at once: one wins, the others find it.
          await jsm.streams.add(config).catch(async (err: Error) => { await jsm.streams.info(AUDIT_STREAM).catch(() => { throw err; }); });
        }
        this.nc = nc;
        this.js = nc.jetstream({ timeout: 5000 });
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.nc?.close().catch(() => {});
  }
}

/** The Request level's requestObject: the decoded body if it fits MAX_AUDIT_BODY and decodes, else nothing. */
async function requestObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (req.method === 'GET' || req.method === 'HEAD' || req.readableEnded) return {};
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_AUDIT_BODY) return {}; // too large to record: the record stays at Metadata's fields
  const chunks: Buffer[] = [];
  let n = 0;
  const read = (async () => {
    for await (const c of req as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > MAX_AUDIT_BODY) return false;
      chunks.push(c);
    }
    return true;
  })();
  const whole = await Promise.race([read, new Promise<boolean>((r) => setTimeout(() => r(false), BODY_WAIT_MS).unref())]);
  if (!whole || !n) return {};
  try {
    return { requestObject: decodeBody(Buffer.concat(chunks), mediaType(req)) };
  } catch {
    return {};
  }
}

/** RFC 3339 with microseconds, as Kubernetes' audit timestamps. */
function micro(d: Date): string {
  return d.toISOString().replace(/Z$/, '000Z');
}
