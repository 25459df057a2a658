// Discovery documents (/api, /apis, /apis/GROUP, every group version's
// APIResourceList) and /version, derived from the kind registry.
import { createHash } from 'node:crypto';
import { KINDS } from '../../api/kinds/index.ts';
import type { KindDef } from '../../api/schema/types.ts';
import { REVIEW_PATHS } from '../auth/reviews.ts';

export const KUBE_VERSION = { major: '1', minor: '31', gitVersion: 'v1.31.0+flotilla.0.1.0' };

const FULL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export function versionInfo(): Record<string, string> {
  return {
    ...KUBE_VERSION,
    gitCommit: 'flotilla',
    gitTreeState: 'clean',
    buildDate: '2026-11-25T00:00:00Z',
    goVersion: `node${process.versions.node}`,
    compiler: 'tsx',
    platform: `${process.platform}/${process.arch}`,
  };
}

/**
 * The create-only review resources (authorization.k8s.io SubjectAccessReviews,
 * authentication.k8s.io SelfSubjectReview), served by apiserver/auth/reviews.ts
 * and stored nowhere, so they are not kinds; clients still find them here.
 */
const REVIEWS = Object.entries(REVIEW_PATHS).map(([path, { group, kind }]) => {
  const [, , , version, plural] = path.split('/');
  return { group, version, plural, kind };
});

function groupVersions(): Map<string, string[]> {
  const gv = new Map<string, string[]>();
  for (const { group, version } of [...KINDS, ...REVIEWS]) {
    if (!group) continue;
    const vs = gv.get(group) ?? [];
    if (!vs.includes(version)) vs.push(version);
    gv.set(group, vs);
  }
  return gv;
}

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function apiGroup(name: string, versions: string[]): Record<string, unknown> {
  const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

export function apiGroupList(): Record<string, unknown> {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: [...groupVersions()].map(([g, vs]) => apiGroup(g, vs)) };
}

export function apiGroupDoc(group: string): Record<string, unknown> | undefined {
  const vs = groupVersions().get(group);
  return vs ? { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(group, vs) } : undefined;
}

function storageVersionHash(k: KindDef): string {
  return createHash('sha256').update(`${k.group}/${k.version}/${k.kind}`).digest('base64').slice(0, 11);
}

export function resourceList(group: string, version: string): Record<string, unknown> | undefined {
  const kinds = KINDS.filter((k) => k.group === group && k.version === version);
  const reviews = REVIEWS.filter((r) => r.group === group && r.version === version);
  if (!kinds.length && !reviews.length) return undefined;
  const resources: Record<string, unknown>[] = reviews.map((r) => ({ name: r.plural, singularName: r.kind.toLowerCase(), namespaced: false, kind: r.kind, verbs: ['create'] }));
  for (const k of kinds) {
    if (k.kind === 'Binding') {
      resources.push({ name: 'bindings', singularName: 'binding', namespaced: true, kind: 'Binding', verbs: ['create'] });
      continue;
    }
    resources.push({
      name: k.plural, singularName: k.singular, namespaced: k.namespaced, kind: k.kind,
      // Namespaces are deleted one by one (each goes through termination), as in Kubernetes.
      verbs: k.kind === 'Namespace' && !k.group ? FULL_VERBS.filter((v) => v !== 'deletecollection') : FULL_VERBS,
      ...(k.shortNames.length ? { shortNames: k.shortNames } : {}),
      ...(k.categories.length ? { categories: k.categories } : {}),
      storageVersionHash: storageVersionHash(k),
    });
    for (const sub of k.subresources) {
      switch (sub) {
        case 'status':
          resources.push({ name: `${k.plural}/status`, singularName: '', namespaced: k.namespaced, kind: k.kind, verbs: ['get', 'patch', 'update'] });
          break;
        case 'scale':
          resources.push({ name: `${k.plural}/scale`, singularName: '', namespaced: k.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
          break;
        case 'binding':
          resources.push({ name: `${k.plural}/binding`, singularName: '', namespaced: k.namespaced, kind: 'Binding', verbs: ['create'] });
          break;
        case 'finalize':
          resources.push({ name: `${k.plural}/finalize`, singularName: '', namespaced: k.namespaced, kind: k.kind, verbs: ['update'] });
          break;
        case 'log':
          resources.push({ name: `${k.plural}/log`, singularName: '', namespaced: k.namespaced, kind: k.kind, verbs: ['get'] });
          break;
        case 'eviction':
          // kubectl drain looks for this entry (and its group/version) before it evicts.
          resources.push({ name: `${k.plural}/eviction`, singularName: '', namespaced: k.namespaced, group: 'policy', version: 'v1', kind: 'Eviction', verbs: ['create'] });
          break;
        case 'token':
          resources.push({ name: `${k.plural}/token`, singularName: '', namespaced: k.namespaced, group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest', verbs: ['create'] });
          break;
      }
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}
