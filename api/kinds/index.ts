// The kind registry: every API kind the server serves, and lookups by
// resource, by group/version/kind and by the names kubectl accepts.

import { Scale } from '../schema/meta.ts';
import type { Cause, KindDef, KubeObject } from '../schema/types.ts';
import { validateSchema } from '../schema/validate.ts';
import { APPS_KINDS } from './apps.ts';
import { AUTOSCALING_KINDS } from './autoscaling.ts';
import { BATCH_KINDS } from './batch.ts';
import { type Obj, rec, selectorString } from './common.ts';
import { COORDINATION_KINDS } from './coordination.ts';
import { BINDING_SCHEMA, CORE_KINDS, servicePrepareForUpdate, validateBinding } from './core.ts';
import { DISCOVERY_KINDS } from './discovery.ts';
import { NETWORKING_KINDS } from './networking.ts';
import { RBAC_KINDS } from './rbac.ts';
import { POLICY_KINDS } from './policy.ts';
import { QUOTA_KINDS } from './quota.ts';
import { SCHEDULING_KINDS } from './scheduling.ts';
import { STORAGE_KINDS } from './storage.ts';

export const KINDS: KindDef[] = [...CORE_KINDS, ...APPS_KINDS, ...BATCH_KINDS, ...COORDINATION_KINDS, ...AUTOSCALING_KINDS, ...RBAC_KINDS, ...DISCOVERY_KINDS,
  ...STORAGE_KINDS, ...POLICY_KINDS, ...QUOTA_KINDS, ...NETWORKING_KINDS, ...SCHEDULING_KINDS];

/** The kind served at /api(s)/{group}/{version}/{plural}. */
export function kindByResource(group: string, version: string, plural: string): KindDef | undefined {
  return KINDS.find((k) => k.group === group && k.version === version && k.plural === plural);
}

/** The kind of an object with this group, version and kind. */
export function kindByGVK(group: string, version: string, kind: string): KindDef | undefined {
  return KINDS.find((k) => k.group === group && k.version === version && k.kind === kind);
}

/** The kind of an object by its apiVersion ("apps/v1", "v1") and kind. */
export function kindByApiVersion(apiVersion: string, kind: string): KindDef | undefined {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? kindByGVK('', apiVersion, kind) : kindByGVK(apiVersion.slice(0, slash), apiVersion.slice(slash + 1), kind);
}

/**
 * The kind a CLI name designates, ignoring case: a plural, singular, short
 * name or kind ("po", "pods", "pod", "Pod", "deploy"), optionally qualified by
 * group or version.group ("deployments.apps", "deployments.v1.apps", "pods.v1").
 */
export function kindByName(name: string): KindDef | undefined {
  const n = name.trim().toLowerCase();
  const dot = n.indexOf('.');
  const resource = dot < 0 ? n : n.slice(0, dot);
  const qualifier = dot < 0 ? undefined : n.slice(dot + 1);
  const named = KINDS.filter((k) => k.plural === resource || k.singular === resource || k.kind.toLowerCase() === resource || k.shortNames.includes(resource));
  if (qualifier === undefined) return named[0];
  return named.find((k) => k.group === qualifier || `${k.version}.${k.group}` === qualifier || (k.group === '' && k.version === qualifier));
}

/** "apps/v1" or "v1". */
export function apiVersionOf(k: Pick<KindDef, 'group' | 'version'>): string {
  return k.group ? `${k.group}/${k.version}` : k.version;
}

/**
 * Schema validation plus the kind's semantic validation (`old` on update), as
 * one list. Call after `kind.default(obj)`. Unknown fields come back as
 * FieldValueUnknown and type errors as FieldValueTypeInvalid (Kubernetes
 * answers those with 400 BadRequest, everything else with 422 Invalid).
 */
export function validateObject(kind: KindDef, obj: KubeObject, old?: KubeObject): Cause[] {
  const out = validateSchema(kind.schema, obj);
  const seen = new Set(out.map((c) => `${c.reason}\0${c.field}\0${c.message}`));
  for (const c of kind.validate(obj, old)) {
    const id = `${c.reason}\0${c.field}\0${c.message}`;
    if (!seen.has(id)) out.push(c);
    seen.add(id);
  }
  return out;
}

/**
 * Kind-specific carry-over from the stored object into an update before
 * defaulting (the registry's PrepareForUpdate): Services keep their allocated
 * cluster IPs and node ports when the request leaves them unset.
 */
export function prepareForUpdate(kind: KindDef, obj: KubeObject, old: KubeObject): void {
  if (kind.group === '' && kind.kind === 'Service') servicePrepareForUpdate(obj as Obj, old as Obj);
}

/** The autoscaling/v1 Scale of an object whose kind has a scale subresource. */
export function scaleOf(kind: KindDef, obj: KubeObject): KubeObject | undefined {
  if (!kind.scale) return undefined;
  const o = obj as Obj;
  const m = rec(o.metadata) ?? {};
  const at = (path: string) => path.split('.').filter(Boolean).reduce<unknown>((v, k) => rec(v)?.[k], o);
  const sel = kind.scale.labelSelectorPath ? at(kind.scale.labelSelectorPath) : undefined;
  const metadata: Obj = {};
  for (const f of ['name', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp']) if (m[f] !== undefined) metadata[f] = m[f];
  return {
    apiVersion: 'autoscaling/v1',
    kind: 'Scale',
    metadata,
    spec: { replicas: Number(at(kind.scale.specReplicasPath) ?? 0) },
    status: {
      replicas: Number(at(kind.scale.statusReplicasPath) ?? 0),
      // Built-in workloads have no status.selector: the scale selector is spec.selector in string form.
      selector: typeof sel === 'string' ? sel : selectorString(o.spec?.selector),
    },
  };
}

/** The autoscaling/v1 Scale schema (body of PUT .../scale). */
export const SCALE_SCHEMA = Scale;

export { BINDING_SCHEMA, validateBinding };
export { generateJobSelector, JOB_LABELS } from './batch.ts';
export {
  formatLabelSelector, formatLabels, humanDuration, selectorEmpty, selectorMatches, selectorString, since,
} from './common.ts';
export { defaultPVC } from './core.ts';
export { podQOSClass, podSummary } from './pod.ts';
