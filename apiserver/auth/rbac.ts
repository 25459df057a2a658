// The RBAC authorizer: Roles, ClusterRoles and their bindings, read from the
// server's own committed store. An index by subject is rebuilt lazily after a
// change to any RBAC object, so a check costs a few map look-ups and rule
// scans rather than a pass over every binding.
import type { ObjectStore, StoreEvent } from '../store.ts';
import { type Attributes, type PolicyRule, type UserInfo, ruleAllows } from './rules.ts';

export const RBAC = 'rbac.authorization.k8s.io';
export const RES = {
  roles: `${RBAC}/roles`,
  clusterRoles: `${RBAC}/clusterroles`,
  roleBindings: `${RBAC}/rolebindings`,
  clusterRoleBindings: `${RBAC}/clusterrolebindings`,
};
const RBAC_RESOURCES = new Set(Object.values(RES));

interface Subject { kind?: string; name?: string; namespace?: string; apiGroup?: string }
interface RoleRef { kind?: string; name?: string }
/** A binding as indexed: where it applies ('' = cluster-wide) and what it points at. */
interface BindingRef { namespace: string; roleRef: RoleRef }

interface Index {
  clusterRoles: Map<string, PolicyRule[]>;
  /** "ns/name" → rules */
  roles: Map<string, PolicyRule[]>;
  /** subject key → bindings naming it */
  bySubject: Map<string, BindingRef[]>;
}

const SA_PREFIX = 'system:serviceaccount:';

/** The index keys a user is found under: its name, each group, and its ServiceAccount if it is one. */
function subjectKeys(u: UserInfo): string[] {
  const keys = [`User:${u.user}`, ...u.groups.map((g) => `Group:${g}`)];
  if (u.user.startsWith(SA_PREFIX)) {
    const [ns, name] = u.user.slice(SA_PREFIX.length).split(':');
    if (ns && name) keys.push(`ServiceAccount:${ns}/${name}`);
  }
  return keys;
}

function subjectKey(s: Subject, bindingNs: string): string | undefined {
  switch (s.kind) {
    case 'User': return `User:${s.name}`;
    case 'Group': return `Group:${s.name}`;
    // A ServiceAccount subject without a namespace means the binding's own (Kubernetes' appliesTo).
    case 'ServiceAccount': return `ServiceAccount:${s.namespace || bindingNs}/${s.name}`;
    default: return undefined;
  }
}

export class RbacAuthorizer {
  private index?: Index;

  constructor(private readonly store: ObjectStore) {
    const dirty = (e?: StoreEvent) => {
      if (!e || RBAC_RESOURCES.has(e.res)) this.index = undefined;
    };
    store.on('event', dirty);
    store.on('restored', () => dirty());
  }

  private build(): Index {
    const rulesOf = (json: string) => ((JSON.parse(json) as { rules?: PolicyRule[] }).rules ?? []);
    const clusterRoles = new Map<string, PolicyRule[]>();
    for (const { obj } of this.store.list(RES.clusterRoles, undefined)) {
      clusterRoles.set((JSON.parse(obj.json) as { metadata: { name: string } }).metadata.name, rulesOf(obj.json));
    }
    const roles = new Map<string, PolicyRule[]>();
    for (const { key, obj } of this.store.list(RES.roles, undefined)) roles.set(key, rulesOf(obj.json));
    const bySubject = new Map<string, BindingRef[]>();
    const add = (json: string, namespace: string) => {
      const b = JSON.parse(json) as { subjects?: Subject[]; roleRef?: RoleRef };
      const ref: BindingRef = { namespace, roleRef: b.roleRef ?? {} };
      for (const s of b.subjects ?? []) {
        const k = subjectKey(s, namespace);
        if (!k) continue;
        const list = bySubject.get(k) ?? [];
        list.push(ref);
        bySubject.set(k, list);
      }
    };
    for (const { obj } of this.store.list(RES.clusterRoleBindings, undefined)) add(obj.json, '');
    for (const { obj } of this.store.list(RES.roleBindings, undefined)) {
      add(obj.json, (JSON.parse(obj.json) as { metadata: { namespace: string } }).metadata.namespace);
    }
    return { clusterRoles, roles, bySubject };
  }

  private rulesOfRef(ix: Index, b: BindingRef): PolicyRule[] {
    if (b.roleRef.kind === 'ClusterRole') return ix.clusterRoles.get(b.roleRef.name ?? '') ?? [];
    if (b.roleRef.kind === 'Role' && b.namespace) return ix.roles.get(`${b.namespace}/${b.roleRef.name}`) ?? [];
    return [];
  }

  /** The bindings that apply to `u` in `namespace` (cluster-wide ones always, namespaced ones only there). */
  private bindingsFor(u: UserInfo, namespace: string): { ix: Index; bindings: BindingRef[] } {
    const ix = (this.index ??= this.build());
    const bindings: BindingRef[] = [];
    for (const k of subjectKeys(u)) {
      for (const b of ix.bySubject.get(k) ?? []) {
        if (b.namespace === '' || (namespace && b.namespace === namespace)) bindings.push(b);
      }
    }
    return { ix, bindings };
  }

  authorize(u: UserInfo, a: Attributes): boolean {
    const ns = a.resourceRequest ? a.namespace : '';
    const { ix, bindings } = this.bindingsFor(u, ns);
    for (const b of bindings) {
      // Namespaced bindings never grant non-resource URLs or cluster-scoped requests.
      if (b.namespace && !(a.resourceRequest && a.namespace)) continue;
      if (this.rulesOfRef(ix, b).some((r) => ruleAllows(a, r))) return true;
    }
    return false;
  }

  /** Every rule `u` holds in `namespace` ('' = cluster-wide only): SelfSubjectRulesReview and the escalation check. */
  rulesFor(u: UserInfo, namespace: string): PolicyRule[] {
    const { ix, bindings } = this.bindingsFor(u, namespace);
    const out: PolicyRule[] = [];
    for (const b of bindings) out.push(...this.rulesOfRef(ix, b));
    return out;
  }

  /** The rules of a role a binding points at, or undefined when it does not exist. */
  roleRules(roleRef: RoleRef, namespace: string): PolicyRule[] | undefined {
    const ix = (this.index ??= this.build());
    if (roleRef.kind === 'ClusterRole') return ix.clusterRoles.get(roleRef.name ?? '');
    if (roleRef.kind === 'Role') return ix.roles.get(`${namespace}/${roleRef.name}`);
    return undefined;
  }
}
