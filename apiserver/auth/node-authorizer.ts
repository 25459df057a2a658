// The Node authorizer (Kubernetes' `--authorization-mode Node`): a node agent
// authenticated as `system:node:<name>` in group `system:nodes` may read what
// the pods bound to its node use and write only its own objects.
//
// - Secrets, ConfigMaps, PersistentVolumeClaims (and the PersistentVolumes
//   they are bound to), ServiceAccount tokens: `get` only when a pod bound to
//   this node references them (volumes, projected sources, env, envFrom,
//   imagePullSecrets, serviceAccountName).
// - Pods: `get` of pods bound here; `list`/`watch` only with the field
//   selector `spec.nodeName=<name>` (as Kubernetes 1.32's
//   AuthorizeNodeWithSelectors); `pods/status` update/patch and `delete` of
//   pods bound here; no creates (there are no mirror pods here).
// - Its own Node (create, update, patch, nodes/status) and its own Lease in
//   kube-node-lease; every Node may be read.
// - The ServiceAccounts its pods run as (`get`, and TokenRequest), the
//   kube-root-ca.crt ConfigMap of every namespace it has pods in (projected
//   into service account token volumes), and the kube-system Leases named
//   flotilla-proxy-* (the per-machine cluster-IP proxy's leader election).
// - What the kubelet and the node's service proxy read cluster-wide
//   (services, endpoint slices, namespaces...) and events it writes, as the
//   static system:node rules.
//
// Anything else, and every request of someone who is not a node, gets no
// opinion: the next authorizer (RBAC) decides. The graph (which pod uses what)
// is kept current from the store's events, not rebuilt per request.
import { parseFieldSelector } from '../../api/selectors.ts';
import { ApiError } from '../errors.ts';
import type { ObjectStore, StoreEvent } from '../store.ts';
import { type Attributes, type PolicyRule, type UserInfo, ruleAllows } from './rules.ts';

const NODE_PREFIX = 'system:node:';
/** The cluster-IP proxy's Leases in kube-system (agents/proxy/cluster-ips.ts). */
const PROXY_LEASE_PREFIX = 'flotilla-proxy-';
const ROOT_CA_CONFIGMAP = 'kube-root-ca.crt';
export const NODES_GROUP = 'system:nodes';
const PODS = '/pods';
const PVCS = '/persistentvolumeclaims';

/** The node a user speaks for, if it is a node identity. */
export function nodeNameOf(u: UserInfo): string | undefined {
  if (!u.user.startsWith(NODE_PREFIX) || !u.groups.includes(NODES_GROUP)) return undefined;
  const name = u.user.slice(NODE_PREFIX.length);
  return name || undefined;
}

const READ = ['get', 'list', 'watch'];
/** What every node may do whatever its pods (Kubernetes' NodeRules, trimmed to the kinds served here). */
const NODE_RULES: PolicyRule[] = [
  { verbs: READ, apiGroups: [''], resources: ['nodes', 'services', 'endpoints', 'namespaces'] },
  { verbs: READ, apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'] },
  { verbs: READ, apiGroups: ['storage.k8s.io'], resources: ['storageclasses', 'csidrivers', 'csinodes'] },
  { verbs: READ, apiGroups: ['node.k8s.io'], resources: ['runtimeclasses'] },
  { verbs: ['create', 'patch', 'update'], apiGroups: ['', 'events.k8s.io'], resources: ['events'] },
  { verbs: ['create'], apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'] },
  { verbs: ['create'], apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews', 'localsubjectaccessreviews'] },
];

type Ref = string; // "<resource>/<namespace>/<name>"
const ref = (resource: string, ns: string, name: string): Ref => `${resource}/${ns}/${name}`;

interface PodRefs { node: string; refs: Ref[] }

/** The objects a pod's spec names that its node must read to run it. */
export function podReferences(pod: { metadata?: { namespace?: string }; spec?: Record<string, unknown> }): Ref[] {
  const ns = pod.metadata?.namespace ?? '';
  const spec = (pod.spec ?? {}) as PodSpecRefs;
  const out = new Set<Ref>();
  const secret = (n?: string) => { if (n) out.add(ref('secrets', ns, n)); };
  const configMap = (n?: string) => { if (n) out.add(ref('configmaps', ns, n)); };
  for (const s of spec.imagePullSecrets ?? []) secret(s.name);
  const sa = spec.serviceAccountName || 'default';
  out.add(ref('serviceaccounts', ns, sa));
  for (const v of spec.volumes ?? []) {
    secret(v.secret?.secretName);
    configMap(v.configMap?.name);
    if (v.persistentVolumeClaim?.claimName) out.add(ref('persistentvolumeclaims', ns, v.persistentVolumeClaim.claimName));
    // A generic ephemeral volume's claim is named <pod>-<volume>.
    if (v.ephemeral) out.add(ref('persistentvolumeclaims', ns, `${(pod.metadata as { name?: string })?.name}-${v.name}`));
    for (const s of v.projected?.sources ?? []) {
      secret(s.secret?.name);
      configMap(s.configMap?.name);
    }
  }
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])]) {
    for (const e of c.env ?? []) {
      secret(e.valueFrom?.secretKeyRef?.name);
      configMap(e.valueFrom?.configMapKeyRef?.name);
    }
    for (const f of c.envFrom ?? []) {
      secret(f.secretRef?.name);
      configMap(f.configMapRef?.name);
    }
  }
  return [...out];
}

interface Named { name?: string }
interface ContainerRefs {
  env?: { valueFrom?: { secretKeyRef?: Named; configMapKeyRef?: Named } }[];
  envFrom?: { secretRef?: Named; configMapRef?: Named }[];
}
interface PodSpecRefs {
  serviceAccountName?: string;
  imagePullSecrets?: Named[];
  volumes?: {
    name?: string;
    secret?: { secretName?: string };
    configMap?: Named;
    persistentVolumeClaim?: { claimName?: string };
    ephemeral?: unknown;
    projected?: { sources?: { secret?: Named; configMap?: Named }[] };
  }[];
  initContainers?: ContainerRefs[];
  containers?: ContainerRefs[];
  ephemeralContainers?: ContainerRefs[];
}

export class NodeAuthorizer {
  /** "ns/name" → the pod's node and references (only pods bound to a node). */
  private pods?: Map<string, PodRefs>;
  /** node → reference → how many of its pods hold it. */
  private byNode = new Map<string, Map<Ref, number>>();

  constructor(private readonly store: ObjectStore) {
    store.on('event', (e: StoreEvent) => {
      if (e.res === PODS && this.pods) this.podChanged(`${e.ns}/${e.name}`, e.type === 'DELETED' ? undefined : e.json);
    });
    store.on('restored', () => { this.pods = undefined; });
  }

  private graph(): Map<string, PodRefs> {
    if (!this.pods) {
      this.pods = new Map();
      this.byNode = new Map();
      for (const { key, obj } of this.store.list(PODS, undefined)) this.podChanged(key, obj.json);
    }
    return this.pods;
  }

  private podChanged(key: string, json: string | undefined): void {
    const pods = this.pods!;
    const old = pods.get(key);
    if (old) {
      const counts = this.byNode.get(old.node)!;
      for (const r of old.refs) {
        const n = (counts.get(r) ?? 1) - 1;
        if (n > 0) counts.set(r, n); else counts.delete(r);
      }
      if (!counts.size) this.byNode.delete(old.node);
      pods.delete(key);
    }
    if (json === undefined) return;
    const pod = JSON.parse(json) as { metadata?: { namespace?: string }; spec?: { nodeName?: string } & Record<string, unknown> };
    const node = pod.spec?.nodeName;
    if (!node) return;
    const refs = podReferences(pod);
    pods.set(key, { node, refs });
    let counts = this.byNode.get(node);
    if (!counts) this.byNode.set(node, (counts = new Map()));
    for (const r of refs) counts.set(r, (counts.get(r) ?? 0) + 1);
  }

  private uses(node: string, r: Ref): boolean {
    this.graph();
    return (this.byNode.get(node)?.get(r) ?? 0) > 0;
  }

  /** Whether a pod bound to `node` is in namespace `ns` (every pod references its ServiceAccount). */
  private hasPodsIn(node: string, ns: string): boolean {
    this.graph();
    const prefix = `serviceaccounts/${ns}/`;
    for (const r of this.byNode.get(node)?.keys() ?? []) if (r.startsWith(prefix)) return true;
    return false;
  }

  private podOn(node: string, ns: string, name: string): boolean {
    return this.graph().get(`${ns}/${name}`)?.node === node;
  }

  /** true: allowed; false: no opinion (a later authorizer decides). Never denies outright, as Kubernetes' authorizer. */
  authorize(u: UserInfo, a: Attributes): boolean {
    const node = nodeNameOf(u);
    if (!node) return false;
    if (!a.resourceRequest) return false;
    const { verb, apiGroup, resource, subresource, namespace: ns, name } = a;
    if (apiGroup === '') {
      switch (resource) {
        case 'configmaps':
          if (name === ROOT_CA_CONFIGMAP && verb === 'get' && !subresource) return this.hasPodsIn(node, ns);
          return verb === 'get' && !subresource && this.uses(node, ref(resource, ns, name));
        case 'secrets':
        case 'persistentvolumeclaims':
          return verb === 'get' && !subresource && this.uses(node, ref(resource, ns, name));
        case 'persistentvolumes': {
          if (verb !== 'get' || subresource || !name) return false;
          return this.boundClaimsOf(node).has(name);
        }
        case 'serviceaccounts':
          // The ServiceAccount a pod here runs as, and TokenRequest for it (the token is bound to that pod by the caller).
          if (!subresource && verb === 'get') return this.uses(node, ref('serviceaccounts', ns, name));
          return subresource === 'token' && verb === 'create' && this.uses(node, ref('serviceaccounts', ns, name));
        case 'pods':
          if (!subresource) {
            if (verb === 'get' || verb === 'delete') return this.podOn(node, ns, name);
            if (verb === 'list' || verb === 'watch') return selectsNode(a.fieldSelector, node);
            return false;
          }
          if (subresource === 'status') return (verb === 'update' || verb === 'patch' || verb === 'get') && this.podOn(node, ns, name);
          return false;
        case 'nodes':
          if (name === node && !subresource && ['create', 'update', 'patch', 'get'].includes(verb)) return true;
          if (name === node && subresource === 'status' && ['update', 'patch', 'get'].includes(verb)) return true;
          if (verb === 'create' && !name) return true; // the body's name is checked at admission (checkNodeCreate)
          break;
      }
    }
    if (apiGroup === 'coordination.k8s.io' && resource === 'leases' && ns === 'kube-node-lease') {
      if (verb === 'create' && !name) return true; // as above, the name is checked at admission
      return name === node && ['get', 'update', 'patch', 'delete'].includes(verb);
    }
    if (apiGroup === 'coordination.k8s.io' && resource === 'leases' && ns === 'kube-system' && !subresource) {
      if (verb === 'create' && !name) return true; // the name is checked at admission (checkNodeRestriction)
      if (name.startsWith(PROXY_LEASE_PREFIX) && ['get', 'update', 'patch'].includes(verb)) return true;
    }
    return NODE_RULES.some((r) => ruleAllows(a, r));
  }

  /** PersistentVolumes bound to the claims this node's pods use. */
  private boundClaimsOf(node: string): Set<string> {
    this.graph();
    const out = new Set<string>();
    for (const r of this.byNode.get(node)?.keys() ?? []) {
      if (!r.startsWith('persistentvolumeclaims/')) continue;
      const [, ns, name] = r.split('/');
      const pvc = this.store.get(PVCS, ns, name);
      const vol = pvc && (JSON.parse(pvc.json) as { spec?: { volumeName?: string } }).spec?.volumeName;
      if (vol) out.add(vol);
    }
    return out;
  }
}

/** Whether a field selector restricts a list/watch of pods to this node (further terms only narrow it). */
function selectsNode(selector: string | undefined, node: string): boolean {
  if (!selector) return false;
  try {
    return parseFieldSelector(selector).some((r) => r.path === 'spec.nodeName' && r.op === '=' && r.value === node);
  } catch {
    return false;
  }
}

/**
 * NodeRestriction for writes whose name is in the body rather than the path
 * (creates): a node writes only its own Node and its own Lease. Refused with
 * Kubernetes' admission message.
 */
export function checkNodeRestriction(u: UserInfo, r: { group: string; namespace: string; kind: { plural: string } }, obj: { metadata?: { name?: string } }): void {
  const node = nodeNameOf(u);
  if (!node) return;
  const name = obj.metadata?.name ?? '';
  const plural = r.kind.plural;
  if (r.group === 'coordination.k8s.io' && plural === 'leases' && r.namespace === 'kube-system') {
    if (!name.startsWith(PROXY_LEASE_PREFIX)) {
      throw new ApiError(403, 'Forbidden', `leases.coordination.k8s.io "${name}" is forbidden: node "${node}" can only create the cluster-IP proxy's leases (${PROXY_LEASE_PREFIX}*) in kube-system`,
        { name, group: r.group, kind: plural });
    }
    return;
  }
  const own = r.group === '' && plural === 'nodes' ? 'node'
    : r.group === 'coordination.k8s.io' && plural === 'leases' && r.namespace === 'kube-node-lease' ? 'lease' : undefined;
  if (own && name !== node) {
    throw new ApiError(403, 'Forbidden', `${plural === 'nodes' ? 'nodes' : 'leases.coordination.k8s.io'} "${name}" is forbidden: node "${node}" can only ${own === 'node' ? 'modify its own Node object' : 'access its own lease'}`,
      { name, group: r.group, kind: plural });
  }
}
