// rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

import { atomic, obj, str, strings } from '../schema/dsl.ts';
import { LabelSelector } from '../schema/meta.ts';
import type { Cause, KindDef, Schema } from '../schema/types.ts';
import {
  child, index, invalid, invalidEach, isDNS1123Label, isDNS1123Subdomain, isValidPathSegmentName, notSupported, required,
} from '../schema/validate.ts';
import { type Obj, ageColumn, column, defineKind, dflt, ensure, entries, list, rec, validateLabelSelector } from './common.ts';

export const RBAC_GROUP = 'rbac.authorization.k8s.io';
const R = (n: string) => `io.k8s.api.rbac.v1.${n}`;
const rbac = { group: RBAC_GROUP, version: 'v1', name: isValidPathSegmentName };

const PolicyRule = obj({
  verbs: strings('Verbs is a list of Verbs that apply to ALL the ResourceKinds contained in this rule. \'*\' represents all verbs.'),
  apiGroups: strings('APIGroups is the name of the APIGroup that contains the resources.'),
  resources: strings('Resources is a list of resources this rule applies to. \'*\' represents all resources.'),
  resourceNames: strings(),
  nonResourceURLs: strings(),
}, { name: R('PolicyRule'), required: ['verbs'] });

const rules = atomic(PolicyRule, 'Rules holds all the PolicyRules for this Role');

function validateRules(o: Obj, namespaced: boolean): Cause[] {
  const out: Cause[] = [];
  for (const [r, i] of entries(o.rules)) {
    const p = index('rules', i);
    if (Array.isArray(r.verbs) && !r.verbs.length) out.push(required(child(p, 'verbs'), 'verbs must contain at least one value'));
    const urls = list(r.nonResourceURLs);
    if (urls.length) {
      if (namespaced) out.push(invalid(child(p, 'nonResourceURLs'), urls, 'namespaced rules cannot apply to non-resource URLs'));
      if (list(r.apiGroups).length || list(r.resources).length || list(r.resourceNames).length) {
        out.push(invalid(child(p, 'nonResourceURLs'), urls, 'rules cannot apply to both regular resources and non-resource URLs'));
      }
      continue;
    }
    if (!list(r.apiGroups).length) out.push(required(child(p, 'apiGroups'), 'resource rules must supply at least one api group'));
    if (!list(r.resources).length) out.push(required(child(p, 'resources'), 'resource rules must supply at least one resource'));
  }
  return out;
}

const createdAt = column('Created At', (o) => {
  const t = Date.parse(o.metadata?.creationTimestamp ?? '');
  return Number.isNaN(t) ? '' : new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}, { type: 'date', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' });

function role(kind: 'Role' | 'ClusterRole', extra: Record<string, Schema>): KindDef {
  const namespaced = kind === 'Role';
  return defineKind({
    ...rbac, kind, plural: `${kind.toLowerCase()}s`, namespaced,
    description: `${kind} is a ${namespaced ? 'namespaced, logical grouping of PolicyRules' : 'cluster level, logical grouping of PolicyRules'} that can be referenced as a unit by a ${namespaced ? 'RoleBinding' : 'RoleBinding or ClusterRoleBinding'}.`,
    fields: { rules, ...extra },
    validate(r) {
      const out = validateRules(r, namespaced);
      for (const [s, i] of entries(r.aggregationRule?.clusterRoleSelectors)) {
        out.push(...validateLabelSelector(s, index('aggregationRule.clusterRoleSelectors', i)));
      }
      return out;
    },
    columns: [createdAt],
  });
}

export const roleKind = role('Role', {});
export const clusterRole = role('ClusterRole', {
  aggregationRule: obj({ clusterRoleSelectors: atomic(LabelSelector) }, { name: R('AggregationRule') }),
});

const Subject = obj({ kind: str(), apiGroup: str(), name: str(), namespace: str() },
  { name: R('Subject'), required: ['kind', 'name'], mapType: 'atomic' });
const RoleRef = obj({ apiGroup: str(), kind: str(), name: str() },
  { name: R('RoleRef'), required: ['kind', 'name'], mapType: 'atomic' }); // apiGroup is defaulted

function validateSubjects(subjects: unknown, namespaced: boolean): Cause[] {
  const out: Cause[] = [];
  for (const [s, i] of entries(subjects)) {
    const p = index('subjects', i);
    switch (s.kind) {
      case 'ServiceAccount':
        if (s.name) out.push(...invalidEach(child(p, 'name'), s.name, isDNS1123Subdomain(String(s.name))));
        if (s.apiGroup) out.push(notSupported(child(p, 'apiGroup'), s.apiGroup, ['']));
        if (!namespaced && !s.namespace) out.push(required(child(p, 'namespace')));
        else if (s.namespace) out.push(...invalidEach(child(p, 'namespace'), s.namespace, isDNS1123Label(String(s.namespace))));
        break;
      case 'User': case 'Group':
        if (s.apiGroup !== RBAC_GROUP) out.push(notSupported(child(p, 'apiGroup'), s.apiGroup ?? '', [RBAC_GROUP]));
        break;
      default:
        if (s.kind) out.push(notSupported(child(p, 'kind'), s.kind, ['ServiceAccount', 'User', 'Group']));
    }
  }
  return out;
}

function subjectsOf(b: Obj, kind: string): string {
  return list(b.subjects).filter((s) => s.kind === kind)
    .map((s) => (kind === 'ServiceAccount' ? `${s.namespace ?? ''}/${s.name}` : s.name)).join(', ');
}

function binding(kind: 'RoleBinding' | 'ClusterRoleBinding'): KindDef {
  const namespaced = kind === 'RoleBinding';
  const roleKinds = namespaced ? ['Role', 'ClusterRole'] : ['ClusterRole'];
  return defineKind({
    ...rbac, kind, plural: `${kind.toLowerCase()}s`, namespaced,
    description: `${kind} references a ${namespaced ? 'role, but does not contain it' : 'ClusterRole, but not contain it'}. It adds who information via Subjects and ${namespaced ? 'namespace information by which namespace it exists in' : 'namespace information by which namespace it exists in'}.`,
    fields: { subjects: atomic(Subject, 'Subjects holds references to the objects the role applies to.'), roleRef: RoleRef },
    required: ['roleRef'],
    default(b) {
      dflt(ensure(b, 'roleRef'), 'apiGroup', RBAC_GROUP);
      for (const [s] of entries(b.subjects)) {
        if (s.kind === 'User' || s.kind === 'Group') dflt(s, 'apiGroup', RBAC_GROUP);
      }
    },
    validate(b, old) {
      const ref = rec(b.roleRef) ?? {};
      const out: Cause[] = [];
      if (ref.apiGroup && ref.apiGroup !== RBAC_GROUP) out.push(notSupported('roleRef.apiGroup', ref.apiGroup, [RBAC_GROUP]));
      if (ref.kind && !roleKinds.includes(ref.kind)) out.push(notSupported('roleRef.kind', ref.kind, roleKinds));
      if (ref.name) out.push(...invalidEach('roleRef.name', ref.name, isValidPathSegmentName(String(ref.name))));
      out.push(...validateSubjects(b.subjects, namespaced));
      const oldRef = rec(old?.roleRef);
      if (oldRef && (oldRef.apiGroup !== ref.apiGroup || oldRef.kind !== ref.kind || oldRef.name !== ref.name)) {
        out.push(invalid('roleRef', ref, 'cannot change roleRef'));
      }
      return out;
    },
    columns: [
      column('Role', (b) => `${b.roleRef?.kind ?? ''}/${b.roleRef?.name ?? ''}`, { description: 'RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.' }),
      ageColumn,
      column('Users', (b) => subjectsOf(b, 'User'), { wide: true, description: `Users in the ${kind.charAt(0).toLowerCase()}${kind.slice(1)}` }),
      column('Groups', (b) => subjectsOf(b, 'Group'), { wide: true, description: `Groups in the ${kind.charAt(0).toLowerCase()}${kind.slice(1)}` }),
      column('ServiceAccounts', (b) => subjectsOf(b, 'ServiceAccount'), { wide: true, description: `ServiceAccounts in the ${kind.charAt(0).toLowerCase()}${kind.slice(1)}` }),
    ],
  });
}

export const roleBinding = binding('RoleBinding');
export const clusterRoleBinding = binding('ClusterRoleBinding');

export const RBAC_KINDS: KindDef[] = [roleKind, clusterRole, roleBinding, clusterRoleBinding];
