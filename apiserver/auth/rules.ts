// RBAC's rule matching (Kubernetes' rbac/v1 helpers): whether one PolicyRule
// covers a request's attributes, and the Forbidden message Kubernetes writes.
// Pure functions, so the table tests can exercise them without a server.

export interface PolicyRule {
  verbs?: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

export interface UserInfo {
  user: string;
  groups: string[];
  uid?: string;
  extra?: Record<string, string[]>;
}

/** What a request asks for, like Kubernetes' authorizer.Attributes. */
export type Attributes =
  | {
    resourceRequest: true; verb: string; apiGroup: string; resource: string; subresource: string; namespace: string; name: string;
    /** ?fieldSelector of a list or watch (the Node authorizer restricts pods to a node's own). */
    fieldSelector?: string;
  }
  | { resourceRequest: false; verb: string; path: string };

const has = (list: string[] | undefined, v: string) => !!list && (list.includes('*') || list.includes(v));

export function verbMatches(r: PolicyRule, verb: string): boolean {
  return has(r.verbs, verb);
}

export function apiGroupMatches(r: PolicyRule, group: string): boolean {
  return has(r.apiGroups, group);
}

/**
 * "pods" covers only the pods resource, "pods/log" the subresource, "*" all,
 * "*\/log" that subresource of any resource (Kubernetes' ResourceMatches).
 */
export function resourceMatches(r: PolicyRule, resource: string, subresource: string): boolean {
  const combined = subresource ? `${resource}/${subresource}` : resource;
  for (const x of r.resources ?? []) {
    if (x === '*' || x === combined) return true;
    if (subresource && x === `*/${subresource}`) return true;
  }
  return false;
}

/** An empty resourceNames list covers every name; otherwise the request must name one of them. */
export function resourceNameMatches(r: PolicyRule, name: string): boolean {
  if (!r.resourceNames?.length) return true;
  return r.resourceNames.includes(name);
}

/** Exact paths, "*", or a prefix ending in "*". */
export function nonResourceURLMatches(r: PolicyRule, path: string): boolean {
  for (const u of r.nonResourceURLs ?? []) {
    if (u === '*' || u === path) return true;
    if (u.endsWith('*') && path.startsWith(u.slice(0, -1))) return true;
  }
  return false;
}

export function ruleAllows(a: Attributes, r: PolicyRule): boolean {
  if (!a.resourceRequest) return verbMatches(r, a.verb) && nonResourceURLMatches(r, a.path);
  return verbMatches(r, a.verb) && apiGroupMatches(r, a.apiGroup) && resourceMatches(r, a.resource, a.subresource)
    && resourceNameMatches(r, a.name);
}

/** Kubernetes' forbiddenMessage: who could not do what, where. */
export function forbiddenMessage(user: string, a: Attributes): string {
  if (!a.resourceRequest) return `User "${user}" cannot ${a.verb} path "${a.path}"`;
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  if (a.namespace) return `User "${user}" cannot ${a.verb} resource "${resource}" in API group "${a.apiGroup}" in the namespace "${a.namespace}"`;
  return `User "${user}" cannot ${a.verb} resource "${resource}" in API group "${a.apiGroup}" at the cluster scope`;
}

/**
 * Whether `held` covers every permission `wanted` grants (the escalation
 * check): each verb × group × resource × name (or URL) of `wanted` must be
 * allowed by some held rule. Wildcards in `wanted` are covered only by the
 * same wildcard held, as in Kubernetes' Covers.
 */
export function rulesCover(held: PolicyRule[], wanted: PolicyRule): boolean {
  const verbs = wanted.verbs ?? [];
  if (wanted.nonResourceURLs?.length) {
    return wanted.nonResourceURLs.every((u) => verbs.every((v) => held.some((h) => has(h.verbs, v) && nonResourceURLMatches(h, u))));
  }
  const names = wanted.resourceNames?.length ? wanted.resourceNames : [''];
  for (const v of verbs) {
    for (const g of wanted.apiGroups ?? []) {
      for (const res of wanted.resources ?? []) {
        for (const n of names) {
          const ok = held.some((h) => has(h.verbs, v) && has(h.apiGroups, g) && (h.resources ?? []).some((x) => x === '*' || x === res || (res.includes('/') && x === `*/${res.split('/')[1]}`))
            && (!h.resourceNames?.length || (n !== '' && h.resourceNames.includes(n))));
          if (!ok) return false;
        }
      }
    }
  }
  return true;
}
