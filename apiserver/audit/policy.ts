// Kubernetes' audit policy (audit.k8s.io/v1 Policy, `--audit-policy-file`):
// an ordered list of rules, the first that matches a request decides its
// level (None, Metadata, Request, RequestResponse); no match is None. Here it
// chooses the level of the records of refused requests (refused-audit.ts).
// omitStages and omitManagedFields are accepted and ignored: a refused
// request has one stage (ResponseComplete) and no stored object.
import { parseFlagFile } from '../../api/flag-file.ts';
import YAML from 'yaml';
import type { Attributes, UserInfo } from '../auth/rules.ts';

export type AuditLevel = 'None' | 'Metadata' | 'Request' | 'RequestResponse';
export const LEVELS: AuditLevel[] = ['None', 'Metadata', 'Request', 'RequestResponse'];

export interface GroupResources {
  group: string;
  resources: string[];
  resourceNames: string[];
}

export interface AuditPolicyRule {
  level: AuditLevel;
  users: string[];
  userGroups: string[];
  verbs: string[];
  resources: GroupResources[];
  namespaces: string[];
  nonResourceURLs: string[];
}

export interface AuditPolicy {
  rules: AuditPolicyRule[];
}

/** Without --audit-policy-file: every refused request at Metadata (who asked for what, and the answer). */
export const DEFAULT_POLICY: AuditPolicy = {
  rules: [{ level: 'Metadata', users: [], userGroups: [], verbs: [], resources: [], namespaces: [], nonResourceURLs: [] }],
};

export class AuditPolicyError extends Error {}

const RULE_FIELDS = new Set(['level', 'users', 'userGroups', 'verbs', 'resources', 'namespaces', 'nonResourceURLs', 'omitStages', 'omitManagedFields']);
const POLICY_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'rules', 'omitStages', 'omitManagedFields']);
const GR_FIELDS = new Set(['group', 'resources', 'resourceNames']);

export function loadAuditPolicy(file: string): AuditPolicy {
  return parseFlagFile(file, '--audit-policy-file', parseAuditPolicy, (m) => new AuditPolicyError(m));
}

/** Parses and validates a policy; every problem is an error naming where it is. */
export function parseAuditPolicy(text: string): AuditPolicy {
  const doc = YAML.parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length) throw new AuditPolicyError(`not valid YAML: ${doc.errors[0].message}`);
  const p = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (!isObject(p)) throw new AuditPolicyError('expected an audit.k8s.io/v1 Policy object');
  if (p.apiVersion !== 'audit.k8s.io/v1') throw new AuditPolicyError(`apiVersion must be audit.k8s.io/v1 (got ${JSON.stringify(p.apiVersion)})`);
  if (p.kind !== 'Policy') throw new AuditPolicyError(`kind must be Policy (got ${JSON.stringify(p.kind)})`);
  unknownFields(p, POLICY_FIELDS, 'the policy');
  if (!Array.isArray(p.rules) || p.rules.length === 0) throw new AuditPolicyError('a policy needs at least one rule (rules: [...])');
  return { rules: p.rules.map((r, i) => parseRule(r, `rules[${i}]`)) };
}

function parseRule(r: unknown, at: string): AuditPolicyRule {
  if (!isObject(r)) throw new AuditPolicyError(`${at}: expected an object`);
  unknownFields(r, RULE_FIELDS, at);
  if (!LEVELS.includes(r.level as AuditLevel)) throw new AuditPolicyError(`${at}.level: must be one of ${LEVELS.join(', ')} (got ${JSON.stringify(r.level)})`);
  const rule: AuditPolicyRule = {
    level: r.level as AuditLevel,
    users: strings(r.users, `${at}.users`),
    userGroups: strings(r.userGroups, `${at}.userGroups`),
    verbs: strings(r.verbs, `${at}.verbs`),
    namespaces: strings(r.namespaces, `${at}.namespaces`),
    nonResourceURLs: strings(r.nonResourceURLs, `${at}.nonResourceURLs`),
    resources: list(r.resources, `${at}.resources`).map((g, i) => parseGroupResources(g, `${at}.resources[${i}]`)),
  };
  if (rule.nonResourceURLs.length && (rule.resources.length || rule.namespaces.length)) {
    throw new AuditPolicyError(`${at}: rules cannot apply to both regular resources and non-resource URLs`);
  }
  rule.nonResourceURLs.forEach((u, i) => {
    if (u === '*') return;
    if (!u.startsWith('/')) throw new AuditPolicyError(`${at}.nonResourceURLs[${i}]: non-resource URL rules must begin with a '/' character`);
    if (u.slice(0, -1).includes('*')) throw new AuditPolicyError(`${at}.nonResourceURLs[${i}]: non-resource URL rules may only use wildcards ('*') at the end`);
  });
  return rule;
}

function parseGroupResources(g: unknown, at: string): GroupResources {
  if (!isObject(g)) throw new AuditPolicyError(`${at}: expected an object`);
  unknownFields(g, GR_FIELDS, at);
  if (g.group !== undefined && typeof g.group !== 'string') throw new AuditPolicyError(`${at}.group: must be a string`);
  const out = { group: (g.group as string | undefined) ?? '', resources: strings(g.resources, `${at}.resources`), resourceNames: strings(g.resourceNames, `${at}.resourceNames`) };
  if (out.resourceNames.length && (!out.resources.length || out.resources.some((x) => x.includes('*')))) {
    throw new AuditPolicyError(`${at}.resourceNames: resourceNames require resources without wildcards`);
  }
  return out;
}

/** The level of the first rule that matches (Kubernetes' policy checker), None when none does. */
export function auditLevel(policy: AuditPolicy, user: UserInfo | undefined, a: Attributes): AuditLevel {
  for (const r of policy.rules) if (ruleMatches(r, user, a)) return r.level;
  return 'None';
}

export function ruleMatches(r: AuditPolicyRule, user: UserInfo | undefined, a: Attributes): boolean {
  if (r.users.length && (!user || !r.users.includes(user.user))) return false;
  if (r.userGroups.length && (!user || !user.groups.some((g) => r.userGroups.includes(g)))) return false;
  if (r.verbs.length && !r.verbs.includes(a.verb)) return false;
  if (r.namespaces.length || r.resources.length) return resourceMatches(r, a);
  if (r.nonResourceURLs.length) return !a.resourceRequest && r.nonResourceURLs.some((u) => u === '*' || u === a.path || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))));
  return true;
}

function resourceMatches(r: AuditPolicyRule, a: Attributes): boolean {
  if (!a.resourceRequest) return false;
  // "" in namespaces matches cluster-scoped requests.
  if (r.namespaces.length && !r.namespaces.includes(a.namespace)) return false;
  if (!r.resources.length) return true;
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  for (const gr of r.resources) {
    if (gr.group !== a.apiGroup) continue;
    if (!gr.resources.length) return true;
    if (gr.resourceNames.length && !gr.resourceNames.includes(a.name)) continue;
    for (const res of gr.resources) {
      if (res === '*' || res === combined) return true;
      if (a.subresource && res.startsWith('*/') && res.slice(2) === a.subresource) return true;
      if (res.endsWith('/*') && res.slice(0, -2) === a.resource) return true;
    }
  }
  return false;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unknownFields(o: Record<string, unknown>, known: Set<string>, at: string): void {
  for (const k of Object.keys(o)) if (!known.has(k)) throw new AuditPolicyError(`${at}: unknown field "${k}"`);
}

function list(v: unknown, at: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new AuditPolicyError(`${at}: must be a list`);
  return v;
}

function strings(v: unknown, at: string): string[] {
  const l = list(v, at);
  l.forEach((x, i) => { if (typeof x !== 'string') throw new AuditPolicyError(`${at}[${i}]: must be a string`); });
  return l as string[];
}
