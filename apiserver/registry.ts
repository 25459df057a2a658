// The storage layer under the HTTP handlers: reads at the requested
// consistency, and writes proposed through Raft (from any member; a follower's
// proposals are forwarded to the leader). Updates follow Kubernetes'
// GuaranteedUpdate: read, mutate, write with the read resourceVersion as a
// precondition, retry on conflict unless the client gave its own.
import { randomUUID } from 'node:crypto';
import type { RaftNode } from '../raft/node.ts';
import { RaftError } from '../raft/types.ts';
import { type AuditVerb, type Command, type RequestAudit, auditFields, encodeCommand, resourceKey } from './command.ts';
import type { GcRequest } from './deletion.ts';
import { ApiError, errors } from './errors.ts';
import type { KindDef, KubeObject } from '../api/schema/types.ts';
import { type ApplyResult, type ObjectStore, type StoredObject, encodeObject } from './store.ts';
import { DEFAULT_SERVICE_RANGES, type ServiceRanges } from './service-allocation.ts';
import { SECRETS_RES, SealError, SecretSealer, secretMetadataOnly } from './encryption.ts';

export type Consistency = { kind: 'linearizable' } | { kind: 'any' } | { kind: 'notOlderThan'; rv: number };

export interface WriteContext {
  user: string;
  verb: AuditVerb;
  /** The requester's groups, source addresses and user agent (absent for the server's own writes). */
  audit?: RequestAudit;
  timeoutMs: number;
  /** Server-side dry run (dryRun=All): everything up to the write, which is skipped. */
  dryRun?: boolean;
}

/** Changes `cur` into the object to store; throws ApiError to refuse. Called again after a conflict. */
export type Mutation = (cur: KubeObject) => KubeObject | Promise<KubeObject>;

const MAX_RETRIES = 16;
const SERVICES = resourceKey('', 'services');

export function nowRfc3339(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export class Registry {
  /** The ranges this member's Service creates and updates allocate from (`--service-cluster-ip-range`, `--service-node-port-range`). */
  serviceRanges: ServiceRanges = DEFAULT_SERVICE_RANGES;
  /** Seals Secrets before they are proposed and opens them on reads (`--encryption-provider-config`; default: plaintext). */
  sealer = new SecretSealer();

  constructor(
    readonly node: RaftNode,
    readonly store: ObjectStore,
    /**
     * DEBUG ONLY, breaks linearizability on purpose: serve "linearizable"
     * reads from local state without ReadIndex. Exists so that the chaos
     * suite can show that its checker catches the bug.
     */
    private readonly unsafeStaleReads = false,
  ) {}

  /** Waits until local state satisfies the consistency asked for; returns the revision to report. */
  async sync(c: Consistency, timeoutMs: number): Promise<number> {
    if (c.kind === 'linearizable') {
      if (!this.unsafeStaleReads) await this.raft(() => this.node.readIndex(timeoutMs));
    } else if (c.kind === 'notOlderThan' && c.rv > this.store.revision) {
      if (c.rv > this.node.status().commit + 1_000_000) {
        throw errors.timeout(`Too large resource version: ${c.rv}, current: ${this.store.revision}`, 1);
      }
      const deadline = Date.now() + Math.min(timeoutMs, 3000);
      while (this.store.revision < c.rv) {
        if (Date.now() > deadline) {
          throw new ApiError(504, 'Timeout', `Too large resource version: ${c.rv}, current: ${this.store.revision}`, {
            causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1,
          });
        }
        await this.raft(() => this.node.readIndex(timeoutMs));
        if (this.store.revision < c.rv) await new Promise((r) => setTimeout(r, 20));
      }
    }
    return this.store.revision;
  }

  /**
   * The object as this member has it, or - when it is missing here - as the
   * cluster has it: a write acknowledged by another member may not be applied
   * here yet, and a write must never miss an earlier acknowledged one. (A
   * stale object that does exist needs no such wait: the resourceVersion
   * precondition of the write catches it at apply time.)
   */
  async lookup(kind: KindDef, ns: string, name: string, timeoutMs: number): Promise<StoredObject | undefined> {
    const res = resourceKey(kind.group, kind.plural);
    const o = this.store.get(res, ns, name);
    if (o) return o;
    await this.sync({ kind: 'linearizable' }, timeoutMs);
    return this.store.get(res, ns, name);
  }

  get(kind: KindDef, ns: string, name: string): StoredObject {
    const o = this.store.get(resourceKey(kind.group, kind.plural), ns, name);
    if (!o) throw errors.notFound(kind.group, kind.plural, name);
    return o;
  }

  async create(kind: KindDef, ns: string, obj: KubeObject, ctx: WriteContext): Promise<StoredObject> {
    const meta = (obj.metadata ??= {});
    meta.uid ??= randomUUID();
    meta.creationTimestamp = nowRfc3339();
    meta.generation = 1;
    if (ns) meta.namespace = ns;
    delete meta.resourceVersion;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    const res = resourceKey(kind.group, kind.plural);
    const cmd: Command = {
      op: 'create', res, ns, name: meta.name!, obj: res === SECRETS_RES ? this.sealer.seal(obj) : encodeObject(obj),
      user: ctx.user, verb: ctx.verb, ...auditFields(ctx.audit), ts: meta.creationTimestamp,
    };
    if (cmd.res === SERVICES) cmd.svc = this.serviceRanges;
    return this.propose(cmd, ctx.timeoutMs);
  }

  /**
   * Read-mutate-write. `clientRv`, when the client sent a resourceVersion,
   * makes a conflict the client's to resolve; otherwise conflicts are retried
   * against fresh state.
   */
  async update(kind: KindDef, ns: string, name: string, mutate: Mutation, ctx: WriteContext, clientRv?: number): Promise<StoredObject> {
    const res = resourceKey(kind.group, kind.plural);
    for (let attempt = 0; ; attempt++) {
      const cur = attempt === 0 ? await this.lookup(kind, ns, name, ctx.timeoutMs) : this.store.get(res, ns, name);
      if (!cur) throw errors.notFound(kind.group, kind.plural, name);
      const curObj = JSON.parse(this.reveal(res, cur).json) as KubeObject;
      const next = await mutate(curObj);
      if (ctx.dryRun) {
        // Everything but the write: the answer is what would be stored (at the current resourceVersion).
        if (clientRv !== undefined && clientRv !== cur.rv) throw errors.conflict(kind.group, kind.plural, name);
        next.metadata = { ...(next.metadata ?? {}), resourceVersion: String(cur.rv) };
        return { json: JSON.stringify(next), rv: cur.rv, uid: cur.uid, labels: next.metadata.labels as Record<string, string> | undefined };
      }
      // The store sets the resourceVersion when it applies the write (the precondition is `pre`): leaving it out lets it write it into this text.
      if (next.metadata) delete next.metadata.resourceVersion;
      const cmd: Command = {
        op: 'update', res, ns, name, obj: res === SECRETS_RES ? this.sealer.seal(next, cur.json) : encodeObject(next), pre: { rv: clientRv ?? cur.rv },
        user: ctx.user, verb: ctx.verb, ...auditFields(ctx.audit), ts: nowRfc3339(),
      };
      if (res === SERVICES) cmd.svc = this.serviceRanges;
      try {
        return await this.propose(cmd, ctx.timeoutMs);
      } catch (e) {
        if (clientRv === undefined && e instanceof ApiError && e.reason === 'Conflict' && attempt < MAX_RETRIES) continue;
        throw e;
      }
    }
  }

  /**
   * A stored object as clients see it: a Secret's sealed data opened (see
   * encryption.ts); every other object as it is. A Secret that does not
   * open is a 500 naming it (as Kubernetes answers a value it cannot
   * transform), never a crash.
   */
  reveal(res: string, obj: StoredObject, opts: { orMetadata?: boolean } = {}): StoredObject {
    if (res !== SECRETS_RES || !obj.json) return obj;
    try {
      return { ...obj, json: this.sealer.open(obj.json) };
    } catch (e) {
      if (!(e instanceof SealError)) throw e;
      // The answer to a DELETE: the object is gone whether or not its data opens; say what went, without it.
      if (opts.orMetadata) return { ...obj, json: secretMetadataOnly(obj.json) };
      const m = (JSON.parse(obj.json) as KubeObject).metadata ?? {};
      throw errors.internal(`Internal error occurred: unable to decrypt Secret "${String(m.namespace ?? '')}/${String(m.name ?? '')}": ${e.message}`);
    }
  }

  async delete(kind: KindDef, ns: string, name: string, opts: { grace: number; rv?: number; uid?: string; force?: boolean; gc?: GcRequest }, ctx: WriteContext): Promise<{ object: StoredObject; deleted: boolean }> {
    const cmd: Command = {
      op: 'delete', res: resourceKey(kind.group, kind.plural), ns, name, pre: { rv: opts.rv, uid: opts.uid }, grace: opts.grace,
      force: opts.force, user: ctx.user, verb: ctx.verb, ...auditFields(ctx.audit), ts: nowRfc3339(),
    };
    if (opts.gc && (opts.gc.policy || opts.gc.defaultOrphan)) cmd.gc = opts.gc;
    const r = await this.proposeRaw(cmd, ctx.timeoutMs);
    return { object: r.object, deleted: !!r.deleted };
  }

  private async propose(cmd: Command, timeoutMs: number): Promise<StoredObject> {
    return (await this.proposeRaw(cmd, timeoutMs)).object;
  }

  private async proposeRaw(cmd: Command, timeoutMs: number): Promise<Extract<ApplyResult, { ok: true }>> {
    let pending: Promise<{ index: number; result: unknown }>;
    try {
      pending = this.node.propose(encodeCommand(cmd), timeoutMs);
    } catch (e) {
      // Refused before anything was handed to Raft (node stopped or failed): not applied, safe to retry.
      throw this.raftError(e);
    }
    let result: unknown;
    try {
      ({ result } = await pending);
    } catch (e) {
      throw proposalError(e);
    }
    const r = result as ApplyResult;
    if (!r.ok) throw r.error;
    return r;
  }

  /** Runs a read-side Raft call (ReadIndex): nothing it does changes state, so every failure is safe to retry (503). */
  private async raft<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.raftError(e);
    }
  }

  private raftError(e: unknown): unknown {
    if (!(e instanceof RaftError)) return e;
    if (e.code === 'too-large') return errors.tooLarge(0);
    return errors.unavailable(`the cluster cannot serve this request right now: ${e.message}`, 1);
  }
}

/**
 * The outcome of a write whose proposal failed. Only a proposal known not to
 * have been applied is a 503 (the client may send it again); when the outcome
 * is unknown - timed out, its leader lost, overtaken by a snapshot, the node
 * stopping - it may still be applied, and the answer is Kubernetes' 504
 * Timeout, which clients do not replay for writes.
 */
export function proposalError(e: unknown): unknown {
  if (!(e instanceof RaftError)) return e;
  if (e.code === 'too-large') return errors.tooLarge(0);
  // Another entry was applied at the proposal's index: it can never be applied (raft/node.ts applyEntry).
  if (e.code === 'superseded') {
    return errors.unavailable(`the write was not applied (${e.message}); it is safe to retry`, 1);
  }
  // No Retry-After: client-go replays any request on a 5xx that carries one.
  return new ApiError(504, 'Timeout', 'the server was unable to return a response in the time allotted, but may still be processing the request', {
    causes: [{ reason: 'UnknownOutcome', message: e.message }],
  });
}
