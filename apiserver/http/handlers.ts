// The verbs on resources: get, list, create, update, patch, delete,
// deletecollection, and the status, scale and binding subresources.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { kindByResource } from '../../api/kinds/index.ts';
import { ApiError, errors } from '../errors.ts';
import { applyJsonPatch } from '../patch/json-patch.ts';
import { applyMergePatch } from '../patch/json-merge.ts';
import { applyStrategicMergePatch } from '../patch/strategic-merge.ts';
import { conflictStatus, serverSideApply, updateManagedFieldsForUpdate } from '../patch/apply.ts';
import { PatchError } from '../patch/errors.ts';
import { labelSelectorToString } from '../../api/selectors.ts';
import { type Consistency, type Registry, nowRfc3339 } from '../registry.ts';
import { type RequestAudit, resourceKey } from '../command.ts';
import { type GcRequest, type PropagationPolicy, finalizersForDelete, orphansByDefault, policyOf } from '../deletion.ts';
import type { KindDef, KubeObject } from '../../api/schema/types.ts';
import type { StoredObject } from '../store.ts';
import {
  type FieldValidation, apiVersionOf, decodeObject, defaultAndValidate, fieldValidationOf, prepareForCreate, prepareForUpdate,
} from './admission.ts';
import { CONNECT_SUBRESOURCES, type ResourceRequest } from './info.ts';
import { decodeBody, mediaType, readBody, sendJson, sendJsonParts, statusSuccess } from './io.ts';
import { type ListOptions, listOptionsOf, selectObjects } from './list.ts';
import { servePodLog } from './pod-log.ts';
import type { AgentDialer } from './agent-dialer.ts';
import { queryBool } from './query.ts';
import { admitPodPriority } from './priority-admission.ts';
import { admitClaimLimits, admitPodLimits } from './limit-range-admission.ts';
import { admitQuota } from './quota-admission.ts';
import { admitEviction } from './eviction.ts';
import { admitDefaultStorageClass } from './storage-admission.ts';
import { tableFor, wantsTable } from './table.ts';
import { DEFAULT_TOLERATION_SECONDS, type DefaultTolerationSecondsOptions, addDefaultTolerations } from './default-toleration-seconds.ts';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  user: string;
  /** The requester's groups, source addresses and user agent, recorded with every write (request-audit.ts). */
  audit?: RequestAudit;
  warnings: string[];
  timeoutMs: number;
  /** A check of the object about to be written (RBAC's escalate/bind rule), run with the other admission steps. */
  guard?: (r: ResourceRequest, obj: KubeObject) => void;
}

const NAMESPACE_KIND = kindByResource('', 'v1', 'namespaces')!;

/** Namespaces every cluster keeps: NamespaceLifecycle refuses to delete them. */
const UNDELETABLE_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);

const PATCH_TYPES = new Set([
  'application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml',
]);

/** Settings of the mutating admission plugins. */
export interface HandlerAdmissionOptions {
  defaultTolerationSeconds?: DefaultTolerationSecondsOptions;
  /** How pods/log reaches node agents (plain TCP by default). */
  agentDialer?: AgentDialer;
}

export class Handlers {
  constructor(private readonly reg: Registry, private readonly admission: HandlerAdmissionOptions = {}) {}

  async handle(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    if (CONNECT_SUBRESOURCES.has(r.subresource)) return this.connect(r, ctx);
    switch (r.verb) {
      case 'get':
        return this.get(r, ctx);
      case 'list':
        return this.list(r, ctx);
      case 'create':
        if (r.subresource === 'eviction') return this.evict(r, ctx);
        return r.subresource === 'binding' ? this.bind(r, ctx) : this.create(r, ctx);
      case 'update':
        if (r.subresource === 'finalize') return this.update(r, ctx, 'update');
        return this.update(r, ctx);
      case 'patch':
        return this.patch(r, ctx);
      case 'delete':
        return this.delete(r, ctx);
      case 'deletecollection':
        return this.deleteCollection(r, ctx);
      default:
        throw errors.methodNotAllowed();
    }
  }

  // ---------------------------------------------------------------- reads

  consistencyOf(q: URLSearchParams): Consistency {
    const rv = q.get('resourceVersion');
    if (rv === null || rv === '') return { kind: 'linearizable' };
    if (rv === '0') return { kind: 'any' };
    const n = Number(rv);
    if (!Number.isInteger(n) || n < 0) throw errors.badRequest(`invalid resourceVersion "${rv}"`);
    return { kind: 'notOlderThan', rv: n };
  }

  private async get(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    if (r.subresource === 'log') return servePodLog(this.reg, r, ctx, this.admission.agentDialer);
    await this.reg.sync(this.consistencyOf(ctx.query), ctx.timeoutMs);
    const obj = this.reg.get(r.kind, r.namespace, r.name);
    if (r.subresource === 'scale') return sendJson(ctx.res, 200, scaleOf(r.kind, JSON.parse(obj.json)), ctx.req);
    this.respondObject(r, ctx, 200, obj);
  }

  private async list(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    const opts = listOptionsOf(ctx.query);
    // A later page is served at the first page's revision: this member must have applied at least that far.
    const revision = opts.continue
      ? (await this.reg.sync({ kind: 'notOlderThan', rv: opts.continue.rv }, ctx.timeoutMs), opts.continue.rv)
      : await this.reg.sync(this.consistencyOf(ctx.query), ctx.timeoutMs);
    const page = selectObjects(this.reg.store, r.kind, r.namespace, opts, revision);
    const res = resourceKey(r.kind.group, r.kind.plural);
    const items = page.items.map((o) => this.reg.reveal(res, o));
    if (wantsTable(ctx.req)) {
      const objs = items.map((o) => JSON.parse(o.json) as KubeObject);
      const table = tableFor(r.kind, objs, ctx.query, { resourceVersion: String(revision), continue: page.continueToken, remainingItemCount: page.remaining });
      return sendJson(ctx.res, 200, table, ctx.req);
    }
    const meta: Record<string, unknown> = { resourceVersion: String(revision) };
    if (page.continueToken) meta.continue = page.continueToken;
    if (page.remaining !== undefined) meta.remainingItemCount = page.remaining;
    const head = `{"kind":"${r.kind.listKind}","apiVersion":"${apiVersionOf(r.kind)}","metadata":${JSON.stringify(meta)},"items":[`;
    // The stored JSON goes out as it is: no parse and re-serialize per item, encoded straight into the response's buffers.
    sendJsonParts(ctx.res, 200, head, items.map((o) => o.json), ']}', ctx.req);
  }

  // ---------------------------------------------------------------- writes

  private async create(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    if (r.subresource) throw errors.methodNotAllowed();
    const fv = fieldValidationOf(ctx.query);
    const obj = decodeObject(r.kind, await this.body(ctx), fv, ctx.warnings);
    prepareForCreate(r.kind, r, obj);
    this.mutate(r, obj, ctx);
    this.admitCreate(r, obj);
    defaultAndValidate(r.kind, obj);
    await this.admitNamespace(r, obj);
    // Validating admission, last: the quota is charged only for what passed everything else.
    await admitQuota(this.reg, r.kind, obj, { ...this.wctx(ctx, 'create'), dryRun: isDryRun(ctx.query) });
    const manager = fieldManagerOf(ctx);
    updateManagedFieldsForUpdate(undefined, obj, manager, nowRfc3339(), apiVersionOf(r.kind), { schema: r.kind.schema });
    if (isDryRun(ctx.query)) return sendJson(ctx.res, 201, obj, ctx.req);
    const stored = await this.reg.create(r.kind, r.kind.namespaced ? String(obj.metadata!.namespace) : '', obj, this.wctx(ctx, 'create'));
    this.respondObject(r, ctx, 201, stored);
  }

  private async update(r: ResourceRequest, ctx: RequestContext, verb?: 'update'): Promise<void> {
    const fv = fieldValidationOf(ctx.query);
    const body = await this.body(ctx);
    if (r.subresource === 'scale') return this.updateScale(r, ctx, body);
    const next = decodeObject(r.kind, body, fv, ctx.warnings);
    const clientRv = rvOf(next);
    const manager = fieldManagerOf(ctx);
    const stored = await this.reg.update(r.kind, r.namespace, r.name, (cur) => {
      const out = prepareForUpdate(r.kind, r, structuredClone(next), cur);
      this.mutate(r, out, ctx);
      defaultAndValidate(r.kind, out, cur);
      updateManagedFieldsForUpdate(cur, out, manager, nowRfc3339(), apiVersionOf(r.kind), { schema: r.kind.schema, subresource: r.subresource || undefined });
      return out;
    }, this.wctx(ctx, verb ?? (r.subresource === 'status' ? 'update-status' : 'update')), clientRv);
    this.respondObject(r, ctx, 200, stored);
  }

  private async patch(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    const type = mediaType(ctx.req);
    if (!PATCH_TYPES.has(type)) throw errors.unsupportedMediaType(type);
    const patch = decodeBody(await readBody(ctx.req), type);
    const fv = fieldValidationOf(ctx.query);
    const isApply = type === 'application/apply-patch+yaml';
    const manager = ctx.query.get('fieldManager') ?? '';
    if (isApply && !manager) {
      throw errors.invalid('meta.k8s.io', 'PatchOptions', '', [{ reason: 'FieldValueRequired', field: 'fieldManager', message: 'Required value: is required for apply patch' }]);
    }
    const force = queryBool(ctx.query, 'force');
    if (!isApply && force) throw errors.badRequest('force may only be set for apply patches');

    if (r.subresource === 'scale') {
      const found = await this.reg.lookup(r.kind, r.namespace, r.name, ctx.timeoutMs);
      if (!found) throw errors.notFound(r.group, r.kind.plural, r.name);
      const cur = scaleOf(r.kind, JSON.parse(found.json));
      const next = patchWith(type, cur, patch, undefined);
      return this.updateScale(r, ctx, next);
    }
    const verb = r.subresource === 'status' ? 'patch-status' : isApply ? 'apply' : 'patch';
    const apply = async (cur: KubeObject | undefined): Promise<KubeObject> => {
      if (isApply) {
        const applied = decodeObject(r.kind, structuredClone(patch), fv, ctx.warnings, { requireKind: true });
        // Status is ignored when applied to the main resource, as in Kubernetes.
        if (!r.subresource && r.kind.hasStatus) delete applied.status;
        const out = serverSideApply(cur, applied, {
          manager, force, schema: r.kind.schema, apiVersion: apiVersionOf(r.kind), now: nowRfc3339(), kind: r.kind.kind, subresource: r.subresource || undefined,
        });
        if (out.conflicts?.length) {
          const st = conflictStatus(out.conflicts) as { message: string; details?: { causes?: { message: string; field?: string; type?: string }[] } };
          throw new ApiError(409, 'Conflict', st.message, { name: r.name, group: r.group, kind: r.kind.plural, causes: st.details?.causes });
        }
        return out.object as KubeObject;
      }
      const patched = patchWith(type, cur!, patch, r.kind);
      return decodeObject(r.kind, patched, fv, ctx.warnings);
    };

    if (isApply && !(await this.reg.lookup(r.kind, r.namespace, r.name, ctx.timeoutMs))) {
      // Apply creates what does not exist yet.
      const obj = await apply(undefined);
      obj.metadata = { ...(obj.metadata ?? {}), name: r.name };
      prepareForCreate(r.kind, r, obj);
      this.mutate(r, obj, ctx);
      this.admitCreate(r, obj);
      defaultAndValidate(r.kind, obj);
      await this.admitNamespace(r, obj);
      await admitQuota(this.reg, r.kind, obj, { ...this.wctx(ctx, 'apply'), dryRun: isDryRun(ctx.query) });
      if (isDryRun(ctx.query)) return sendJson(ctx.res, 201, obj, ctx.req);
      try {
        const stored = await this.reg.create(r.kind, r.namespace, obj, this.wctx(ctx, 'apply'));
        return this.respondObject(r, ctx, 201, stored);
      } catch (e) {
        if (!(e instanceof ApiError && e.reason === 'AlreadyExists')) throw e;
        // Lost a race with another creator: apply onto what is there now.
      }
    }
    // A resourceVersion in a merge patch is a precondition, as in Kubernetes.
    const patchMeta = !Array.isArray(patch) && patch && typeof patch === 'object' ? (patch as KubeObject).metadata : undefined;
    const clientRv = patchMeta?.resourceVersion ? rvOf({ metadata: patchMeta }) : undefined;
    const stored = await this.reg.update(r.kind, r.namespace, r.name, async (cur) => {
      const patched = await apply(cur);
      const out = prepareForUpdate(r.kind, r, patched, cur);
      this.mutate(r, out, ctx);
      defaultAndValidate(r.kind, out, cur);
      if (!isApply) updateManagedFieldsForUpdate(cur, out, manager || fieldManagerOf(ctx), nowRfc3339(), apiVersionOf(r.kind), { schema: r.kind.schema, subresource: r.subresource || undefined });
      return out;
    }, this.wctx(ctx, verb), clientRv);
    this.respondObject(r, ctx, 200, stored);
  }

  private async updateScale(r: ResourceRequest, ctx: RequestContext, body: unknown): Promise<void> {
    const scale = body as { spec?: { replicas?: unknown }; metadata?: { resourceVersion?: string } };
    const replicas = scale?.spec?.replicas;
    if (!Number.isInteger(replicas) || (replicas as number) < 0) {
      throw errors.invalid('autoscaling', 'Scale', r.name, [{ reason: 'FieldValueInvalid', field: 'spec.replicas', message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0` }]);
    }
    const path = r.kind.scale!.specReplicasPath.replace(/^\./, '').split('.');
    const clientRv = scale.metadata?.resourceVersion ? Number(scale.metadata.resourceVersion) : undefined;
    const stored = await this.reg.update(r.kind, r.namespace, r.name, (cur) => {
      const out = structuredClone(cur);
      setPath(out, path, replicas);
      const next = prepareForUpdate(r.kind, { ...r, subresource: '' }, out, cur);
      defaultAndValidate(r.kind, next, cur);
      return next;
    }, this.wctx(ctx, 'scale'), clientRv);
    sendJson(ctx.res, 200, scaleOf(r.kind, JSON.parse(stored.json)), ctx.req);
  }

  /** POST pods/NAME/eviction: a deletion within the pod's PodDisruptionBudget (eviction.ts). */
  private async evict(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    const body = await this.body(ctx);
    const wctx = this.wctx(ctx, 'delete');
    const { grace, uid } = await admitEviction(this.reg, { namespace: r.namespace, name: r.name, body }, wctx);
    if (wctx.dryRun) return sendJson(ctx.res, 201, statusSuccess(), ctx.req);
    const cur = await this.reg.lookup(r.kind, r.namespace, r.name, ctx.timeoutMs);
    if (!cur) throw errors.notFound('', 'pods', r.name);
    await this.reg.delete(r.kind, r.namespace, r.name, {
      uid, grace: this.graceFor(r.kind, JSON.parse(cur.json) as KubeObject, grace), force: grace === 0,
    }, wctx);
    sendJson(ctx.res, 201, statusSuccess(), ctx.req);
  }

  /** POST pods/NAME/binding: the scheduler assigns a node. */
  private async bind(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    const b = (await this.body(ctx)) as { target?: { kind?: string; name?: string }; metadata?: { name?: string } };
    const node = b?.target?.name;
    if (!node || (b.target?.kind && b.target.kind !== 'Node')) {
      throw errors.invalid('', 'Binding', r.name, [{ reason: 'FieldValueRequired', field: 'target.name', message: 'Required value: a target node name is required' }]);
    }
    await this.reg.update(r.kind, r.namespace, r.name, (cur) => {
      const spec = (cur.spec ?? {}) as Record<string, unknown>;
      if (spec.nodeName) throw errors.conflict('', 'pods', r.name, `pod ${r.name} is already assigned to node "${String(spec.nodeName)}"`);
      if (cur.metadata?.deletionTimestamp) throw errors.conflict('', 'pods', r.name, 'pod is being deleted, cannot be assigned to a host');
      spec.nodeName = node;
      cur.spec = spec;
      const st = (cur.status ?? {}) as Record<string, unknown>;
      const conds = ((st.conditions as Record<string, unknown>[]) ?? []).filter((c) => c.type !== 'PodScheduled');
      conds.push({ type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: nowRfc3339() });
      cur.status = { ...st, conditions: conds };
      return cur;
    }, this.wctx(ctx, 'bind'));
    sendJson(ctx.res, 201, statusSuccess(), ctx.req);
  }

  private async delete(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    const opts = await this.deleteOptions(ctx);
    if (r.kind === NAMESPACE_KIND) return this.deleteNamespace(r, ctx, opts);
    const cur = await this.reg.lookup(r.kind, r.namespace, r.name, ctx.timeoutMs);
    if (!cur) throw errors.notFound(r.group, r.kind.plural, r.name);
    const grace = this.graceFor(r.kind, JSON.parse(cur.json) as KubeObject, opts.grace);
    if (opts.dryRun) return this.respondObject(r, ctx, 200, cur);
    const { object, deleted } = await this.reg.delete(r.kind, r.namespace, r.name, {
      rv: opts.rv, uid: opts.uid, grace, force: opts.grace === 0, gc: this.gcRequest(r, opts.policy),
    }, this.wctx(ctx, 'delete'));
    this.respondObject(r, ctx, deleted ? 200 : 202, object, { orMetadata: true });
  }

  /**
   * DELETE of a Namespace (Kubernetes' namespace registry): the first one
   * marks it Terminating with a deletionTimestamp; it goes once the namespace
   * controller has emptied it and removed the "kubernetes" spec finalizer
   * through namespaces/finalize (the store deletes it then).
   */
  private async deleteNamespace(r: ResourceRequest, ctx: RequestContext, opts: DeleteOpts): Promise<void> {
    if (UNDELETABLE_NAMESPACES.has(r.name)) throw errors.forbidden(`namespaces "${r.name}" is forbidden: this namespace may not be deleted`);
    const cur = await this.reg.lookup(r.kind, '', r.name, ctx.timeoutMs);
    if (!cur) throw errors.notFound('', 'namespaces', r.name);
    if (opts.uid && opts.uid !== cur.uid) {
      throw errors.conflict('', 'namespaces', r.name, `Precondition failed: UID in precondition: ${opts.uid}, UID in object meta: ${cur.uid}`);
    }
    if (opts.dryRun) return this.respondObject(r, ctx, 200, cur);
    const stored = await this.reg.update(r.kind, '', r.name, (obj) => {
      const meta = (obj.metadata ??= {});
      if (opts.uid && opts.uid !== meta.uid) {
        throw errors.conflict('', 'namespaces', r.name, `Precondition failed: UID in precondition: ${opts.uid}, UID in object meta: ${String(meta.uid)}`);
      }
      const fin = finalizersForDelete(meta.finalizers, opts.policy ? { policy: opts.policy } : undefined);
      if (fin.length) meta.finalizers = fin;
      else delete meta.finalizers;
      if (!meta.deletionTimestamp) {
        meta.deletionTimestamp = nowRfc3339();
        meta.deletionGracePeriodSeconds = 0;
        obj.status = { ...((obj.status ?? {}) as object), phase: 'Terminating' };
      }
      return obj;
    }, this.wctx(ctx, 'delete'), opts.rv);
    this.respondObject(r, ctx, 200, stored);
  }

  private gcRequest(r: ResourceRequest, policy: PropagationPolicy | undefined): GcRequest {
    return policy ? { policy } : { defaultOrphan: orphansByDefault(r.group, r.version, r.kind.plural) };
  }

  private async deleteCollection(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    // Kubernetes' namespace registry has no collection delete: each namespace is terminated on its own.
    if (r.kind === NAMESPACE_KIND) throw errors.methodNotAllowed();
    const opts = await this.deleteOptions(ctx);
    const listOpts = listOptionsOf(ctx.query);
    const revision = await this.reg.sync({ kind: 'linearizable' }, ctx.timeoutMs);
    const { items } = selectObjects(this.reg.store, r.kind, r.namespace, { ...listOpts, limit: 0, continue: undefined }, revision);
    const out: string[] = [];
    const res = resourceKey(r.kind.group, r.kind.plural);
    if (opts.dryRun) out.push(...items.map((o) => this.reg.reveal(res, o).json));
    for (const o of opts.dryRun ? [] : items) {
      const obj = JSON.parse(o.json) as KubeObject;
      const ns = String(obj.metadata?.namespace ?? '');
      const name = String(obj.metadata?.name ?? '');
      try {
        const { object } = await this.reg.delete(r.kind, ns, name, {
          grace: this.graceFor(r.kind, obj, opts.grace), force: opts.grace === 0, gc: this.gcRequest(r, opts.policy),
        }, this.wctx(ctx, 'deletecollection'));
        out.push(this.reg.reveal(res, object, { orMetadata: true }).json);
      } catch (e) {
        if (!(e instanceof ApiError && e.reason === 'NotFound')) throw e;
      }
    }
    sendJsonParts(ctx.res, 200, `{"kind":"${r.kind.listKind}","apiVersion":"${apiVersionOf(r.kind)}","metadata":{"resourceVersion":"${this.reg.store.revision}"},"items":[`, out, ']}', ctx.req);
  }

  private async deleteOptions(ctx: RequestContext): Promise<DeleteOpts> {
    let body: Record<string, unknown> = {};
    const raw = await readBody(ctx.req);
    if (raw.length && raw.toString().trim()) {
      const d = decodeBody(raw, mediaType(ctx.req));
      if (!d || typeof d !== 'object') throw errors.badRequest('DeleteOptions must be an object');
      body = d as Record<string, unknown>;
    }
    const q = ctx.query.get('gracePeriodSeconds');
    const graceRaw = q !== null ? Number(q) : body.gracePeriodSeconds;
    if (graceRaw !== undefined && (!Number.isInteger(graceRaw) || (graceRaw as number) < 0)) {
      throw errors.badRequest(`gracePeriodSeconds must be a non-negative integer (got ${JSON.stringify(graceRaw)})`);
    }
    const pre = (body.preconditions ?? {}) as { resourceVersion?: string; uid?: string };
    // DeleteOptions carry dryRun in the body (kubectl sends it there) or the query.
    const bodyDry = body.dryRun;
    if (bodyDry !== undefined && !(Array.isArray(bodyDry) && bodyDry.every((x) => typeof x === 'string'))) throw errors.badRequest('dryRun must be a list of strings');
    const dry = new URLSearchParams(ctx.query);
    for (const x of (bodyDry as string[] | undefined) ?? []) dry.append('dryRun', x);
    // propagationPolicy / orphanDependents: in the body (kubectl) or the query.
    const qOrphan = ctx.query.get('orphanDependents');
    let policy: PropagationPolicy | undefined;
    try {
      policy = policyOf(ctx.query.get('propagationPolicy') ?? body.propagationPolicy,
        qOrphan !== null ? qOrphan === 'true' || (qOrphan === 'false' ? false : qOrphan) : body.orphanDependents);
    } catch (e) {
      throw errors.invalid('meta.k8s.io', 'DeleteOptions', '', [{ reason: 'FieldValueInvalid', field: 'propagationPolicy', message: (e as Error).message }]);
    }
    return {
      grace: graceRaw as number | undefined,
      rv: pre.resourceVersion ? Number(pre.resourceVersion) : undefined,
      uid: pre.uid,
      dryRun: isDryRun(dry),
      policy,
    };
  }

  /** Pods on a node end gracefully (the node agent confirms); everything else goes at once. */
  private graceFor(kind: KindDef, obj: KubeObject, requested: number | undefined): number {
    if (kind.kind !== 'Pod') return 0;
    const spec = (obj.spec ?? {}) as { nodeName?: string; terminationGracePeriodSeconds?: number };
    const phase = (obj.status as { phase?: string } | undefined)?.phase;
    if (!spec.nodeName || phase === 'Succeeded' || phase === 'Failed') return 0;
    return requested ?? spec.terminationGracePeriodSeconds ?? 30;
  }

  // ---------------------------------------------------------------- helpers

  /** Mutating admission of creates and updates of a resource proper (subresources are not admitted, as in Kubernetes). */
  private mutate(r: ResourceRequest, obj: KubeObject, ctx: RequestContext): void {
    if (r.subresource) return;
    ctx.guard?.(r, obj);
    if (r.kind.group === '' && r.kind.plural === 'pods') {
      addDefaultTolerations(obj, this.admission.defaultTolerationSeconds ?? DEFAULT_TOLERATION_SECONDS);
    }
  }

  /** Mutating admission of new objects (Kubernetes' DefaultStorageClass and Priority plugins). */
  private admitCreate(r: ResourceRequest, obj: KubeObject): void {
    if (r.kind.group === '' && r.kind.kind === 'PersistentVolumeClaim') {
      admitDefaultStorageClass(this.reg, obj);
      admitClaimLimits(this.reg, obj);
    }
    if (r.kind.group === '' && r.kind.kind === 'Pod') {
      admitPodPriority(this.reg, obj);
      // LimitRanger sees the pod as decoded and defaulted (requests default to limits first, as in Kubernetes);
      // the QoS class is then worked out again from what it added.
      r.kind.default(obj);
      if (admitPodLimits(this.reg, obj)) delete (obj.status as { qosClass?: string } | undefined)?.qosClass;
    }
  }

  private async admitNamespace(r: ResourceRequest, obj: KubeObject): Promise<void> {
    if (!r.kind.namespaced) return;
    const ns = String(obj.metadata!.namespace);
    const nsObj = await this.reg.lookup(NAMESPACE_KIND, '', ns, 10_000);
    if (!nsObj) throw errors.notFound('', 'namespaces', ns);
    if ((JSON.parse(nsObj.json) as KubeObject).metadata?.deletionTimestamp) {
      throw new ApiError(403, 'Forbidden', `${r.kind.plural} "${String(obj.metadata!.name)}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`, {
        name: String(obj.metadata!.name), group: r.group, kind: r.kind.plural,
        causes: [{ reason: 'NamespaceTerminating', message: `namespace ${ns} is being terminated`, field: 'metadata.namespace' }],
      });
    }
  }

  /**
   * pods/exec, pods/attach, pods/portforward without an upgrade: they are
   * served only over upgraded connections (pod-exec.ts).
   */
  private async connect(r: ResourceRequest, ctx: RequestContext): Promise<void> {
    if (ctx.req.method !== 'GET' && ctx.req.method !== 'POST') throw errors.methodNotAllowed();
    if (!(await this.reg.lookup(r.kind, r.namespace, r.name, ctx.timeoutMs))) throw errors.notFound(r.group, r.kind.plural, r.name);
    const protocol = r.subresource === 'portforward' ? 'WebSocket with SPDY/3.1+portforward.k8s.io, or SPDY/3.1' : 'WebSocket, v5.channel.k8s.io';
    throw errors.badRequest(`${r.subresource} needs an upgraded connection (${protocol})`);
  }

  private async body(ctx: RequestContext): Promise<unknown> {
    return decodeBody(await readBody(ctx.req), mediaType(ctx.req));
  }

  private wctx(ctx: RequestContext, verb: Parameters<Registry['create']>[3]['verb']) {
    return { user: ctx.user, verb, audit: ctx.audit, timeoutMs: ctx.timeoutMs, dryRun: isDryRun(ctx.query) };
  }

  private respondObject(r: ResourceRequest, ctx: RequestContext, code: number, stored: StoredObject, reveal: { orMetadata?: boolean } = {}): void {
    const obj = this.reg.reveal(resourceKey(r.kind.group, r.kind.plural), stored, reveal);
    if (ctx.warnings.length) {
      ctx.res.setHeader('warning', ctx.warnings.map((w) => `299 - ${JSON.stringify(w)}`));
    }
    if (wantsTable(ctx.req)) {
      return sendJson(ctx.res, code, tableFor(r.kind, [JSON.parse(obj.json)], ctx.query, { resourceVersion: String(obj.rv) }), ctx.req);
    }
    sendJson(ctx.res, code, obj.json, ctx.req);
  }
}

/** dryRun=All (the only value Kubernetes knows; anything else is refused). */
function isDryRun(q: URLSearchParams): boolean {
  const v = q.getAll('dryRun');
  for (const x of v) {
    if (x !== 'All') {
      throw errors.invalid('meta.k8s.io', 'UpdateOptions', '', [{ reason: 'FieldValueNotSupported', field: 'dryRun', message: `Unsupported value: "${x}": supported values: "All"` }]);
    }
  }
  return v.length > 0;
}

function fieldManagerOf(ctx: RequestContext): string {
  const m = ctx.query.get('fieldManager');
  if (m) return m;
  const ua = String(ctx.req.headers['user-agent'] ?? 'unknown');
  return ua.split('/')[0] || 'unknown';
}

function rvOf(o: KubeObject): number | undefined {
  const rv = o.metadata?.resourceVersion;
  if (rv === undefined || rv === '') return undefined;
  const n = Number(rv);
  if (!Number.isInteger(n) || n < 0) throw errors.badRequest(`invalid resourceVersion "${String(rv)}"`);
  return n;
}

function patchWith(type: string, cur: object, patch: unknown, kind: KindDef | undefined): object {
  try {
    switch (type) {
      case 'application/json-patch+json':
        if (!Array.isArray(patch)) throw errors.badRequest('a JSON patch must be an array of operations');
        return applyJsonPatch(cur, patch) as object;
      case 'application/merge-patch+json':
        return applyMergePatch(cur, patch) as object;
      case 'application/strategic-merge-patch+json':
        if (!kind) return applyMergePatch(cur, patch) as object;
        return applyStrategicMergePatch(cur, patch as object, kind.schema) as object;
      default:
        throw errors.unsupportedMediaType(type);
    }
  } catch (e) {
    throw asApiError(e);
  }
}

/** Patch library errors keep their code; JSON patch failures read as Kubernetes words them. */
function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof PatchError) {
    if (e.code === 422) {
      return new ApiError(422, 'Invalid', 'the server rejected our request due to an error in our request', { causes: [{ reason: 'FieldValueInvalid', message: e.message }] });
    }
    return new ApiError(e.code, e.reason, e.message);
  }
  return new ApiError(422, 'Invalid', `the patch could not be applied: ${(e as Error).message}`);
}

function getPath(o: unknown, path: string): unknown {
  let cur = o as Record<string, unknown> | undefined;
  for (const p of path.replace(/^\./, '').split('.')) {
    if (!cur || typeof cur !== 'object') return undefined;
    cur = cur[p] as Record<string, unknown> | undefined;
  }
  return cur;
}

function setPath(o: Record<string, unknown>, path: string[], v: unknown): void {
  let cur = o;
  for (const p of path.slice(0, -1)) cur = (cur[p] ??= {}) as Record<string, unknown>;
  cur[path[path.length - 1]] = v;
}

/** Scale's status.selector: the selector in its string form. */
function scaleSelector(obj: KubeObject, path: string | undefined): string | undefined {
  const v = path ? getPath(obj, path) : undefined;
  if (typeof v === 'string') return v;
  const sel = (obj.spec as { selector?: unknown } | undefined)?.selector;
  return sel && typeof sel === 'object' ? labelSelectorToString(sel as never) : undefined;
}

/** The autoscaling/v1 Scale view of a scalable object. */
export function scaleOf(kind: KindDef, obj: KubeObject): Record<string, unknown> {
  const s = kind.scale!;
  const m = obj.metadata ?? {};
  return {
    kind: 'Scale', apiVersion: 'autoscaling/v1',
    metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, creationTimestamp: m.creationTimestamp },
    spec: { replicas: Number(getPath(obj, s.specReplicasPath) ?? 0) },
    status: {
      replicas: Number(getPath(obj, s.statusReplicasPath) ?? 0),
      ...(scaleSelector(obj, s.labelSelectorPath) !== undefined ? { selector: scaleSelector(obj, s.labelSelectorPath) } : {}),
    },
  };
}

interface DeleteOpts {
  grace?: number;
  rv?: number;
  uid?: string;
  dryRun: boolean;
  policy?: PropagationPolicy;
}

export type { FieldValidation, ListOptions };
