// RBAC's escalation prevention: nobody grants more than they hold. Writing a
// Role/ClusterRole needs every rule in it (or the `escalate` verb); writing a
// binding needs every rule of the role it points at (or the `bind` verb).
// system:masters is exempt, as in Kubernetes.
import type { KubeObject } from '../../api/schema/types.ts';
import { ApiError, qualified } from '../errors.ts';
import type { Auth } from './auth.ts';
import { RBAC } from './rbac.ts';
import { type PolicyRule, type UserInfo, rulesCover } from './rules.ts';

function describe(r: PolicyRule): string {
  const f = (n: string, v?: string[]) => (v?.length ? `${n}:[${v.map((x) => JSON.stringify(x)).join(', ')}]` : '');
  return `{${[f('APIGroups', r.apiGroups), f('Resources', r.resources), f('ResourceNames', r.resourceNames), f('NonResourceURLs', r.nonResourceURLs), f('Verbs', r.verbs)].filter(Boolean).join(', ')}}`;
}

export function checkEscalation(auth: Auth, who: UserInfo, r: { group: string; namespace: string; kind: { plural: string } }, obj: KubeObject): void {
  const rbac = auth.rbac;
  if (!rbac || r.group !== RBAC || who.groups.includes('system:masters')) return;
  const plural = r.kind.plural;
  const name = obj.metadata?.name ?? '';
  let wanted: PolicyRule[];
  if (plural === 'roles' || plural === 'clusterroles') {
    if (auth.allowed(who, { resourceRequest: true, verb: 'escalate', apiGroup: RBAC, resource: plural, subresource: '', namespace: r.namespace, name })) return;
    wanted = ((obj as { rules?: PolicyRule[] }).rules ?? []);
  } else if (plural === 'rolebindings' || plural === 'clusterrolebindings') {
    const ref = (obj as { roleRef?: { kind?: string; name?: string } }).roleRef ?? {};
    const refResource = ref.kind === 'Role' ? 'roles' : 'clusterroles';
    if (auth.allowed(who, { resourceRequest: true, verb: 'bind', apiGroup: RBAC, resource: refResource, subresource: '', namespace: ref.kind === 'Role' ? r.namespace : '', name: ref.name ?? '' })) return;
    const rules = rbac.roleRules(ref, r.namespace);
    if (!rules) throw new ApiError(403, 'Forbidden', `${qualified(RBAC, plural)} "${name}" is forbidden: ${qualified(RBAC, refResource)} "${ref.name}" not found`, { name, group: RBAC, kind: plural });
    wanted = rules;
  } else {
    return;
  }
  const held = rbac.rulesFor(who, r.namespace);
  const missing = wanted.filter((w) => !rulesCover(held, w));
  if (!missing.length) return;
  throw new ApiError(403, 'Forbidden',
    `${qualified(RBAC, plural)} "${name}" is forbidden: user "${who.user}" (groups=${JSON.stringify(who.groups)}) is attempting to grant RBAC permissions not currently held:\n${missing.map(describe).join('\n')}`,
    { name, group: RBAC, kind: plural });
}
