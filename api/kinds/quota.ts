// v1 ResourceQuota: the hard limits of a namespace and what is used of them.

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

export const QUOTA_KINDS: KindDef[] = [resourceQuota];
