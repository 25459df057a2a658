// Decoding, validation and defaulting of request objects, and the rules that
// carry system-owned fields across an update, as Kubernetes' registry
// strategies do (PrepareForCreate/PrepareForUpdate, Validate, Canonicalize).
import { randomUUID } from 'node:crypto';
import { errors, ApiError } from '../errors.ts';
import { apiVersionOf, prepareForUpdate as kindPrepareForUpdate } from '../../api/kinds/index.ts';
import { validateSchema } from '../../api/schema/validate.ts';
import type { Cause, KindDef, KubeObject } from '../../api/schema/types.ts';
import { NAMESPACE_FINALIZER } from '../../api/finalizers.ts';
import type { ResourceRequest } from './info.ts';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export function fieldValidationOf(q: URLSearchParams): FieldValidation {
  const v = q.get('fieldValidation');
  if (!v) return 'Strict';
  if (v === 'Strict' || v === 'Warn' || v === 'Ignore') return v;
  throw errors.badRequest(`fieldValidation must be one of Strict, Warn, Ignore (got "${v}")`);
}

export { apiVersionOf };

/**
 * Checks that `body` is an object of `kind` (apiVersion and kind as the path
 * says, when given) and that its fields are known and well typed. Unknown
 * fields are an error (Strict, the default), or are dropped with a warning.
 */
export function decodeObject(kind: KindDef, body: unknown, fv: FieldValidation, warnings: string[], opts: { requireKind?: boolean; expectKind?: string; expectApiVersion?: string } = {}): KubeObject {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw errors.badRequest(`the body must be a JSON object of kind ${kind.kind}`);
  }
  const obj = body as KubeObject;
  const wantKind = opts.expectKind ?? kind.kind;
  const wantVersion = opts.expectApiVersion ?? apiVersionOf(kind);
  if (obj.kind === undefined || obj.kind === '') {
    if (opts.requireKind) throw errors.badRequest(`Object 'Kind' is missing in '${JSON.stringify(obj).slice(0, 200)}'`);
    obj.kind = wantKind;
  } else if (obj.kind !== wantKind) {
    throw errors.badRequest(`the kind in the data (${String(obj.kind)}) does not match the expected kind (${wantKind})`);
  }
  if (obj.apiVersion === undefined || obj.apiVersion === '') {
    obj.apiVersion = wantVersion;
  } else if (obj.apiVersion !== wantVersion) {
    throw errors.badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${wantVersion})`);
  }
  const causes = validateSchema(kind.schema, obj);
  const unknown = causes.filter((c) => c.reason === 'FieldValueUnknown');
  const typeErrors = causes.filter((c) => c.reason === 'FieldValueTypeInvalid');
  if (typeErrors.length) {
    throw new ApiError(400, 'BadRequest', `${kind.kind} in version "${kind.version}" cannot be handled as a ${kind.kind}: ${typeErrors.map((c) => c.message).join(', ')}`, {
      causes: typeErrors.map((c) => ({ reason: c.reason, message: c.message, field: c.field })),
    });
  }
  if (unknown.length) {
    if (fv === 'Strict') {
      throw new ApiError(400, 'BadRequest', `strict decoding error: ${unknown.map((c) => `unknown field "${c.field}"`).join(', ')}`, {
        causes: unknown.map((c) => ({ reason: c.reason, message: c.message, field: c.field })),
      });
    }
    for (const c of unknown) {
      deletePath(obj, c.field);
      if (fv === 'Warn') warnings.push(`unknown field "${c.field}"`);
    }
  }
  return obj;
}

/** Defaulting and semantic validation; 422 Invalid with every cause. */
export function defaultAndValidate(kind: KindDef, obj: KubeObject, old?: KubeObject): void {
  kind.default(obj);
  const causes: Cause[] = validateSchema(kind.schema, obj).filter((c) => c.reason !== 'FieldValueUnknown');
  causes.push(...kind.validate(obj, old));
  if (causes.length) throw errors.invalid(kind.group, kind.kind, String(obj.metadata?.name ?? ''), causes);
}

function specOf(o: KubeObject): string {
  const { metadata: _m, status: _s, ...rest } = o;
  return JSON.stringify(rest);
}

/** What a create may not set, and what it gets (PrepareForCreate). */
export function prepareForCreate(kind: KindDef, req: ResourceRequest, obj: KubeObject): void {
  const meta = (obj.metadata ??= {});
  if (kind.namespaced) {
    if (meta.namespace && req.namespace && meta.namespace !== req.namespace) {
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    meta.namespace = req.namespace || meta.namespace || 'default';
  } else {
    delete meta.namespace;
  }
  if (!meta.name && meta.generateName) {
    meta.name = `${meta.generateName}${randomSuffix()}`;
  }
  if (!meta.name) {
    throw errors.invalid(kind.group, kind.kind, '', [{ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' }]);
  }
  // Before defaulting: some defaults derive from the uid (a Job's selector).
  meta.uid = randomUUID();
  if (kind.hasStatus && kind.kind !== 'Pod' && kind.kind !== 'Node' && kind.kind !== 'PersistentVolume' && kind.kind !== 'PersistentVolumeClaim') {
    // Controllers own status: a create starts with an empty one.
    obj.status = {};
  }
  if (kind.kind === 'Pod') {
    const st = (obj.status ?? {}) as Record<string, unknown>;
    obj.status = { ...st, phase: st.phase ?? 'Pending' };
  }
  if (kind.kind === 'Namespace' && !kind.group) namespacePrepareForCreate(obj);
}


/**
 * A new Namespace is Active and carries the "kubernetes" spec finalizer
 * (Kubernetes adds it here rather than in defaulting, because it may be
 * removed - through namespaces/finalize - during the namespace's life).
 */
export function namespacePrepareForCreate(obj: KubeObject): void {
  const spec = ((obj.spec ??= {}) as { finalizers?: string[] });
  const fin = Array.isArray(spec.finalizers) ? spec.finalizers : [];
  if (!fin.includes(NAMESPACE_FINALIZER)) fin.push(NAMESPACE_FINALIZER);
  spec.finalizers = fin;
  obj.status = { phase: 'Active' };
}

/**
 * Carries system fields from `cur` into `next` for an update of the main
 * resource or of its status subresource (PrepareForUpdate), bumping
 * metadata.generation when anything outside metadata and status changed.
 */
export function prepareForUpdate(kind: KindDef, req: ResourceRequest, next: KubeObject, cur: KubeObject): KubeObject {
  const curMeta = cur.metadata ?? {};
  let out: KubeObject;
  if (req.subresource === 'status') {
    // Only status changes through /status (and labels/annotations stay as they are).
    out = { ...cur, status: next.status };
    out.metadata = { ...curMeta };
  } else if (req.subresource === 'finalize') {
    // namespaces/finalize changes spec.finalizers and nothing else.
    const finalizers = (next.spec as { finalizers?: unknown } | undefined)?.finalizers;
    out = { ...cur, spec: { ...((cur.spec ?? {}) as object), finalizers: Array.isArray(finalizers) ? finalizers : [] } };
    out.metadata = { ...curMeta };
  } else {
    out = next;
    // Kind-specific carry-over (e.g. a Service keeps its allocated clusterIP when the update omits it).
    kindPrepareForUpdate(kind, out, cur);
    const meta = (out.metadata ??= {});
    if (meta.name !== undefined && meta.name !== curMeta.name) {
      throw errors.badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${String(curMeta.name)})`);
    }
    if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== curMeta.namespace) {
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    if (meta.uid && meta.uid !== curMeta.uid) {
      throw errors.conflict(kind.group, kind.plural, String(curMeta.name), `Precondition failed: UID in precondition: ${meta.uid}, UID in object meta: ${String(curMeta.uid)}`);
    }
    meta.name = curMeta.name;
    if (curMeta.namespace) meta.namespace = curMeta.namespace;
    meta.uid = curMeta.uid;
    meta.creationTimestamp = curMeta.creationTimestamp;
    if (curMeta.deletionTimestamp) {
      meta.deletionTimestamp = curMeta.deletionTimestamp;
      meta.deletionGracePeriodSeconds = curMeta.deletionGracePeriodSeconds;
      const had = new Set(curMeta.finalizers ?? []);
      const added = (meta.finalizers ?? []).filter((f) => !had.has(f));
      if (added.length) {
        throw errors.invalid(kind.group, kind.kind, String(curMeta.name), [{
          reason: 'FieldValueForbidden', field: 'metadata.finalizers', message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`,
        }]);
      }
    } else {
      delete meta.deletionTimestamp;
      delete meta.deletionGracePeriodSeconds;
    }
    if (kind.hasStatus) out.status = cur.status;
    if (kind.kind === 'Namespace' && !kind.group) {
      // Only namespaces/finalize changes a namespace's spec.finalizers.
      const curFin = (cur.spec as { finalizers?: unknown } | undefined)?.finalizers;
      const spec = ((out.spec ??= {}) as Record<string, unknown>);
      if (curFin === undefined) delete spec.finalizers;
      else spec.finalizers = curFin;
    }
  }
  const meta = out.metadata!;
  meta.generation = Number(curMeta.generation ?? 1);
  if (req.subresource !== 'status' && req.subresource !== 'finalize' && specOf(out) !== specOf(cur)) meta.generation += 1;
  delete meta.resourceVersion;
  return out;
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}

/** Deletes a field named like "spec.containers[0].foo" (as validation reports it). */
export function deletePath(obj: unknown, path: string): void {
  const parts: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) parts.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  let cur = obj as Record<string | number, unknown> | undefined;
  for (let i = 0; i < parts.length - 1; i++) {
    cur = cur?.[parts[i]] as Record<string | number, unknown> | undefined;
    if (!cur || typeof cur !== 'object') return;
  }
  if (cur && typeof cur === 'object') delete cur[parts[parts.length - 1]];
}
