// The default ClusterRoles and ClusterRoleBindings, after Kubernetes'
// bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy): the
// user-facing roles (cluster-admin, admin, edit, view, the last three
// aggregated from labelled fragments) and the discovery/basic-user/public-info
// roles, and a role for each component's own identity (least privilege: the
// scheduler cannot read Secrets, the ingress proxy cannot write workloads).
// Node agents are authorized by the Node authorizer (node-authorizer.ts), as
// in Kubernetes, so system:nodes is bound to nothing here.
import type { PolicyRule } from './rules.ts';

export const AUTOUPDATE = 'rbac.authorization.kubernetes.io/autoupdate';
const BOOTSTRAP_LABELS = { 'kubernetes.io/bootstrapping': 'rbac-defaults' };
export const AGGREGATE_TO = (r: string) => `rbac.authorization.k8s.io/aggregate-to-${r}`;

const READ = ['get', 'list', 'watch'];
const WRITE = ['create', 'delete', 'deletecollection', 'patch', 'update'];
const RW = [...READ, ...WRITE];
const rule = (verbs: string[], apiGroups: string[], resources: string[]): PolicyRule => ({ verbs, apiGroups, resources });
const urls = (verbs: string[], nonResourceURLs: string[]): PolicyRule => ({ verbs, nonResourceURLs });

export interface ClusterRoleSpec {
  name: string;
  labels?: Record<string, string>;
  rules: PolicyRule[];
  aggregateFrom?: string;
}

export const CLUSTER_ROLES: ClusterRoleSpec[] = [
  { name: 'cluster-admin', rules: [rule(['*'], ['*'], ['*']), urls(['*'], ['*'])] },
  {
    name: 'system:discovery',
    rules: [urls(['get'], ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/openapi', '/openapi/*', '/readyz', '/version', '/version/'])],
  },
  { name: 'system:public-info-viewer', rules: [urls(['get'], ['/healthz', '/livez', '/readyz', '/version', '/version/'])] },
  {
    name: 'system:basic-user',
    rules: [
      rule(['create'], ['authorization.k8s.io'], ['selfsubjectaccessreviews', 'selfsubjectrulesreviews']),
      rule(['create'], ['authentication.k8s.io'], ['selfsubjectreviews']),
    ],
  },
  { name: 'admin', rules: [], aggregateFrom: 'admin' },
  { name: 'edit', labels: { [AGGREGATE_TO('admin')]: 'true' }, rules: [], aggregateFrom: 'edit' },
  { name: 'view', labels: { [AGGREGATE_TO('edit')]: 'true' }, rules: [], aggregateFrom: 'view' },
  {
    name: 'system:aggregate-to-admin', labels: { [AGGREGATE_TO('admin')]: 'true' },
    rules: [
      rule(['create'], ['authorization.k8s.io'], ['localsubjectaccessreviews']),
      rule(RW, ['rbac.authorization.k8s.io'], ['rolebindings', 'roles']),
    ],
  },
  {
    name: 'system:aggregate-to-edit', labels: { [AGGREGATE_TO('edit')]: 'true' },
    rules: [
      rule(['impersonate'], [''], ['serviceaccounts']),
      rule(WRITE, [''], ['pods', 'pods/attach', 'pods/proxy', 'pods/exec', 'pods/portforward']),
      rule(['create'], [''], ['pods/eviction']),
      rule(WRITE, [''], ['configmaps', 'events', 'persistentvolumeclaims', 'replicationcontrollers', 'replicationcontrollers/scale', 'secrets', 'serviceaccounts', 'services', 'services/proxy']),
      rule(['create'], [''], ['serviceaccounts/token']),
      rule(WRITE, ['apps'], ['daemonsets', 'deployments', 'deployments/rollback', 'deployments/scale', 'replicasets', 'replicasets/scale', 'statefulsets', 'statefulsets/scale']),
      rule(WRITE, ['autoscaling'], ['horizontalpodautoscalers']),
      rule(WRITE, ['batch'], ['cronjobs', 'jobs']),
      rule(WRITE, ['policy'], ['poddisruptionbudgets']),
      rule(WRITE, ['networking.k8s.io'], ['ingresses', 'networkpolicies']),
      rule(['create', 'delete', 'deletecollection', 'patch', 'update'], ['coordination.k8s.io'], ['leases']),
      rule(READ, [''], ['pods/attach', 'pods/exec', 'pods/portforward', 'pods/proxy', 'secrets', 'services/proxy']),
    ],
  },
  {
    name: 'system:aggregate-to-view', labels: { [AGGREGATE_TO('view')]: 'true' },
    rules: [
      rule(READ, [''], ['configmaps', 'endpoints', 'persistentvolumeclaims', 'persistentvolumeclaims/status', 'pods', 'replicationcontrollers', 'replicationcontrollers/scale', 'serviceaccounts', 'services', 'services/status']),
      rule(READ, [''], ['bindings', 'events', 'limitranges', 'namespaces/status', 'pods/log', 'pods/status', 'replicationcontrollers/status', 'resourcequotas', 'resourcequotas/status']),
      rule(READ, [''], ['namespaces']),
      rule(READ, ['discovery.k8s.io'], ['endpointslices']),
      rule(READ, ['apps'], ['controllerrevisions', 'daemonsets', 'daemonsets/status', 'deployments', 'deployments/scale', 'deployments/status', 'replicasets', 'replicasets/scale', 'replicasets/status', 'statefulsets', 'statefulsets/scale', 'statefulsets/status']),
      rule(READ, ['autoscaling'], ['horizontalpodautoscalers', 'horizontalpodautoscalers/status']),
      rule(READ, ['batch'], ['cronjobs', 'cronjobs/status', 'jobs', 'jobs/status']),
      rule(READ, ['policy'], ['poddisruptionbudgets', 'poddisruptionbudgets/status']),
      rule(READ, ['networking.k8s.io'], ['ingresses', 'ingresses/status', 'networkpolicies']),
    ],
  },
  // ------------------------------------------------------------ components
  {
    // kube-scheduler's rules (system:kube-scheduler and system:volume-scheduler together).
    name: 'system:kube-scheduler',
    rules: [
      rule(['create', 'patch', 'update'], ['', 'events.k8s.io'], ['events']),
      rule(['create'], ['coordination.k8s.io'], ['leases']),
      { verbs: ['get', 'update', 'patch'], apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['kube-scheduler'] },
      rule(['delete', 'get', 'list', 'watch'], [''], ['pods']),
      rule(['create'], [''], ['bindings', 'pods/binding']),
      rule(['patch', 'update'], [''], ['pods/status']),
      rule(READ, [''], ['nodes', 'namespaces', 'persistentvolumeclaims', 'persistentvolumes', 'replicationcontrollers', 'services', 'limitranges', 'resourcequotas']),
      rule(['update', 'patch'], [''], ['persistentvolumeclaims', 'persistentvolumes']),
      rule(READ, ['apps', 'extensions'], ['replicasets', 'statefulsets']),
      rule(READ, ['policy'], ['poddisruptionbudgets']),
      rule(READ, ['storage.k8s.io'], ['storageclasses', 'csinodes', 'csidrivers', 'csistoragecapacities']),
      rule(READ, ['scheduling.k8s.io'], ['priorityclasses']),
      rule(['create'], ['authentication.k8s.io'], ['tokenreviews']),
      rule(['create'], ['authorization.k8s.io'], ['subjectaccessreviews']),
    ],
  },
  {
    // One identity for every controller (Kubernetes splits them into ServiceAccounts with
    // --use-service-account-credentials). Reads everything but Secrets; writes what the
    // controllers own; deletes anything, for the garbage collector and namespace deletion.
    name: 'system:kube-controller-manager',
    rules: [
      // secrets: the serviceaccount and token controllers list and watch them (and write the token Secrets).
      rule(READ, [''], ['pods', 'nodes', 'namespaces', 'services', 'endpoints', 'configmaps', 'events', 'persistentvolumeclaims', 'persistentvolumes', 'replicationcontrollers', 'resourcequotas', 'limitranges', 'serviceaccounts', 'podtemplates', 'secrets']),
      rule(READ, ['apps', 'batch', 'autoscaling', 'policy', 'discovery.k8s.io', 'coordination.k8s.io', 'storage.k8s.io', 'networking.k8s.io', 'scheduling.k8s.io', 'rbac.authorization.k8s.io', 'events.k8s.io', 'node.k8s.io'], ['*']),
      rule(['create', 'update', 'patch'], [''], ['pods', 'pods/status', 'nodes', 'nodes/status', 'namespaces', 'namespaces/status', 'namespaces/finalize', 'services', 'services/status', 'endpoints', 'events', 'persistentvolumeclaims', 'persistentvolumeclaims/status', 'persistentvolumes', 'persistentvolumes/status', 'replicationcontrollers', 'replicationcontrollers/status', 'resourcequotas', 'resourcequotas/status', 'serviceaccounts', 'configmaps', 'secrets']),
      rule(['create'], [''], ['pods/eviction', 'pods/binding', 'serviceaccounts/token']),
      rule(['create', 'update', 'patch'], ['apps', 'batch', 'autoscaling', 'policy', 'discovery.k8s.io', 'coordination.k8s.io', 'storage.k8s.io', 'events.k8s.io'], ['*']),
      rule(['delete', 'deletecollection'], ['*'], ['*']),
      rule(['create'], ['authentication.k8s.io'], ['tokenreviews']),
      rule(['create'], ['authorization.k8s.io'], ['subjectaccessreviews']),
    ],
  },
  {
    // kube-proxy's rules: the service proxy of a node agent that runs under its own identity.
    name: 'system:node-proxier',
    rules: [
      rule(['list', 'watch'], [''], ['endpoints', 'services']),
      rule(['get', 'list', 'watch'], [''], ['nodes']),
      rule(['list', 'watch'], ['discovery.k8s.io'], ['endpointslices']),
      rule(['create', 'patch', 'update'], ['', 'events.k8s.io'], ['events']),
    ],
  },
  {
    // Flotilla's ingress proxy: routes from Ingresses, Services and EndpointSlices, TLS from Secrets, and status.
    name: 'system:flotilla-ingress',
    rules: [
      rule(READ, ['networking.k8s.io'], ['ingresses', 'ingressclasses']),
      rule(['update', 'patch'], ['networking.k8s.io'], ['ingresses/status']),
      // Its own IngressClass, made at start when missing (create only: it cannot change or delete another class).
      rule(['create'], ['networking.k8s.io'], ['ingressclasses']),
      rule(READ, [''], ['services', 'endpoints', 'secrets', 'namespaces']),
      rule(READ, ['discovery.k8s.io'], ['endpointslices']),
      rule(['create', 'patch', 'update'], ['', 'events.k8s.io'], ['events']),
    ],
  },
  {
    // The cluster DNS server (CoreDNS' system:coredns).
    name: 'system:flotilla-dns',
    rules: [
      rule(['list', 'watch'], [''], ['endpoints', 'services', 'pods', 'namespaces']),
      rule(['list', 'watch'], ['discovery.k8s.io'], ['endpointslices']),
    ],
  },
];

/** The users each component runs as (the CN of its client certificate). */
export const COMPONENT_USERS = {
  scheduler: 'system:kube-scheduler',
  controllers: 'system:kube-controller-manager',
  proxy: 'system:kube-proxy',
  ingress: 'system:flotilla-ingress',
  dns: 'system:flotilla-dns',
} as const;

export const CLUSTER_ROLE_BINDINGS: { name: string; role: string; groups?: string[]; users?: string[] }[] = [
  { name: 'cluster-admin', role: 'cluster-admin', groups: ['system:masters'] },
  { name: 'system:discovery', role: 'system:discovery', groups: ['system:authenticated'] },
  { name: 'system:basic-user', role: 'system:basic-user', groups: ['system:authenticated'] },
  { name: 'system:public-info-viewer', role: 'system:public-info-viewer', groups: ['system:authenticated', 'system:unauthenticated'] },
  { name: 'system:kube-scheduler', role: 'system:kube-scheduler', users: [COMPONENT_USERS.scheduler] },
  { name: 'system:kube-controller-manager', role: 'system:kube-controller-manager', users: [COMPONENT_USERS.controllers] },
  { name: 'system:node-proxier', role: 'system:node-proxier', users: [COMPONENT_USERS.proxy] },
  { name: 'system:flotilla-ingress', role: 'system:flotilla-ingress', users: [COMPONENT_USERS.ingress] },
  { name: 'system:flotilla-dns', role: 'system:flotilla-dns', users: [COMPONENT_USERS.dns] },
];

export function clusterRoleObject(s: ClusterRoleSpec): Record<string, unknown> {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole',
    metadata: { name: s.name, labels: { ...BOOTSTRAP_LABELS, ...(s.labels ?? {}) }, annotations: { [AUTOUPDATE]: 'true' } },
    ...(s.aggregateFrom ? { aggregationRule: { clusterRoleSelectors: [{ matchLabels: { [AGGREGATE_TO(s.aggregateFrom)]: 'true' } }] } } : {}),
    rules: s.rules,
  };
}

export function clusterRoleBindingObject(b: { name: string; role: string; groups?: string[]; users?: string[] }): Record<string, unknown> {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding',
    metadata: { name: b.name, labels: { ...BOOTSTRAP_LABELS }, annotations: { [AUTOUPDATE]: 'true' } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: b.role },
    subjects: [
      ...(b.groups ?? []).map((g) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: g })),
      ...(b.users ?? []).map((u) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: u })),
    ],
  };
}
