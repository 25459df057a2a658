// The create-only review kinds: authorization.k8s.io/v1 SelfSubjectAccessReview,
// SubjectAccessReview, SelfSubjectRulesReview and authentication.k8s.io/v1
// SelfSubjectReview. Nothing is stored; the answer is the request with a
// status (what `kubectl auth can-i` and `kubectl auth whoami` read).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors } from '../errors.ts';
import { readBody, sendJson } from '../http/io.ts';
import type { Auth } from './auth.ts';
import type { Attributes, PolicyRule, UserInfo } from './rules.ts';

const AUTHZ = 'authorization.k8s.io';
const AUTHN = 'authentication.k8s.io';
export const REVIEW_PATHS: Record<string, { group: string; kind: string }> = {
  [`/apis/${AUTHZ}/v1/selfsubjectaccessreviews`]: { group: AUTHZ, kind: 'SelfSubjectAccessReview' },
  [`/apis/${AUTHZ}/v1/subjectaccessreviews`]: { group: AUTHZ, kind: 'SubjectAccessReview' },
  [`/apis/${AUTHZ}/v1/selfsubjectrulesreviews`]: { group: AUTHZ, kind: 'SelfSubjectRulesReview' },
  [`/apis/${AUTHN}/v1/selfsubjectreviews`]: { group: AUTHN, kind: 'SelfSubjectReview' },
};

export function isReviewPath(pathname: string): boolean {
  return pathname.replace(/\/+$/, '') in REVIEW_PATHS;
}

interface Spec {
  resourceAttributes?: { namespace?: string; verb?: string; group?: string; resource?: string; subresource?: string; name?: string };
  nonResourceAttributes?: { path?: string; verb?: string };
  user?: string; groups?: string[]; uid?: string; extra?: Record<string, string[]>;
  namespace?: string;
}

function attributesOf(spec: Spec): Attributes {
  const ra = spec.resourceAttributes;
  const nra = spec.nonResourceAttributes;
  if (ra && nra) throw errors.badRequest('spec.resourceAttributes and spec.nonResourceAttributes are mutually exclusive');
  if (ra) {
    return { resourceRequest: true, verb: ra.verb ?? '', apiGroup: ra.group ?? '', resource: ra.resource ?? '', subresource: ra.subresource ?? '', namespace: ra.namespace ?? '', name: ra.name ?? '' };
  }
  if (nra) return { resourceRequest: false, verb: nra.verb ?? '', path: nra.path ?? '' };
  throw errors.badRequest('exactly one of spec.resourceAttributes or spec.nonResourceAttributes must be set');
}

/** kubectl's --list form: resource rules and non-resource rules apart. */
function rulesReview(rules: PolicyRule[]): Record<string, unknown> {
  const resourceRules = rules.filter((r) => !r.nonResourceURLs?.length).map((r) => ({
    verbs: r.verbs ?? [], apiGroups: r.apiGroups ?? [], resources: r.resources ?? [], ...(r.resourceNames?.length ? { resourceNames: r.resourceNames } : {}),
  }));
  const nonResourceRules = rules.filter((r) => r.nonResourceURLs?.length).map((r) => ({ verbs: r.verbs ?? [], nonResourceURLs: r.nonResourceURLs }));
  return { resourceRules, nonResourceRules, incomplete: false };
}

export async function serveReview(req: IncomingMessage, res: ServerResponse, pathname: string, who: UserInfo, auth: Auth): Promise<void> {
  const { group, kind } = REVIEW_PATHS[pathname.replace(/\/+$/, '')];
  if (req.method !== 'POST') throw errors.methodNotAllowed();
  let body: { apiVersion?: string; kind?: string; spec?: Spec; metadata?: Record<string, unknown> };
  try {
    body = JSON.parse((await readBody(req)).toString() || '{}');
  } catch (e) {
    throw errors.badRequest(`the body must be a JSON ${kind}: ${(e as Error).message}`);
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest(`the body must be a JSON ${kind}`);
  if (body.kind && body.kind !== kind) throw errors.badRequest(`the kind in the data (${body.kind}) does not match the expected kind (${kind})`);
  const spec = body.spec ?? {};
  const out: Record<string, unknown> = { kind, apiVersion: `${group}/v1`, metadata: { ...(body.metadata ?? {}), creationTimestamp: null } };
  switch (kind) {
    case 'SelfSubjectReview':
      out.status = { userInfo: { username: who.user, ...(who.uid ? { uid: who.uid } : {}), groups: who.groups, ...(who.extra ? { extra: who.extra } : {}) } };
      break;
    case 'SelfSubjectAccessReview':
      out.spec = spec;
      out.status = { allowed: auth.allowed(who, attributesOf(spec)) };
      break;
    case 'SubjectAccessReview': {
      if (!spec.user && !spec.groups?.length) throw errors.badRequest('spec.user or spec.groups must be set');
      out.spec = spec;
      out.status = { allowed: auth.allowed({ user: spec.user ?? '', groups: spec.groups ?? [], uid: spec.uid, extra: spec.extra }, attributesOf(spec)) };
      break;
    }
    case 'SelfSubjectRulesReview': {
      if (!spec.namespace) throw errors.badRequest('spec.namespace: Required value: no namespace on request');
      out.spec = spec;
      // With AlwaysAllow everyone holds everything; RBAC lists the rules that apply in the namespace.
      out.status = auth.rbac
        ? rulesReview(auth.rbac.rulesFor(who, spec.namespace))
        : rulesReview([{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }, { verbs: ['*'], nonResourceURLs: ['*'] }]);
      break;
    }
  }
  sendJson(res, 201, out, req);
}
