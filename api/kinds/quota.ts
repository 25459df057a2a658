// v1 ResourceQuota (the hard limits of a namespace and what is used of them)
// and LimitRange (per-container, per-pod and per-claim bounds and defaults).

import { atomic, obj, oneOf, str, strings } from '../schema/dsl.ts';
import type { Cause, KindDef } from '../schema/types.ts';
import { child, index, invalid, invalidEach, isQualifiedName, notSupported } from '../schema/validate.ts';
import { type Obj, ageColumn, column, defineKind, entries, quantityValue, rec } from './common.ts';
import { ResourceList } from './pod.ts';

const C = (n: string) => `io.k8s.api.core.v1.${n}`;

export const QUOTA_SCOPES = ['BestEffort', 'CrossNamespacePodAffinity', 'NotBestEffort', 'NotTerminating', 'PriorityClass', 'Terminating'] as const;

const ScopedResourceSelectorRequirement = obj({
  scopeName: oneOf(...QUOTA_SCOPES), operator: oneOf('DoesNotExist', 'Exists', 'In', 'NotIn'), values: strings(),
}, { name: C('ScopedResourceSelectorRequirement'), required: ['scopeName', 'operator'] });

/** Quota resource names are qualified names ("pods", "requests.cpu", "count/deployments.apps"). */
function validateResourceList(rl: unknown, path: string): Cause[] {
  const out: Cause[] = [];
  for (const [k, v] of Object.entries(rec(rl) ?? {})) {
    const p = index(path, k);
    // count/<resource>.<group> names contain a slash; the part after it must be a qualified name.
    const name = k.startsWith('count/') ? k.slice('count/'.length) : k;
    out.push(...invalidEach(p, k, isQualifiedName(name)));
    const q = quantityValue(v);
    if (q < 0) out.push(invalid(p, v, 'must be greater than or equal to 0'));
  }
  return out;
}

/** "resource: used/hard" for each hard limit whose name starts (or not) with "limits." (printResourceQuota). */
function usage(rq: Obj, limits: boolean): string {
  const hard = rec(rq.status?.hard) ?? rec(rq.spec?.hard) ?? {};
  const used = rec(rq.status?.used) ?? {};
  return Object.keys(hard).sort()
    .filter((k) => k.startsWith('limits.') === limits)
    .map((k) => `${k}: ${used[k] ?? '0'}/${hard[k]}`)
    .join(', ');
}

export const resourceQuota = defineKind({
  group: '', version: 'v1', kind: 'ResourceQuota', plural: 'resourcequotas', shortNames: ['quota'], subresources: ['status'],
  description: 'ResourceQuota sets aggregate quota restrictions enforced per namespace',
  fields: {
    spec: obj({
      hard: ResourceList,
      scopes: strings('A collection of filters that must match each object tracked by a quota.'),
      scopeSelector: obj({ matchExpressions: atomic(ScopedResourceSelectorRequirement) }, { name: C('ScopeSelector'), mapType: 'atomic' }),
    }, { name: C('ResourceQuotaSpec') }),
    status: obj({ hard: ResourceList, used: ResourceList }, { name: C('ResourceQuotaStatus') }),
  },
  validate(rq) {
    const out = [...validateResourceList(rq.spec?.hard, 'spec.hard'), ...validateResourceList(rq.status?.hard, 'status.hard'), ...validateResourceList(rq.status?.used, 'status.used')];
    for (const [s, i] of (Array.isArray(rq.spec?.scopes) ? rq.spec.scopes : []).map((s: unknown, i: number) => [s, i] as const)) {
      if (!QUOTA_SCOPES.includes(s as never)) out.push(notSupported(index('spec.scopes', i), s, QUOTA_SCOPES));
    }
    for (const [req, i] of entries(rq.spec?.scopeSelector?.matchExpressions)) {
      const p = index('spec.scopeSelector.matchExpressions', i);
      const values = Array.isArray(req.values) ? req.values : [];
      if ((req.operator === 'In' || req.operator === 'NotIn') && !values.length) out.push(invalid(child(p, 'values'), values, 'must be at least one value when `operator` is \'In\' or \'NotIn\' for scope selector'));
      if ((req.operator === 'Exists' || req.operator === 'DoesNotExist') && values.length) out.push(invalid(child(p, 'values'), values, 'must be no value when `operator` is \'Exist\' or \'DoesNotExist\' for scope selector'));
    }
    return out;
  },
  columns: [
    ageColumn,
    column('Request', (rq) => usage(rq, false), { description: 'Request represents a minimum amount of cpu/memory that a container may consume.' }),
    column('Limit', (rq) => usage(rq, true), { description: 'Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.' }),
  ],
});

export const LIMIT_TYPES = ['Container', 'Pod', 'PersistentVolumeClaim'] as const;

const LimitRangeItem = obj({
  type: oneOf(...LIMIT_TYPES),
  max: ResourceList, min: ResourceList, default: ResourceList, defaultRequest: ResourceList, maxLimitRequestRatio: ResourceList,
}, { name: C('LimitRangeItem'), required: ['type'] });

/** ValidateLimitRange: min ≤ defaultRequest ≤ default ≤ max per resource, defaults only for containers, ratio ≥ 1. */
function validateLimitRange(lr: Obj): Cause[] {
  const out: Cause[] = [];
  const seenTypes = new Set<string>();
  for (const [item, i] of entries(lr.spec?.limits)) {
    const p = index('spec.limits', i);
    const type = String(item.type ?? '');
    if (seenTypes.has(type)) out.push({ reason: 'FieldValueDuplicate', field: child(p, 'type'), message: `Duplicate value: "${type}"` });
    seenTypes.add(type);
    for (const f of ['max', 'min', 'default', 'defaultRequest', 'maxLimitRequestRatio']) out.push(...validateResourceList(item[f], child(p, f)));
    if (type !== 'Container') {
      if (rec(item.default) && Object.keys(item.default).length) out.push(invalid(child(p, 'default'), item.default, 'may not be specified when `type` is not \'Container\''));
      if (rec(item.defaultRequest) && Object.keys(item.defaultRequest).length) out.push(invalid(child(p, 'defaultRequest'), item.defaultRequest, 'may not be specified when `type` is not \'Container\''));
    }
    const names = new Set([...Object.keys(rec(item.max) ?? {}), ...Object.keys(rec(item.min) ?? {}), ...Object.keys(rec(item.default) ?? {}), ...Object.keys(rec(item.defaultRequest) ?? {})]);
    for (const k of names) {
      const q = (f: string) => (rec(item[f])?.[k] !== undefined ? quantityValue(rec(item[f])![k]) : undefined);
      const [min, max, dflt, dreq] = [q('min'), q('max'), q('default'), q('defaultRequest')];
      const v = (f: string) => rec(item[f])![k];
      if (min !== undefined && max !== undefined && min > max) out.push(invalid(index(child(p, 'min'), k), v('min'), `min value ${v('min')} is greater than max value ${v('max')}`));
      if (dreq !== undefined && max !== undefined && dreq > max) out.push(invalid(index(child(p, 'defaultRequest'), k), v('defaultRequest'), `default request value ${v('defaultRequest')} is greater than max value ${v('max')}`));
      if (dreq !== undefined && min !== undefined && min > dreq) out.push(invalid(index(child(p, 'defaultRequest'), k), v('defaultRequest'), `min value ${v('min')} is greater than default request value ${v('defaultRequest')}`));
      if (dflt !== undefined && max !== undefined && dflt > max) out.push(invalid(index(child(p, 'default'), k), v('default'), `default value ${v('default')} is greater than max value ${v('max')}`));
      if (dflt !== undefined && min !== undefined && min > dflt) out.push(invalid(index(child(p, 'default'), k), v('default'), `min value ${v('min')} is greater than default value ${v('default')}`));
      if (dreq !== undefined && dflt !== undefined && dreq > dflt) out.push(invalid(index(child(p, 'defaultRequest'), k), v('defaultRequest'), `default request value ${v('defaultRequest')} is greater than default limit value ${v('default')}`));
    }
    for (const [k, r] of Object.entries(rec(item.maxLimitRequestRatio) ?? {})) {
      if (quantityValue(r) < 1) out.push(invalid(index(child(p, 'maxLimitRequestRatio'), k), r, 'ratio must be greater than or equal to 1'));
    }
  }
  return out;
}

export const limitRange = defineKind({
  group: '', version: 'v1', kind: 'LimitRange', plural: 'limitranges', shortNames: ['limits'],
  description: 'LimitRange sets resource usage limits for each kind of resource in a Namespace.',
  fields: { spec: obj({ limits: atomic(LimitRangeItem, 'Limits is the list of LimitRangeItem objects that are enforced.') }, { name: C('LimitRangeSpec'), required: ['limits'] }) },
  default(lr) {
    // SetDefaults_LimitRangeItem: for containers, a missing default limit is the max, a missing default request the default limit, else the min.
    for (const [item] of entries(lr.spec?.limits)) {
      if (item.type !== 'Container') continue;
      const dflt = (item.default = rec(item.default) ?? {});
      const dreq = (item.defaultRequest = rec(item.defaultRequest) ?? {});
      for (const [k, v] of Object.entries(rec(item.max) ?? {})) if (dflt[k] === undefined) dflt[k] = v;
      for (const [k, v] of Object.entries(dflt)) if (dreq[k] === undefined) dreq[k] = v;
      for (const [k, v] of Object.entries(rec(item.min) ?? {})) if (dreq[k] === undefined) dreq[k] = v;
    }
  },
  validate: validateLimitRange,
  columns: [column('Created At', (o) => String(o.metadata?.creationTimestamp ?? ''), { description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' })],
});

export const QUOTA_KINDS: KindDef[] = [resourceQuota, limitRange];
