// Authentication and authorization over the API, on a 1-server cluster
// started with --authorization-mode Node,RBAC and a static token file:
// the admin (system:masters) can do everything; a user bound to a namespaced
// Role reads ConfigMaps there and is refused Secrets and other namespaces with
// Kubernetes' message; anonymous reaches only the health endpoints; an unknown
// token is 401; escalation is refused; a labelled ClusterRole is aggregated;
// the component roles allow what each component does and nothing more
// (SubjectAccessReview); and a node agent's identity reads only what the pods
// bound to its node use and writes only its own objects (Node authorizer).
// (kubectl sends bearer tokens only over HTTPS, so this test speaks HTTP with
// undici; the kubectl flows run over TLS in the TLS test.)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { tempDir, waitFor } from '../harness/procs.ts';

const TOKENS = {
  admin: 'tok-admin-0123456789',
  alice: 'tok-alice-0123456789',
  eve: 'tok-eve-0123456789',
  n1: 'tok-node1-0123456789',
  n2: 'tok-node2-0123456789',
};
type Who = keyof typeof TOKENS | 'anonymous';

t.test('RBAC and the Node authorizer', { timeout: 180_000 }, async (t) => {
  const work = tempDir('rbac');
  const tokenFile = join(work, 'tokens.csv');
  writeFileSync(tokenFile, [
    `${TOKENS.admin},admin,1,"system:masters"`,
    `${TOKENS.alice},alice,2,"team-readers,people"`,
    `${TOKENS.eve},eve,3`,
    `${TOKENS.n1},system:node:n1,4,"system:nodes"`,
    `${TOKENS.n2},system:node:n2,5,"system:nodes"`,
  ].join('\n'), { mode: 0o600 });
  const cluster = await FlotillaCluster.start(1, { args: ['--authorization-mode', 'Node,RBAC', '--token-auth-file', tokenFile], adminToken: TOKENS.admin });
  t.teardown(() => cluster.stop());
  const url = cluster.urls[0];

  const call = async (who: Who, method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const headers: Record<string, string> = {};
    if (who !== 'anonymous') headers.authorization = `Bearer ${TOKENS[who]}`;
    if (body !== undefined) headers['content-type'] = contentType;
    const r = await request(`${url}${path}`, { method: method as 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.body.text();
    let json: Record<string, unknown> = {};
    try { json = JSON.parse(text); } catch { /* health endpoints answer text */ }
    return { status: r.statusCode, json, text };
  };
  const ok = async (what: string, p: ReturnType<typeof call>) => {
    const r = await p;
    t.ok(r.status >= 200 && r.status < 300, `${what}: ${r.status} ${r.status >= 300 ? r.text : ''}`);
    return r.json;
  };
  const refused = async (what: string, p: ReturnType<typeof call>, message: string | RegExp, status = 403) => {
    const r = await p;
    t.equal(r.status, status, `${what} is ${status}`);
    t.match(String(r.json.message ?? r.text), message, `${what}: ${r.json.message ?? r.text}`);
  };
  const rbac = '/apis/rbac.authorization.k8s.io/v1';

  // The leader bootstraps the default policy and aggregates view.
  await waitFor('the default roles, view aggregated', async () => {
    const r = await call('admin', 'GET', `${rbac}/clusterroles/view`);
    return r.status === 200 && JSON.stringify(r.json.rules ?? []).includes('configmaps');
  }, 30_000, 200);

  // ---------------------------------------------------------------- admin, anonymous, bad tokens
  for (const ns of ['team', 'other']) await ok(`admin creates namespace ${ns}`, call('admin', 'POST', '/api/v1/namespaces', { metadata: { name: ns } }));
  await ok('admin creates a ConfigMap', call('admin', 'POST', '/api/v1/namespaces/team/configmaps', { metadata: { name: 'settings' }, data: { a: '1' } }));
  for (const name of ['pw', 'used-by-n1', 'unused']) {
    await ok(`admin creates Secret ${name}`, call('admin', 'POST', '/api/v1/namespaces/team/secrets', { metadata: { name }, stringData: { p: 'x' } }));
  }
  for (const p of ['/healthz', '/readyz', '/livez', '/version']) t.equal((await call('anonymous', 'GET', p)).status, 200, `anonymous GET ${p}`);
  await refused('anonymous discovery', call('anonymous', 'GET', '/api'), 'forbidden: User "system:anonymous" cannot get path "/api"');
  await refused('anonymous lists pods', call('anonymous', 'GET', '/api/v1/namespaces/default/pods'),
    'pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "default"');
  await refused('anonymous lists deployments', call('anonymous', 'GET', '/apis/apps/v1/deployments'),
    'deployments.apps is forbidden: User "system:anonymous" cannot list resource "deployments" in API group "apps" at the cluster scope');
  const bad = await request(`${url}/api/v1/namespaces`, { headers: { authorization: 'Bearer not-a-token' } });
  t.equal(bad.statusCode, 401, 'an unknown token is 401, never anonymous');
  await bad.body.dump();

  // ---------------------------------------------------------------- a user with a namespaced Role
  await ok('admin creates a Role', call('admin', 'POST', `${rbac}/namespaces/team/roles`, {
    metadata: { name: 'cm-reader' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
  }));
  await ok('admin binds it to alice', call('admin', 'POST', `${rbac}/namespaces/team/rolebindings`, {
    metadata: { name: 'alice-cm' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cm-reader' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'alice' }],
  }));
  const cms = await ok('alice lists ConfigMaps in team', call('alice', 'GET', '/api/v1/namespaces/team/configmaps'));
  t.same((cms.items as { metadata: { name: string } }[]).map((i) => i.metadata.name), ['settings']);
  await refused('alice lists Secrets', call('alice', 'GET', '/api/v1/namespaces/team/secrets'),
    'secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "team"');
  await refused('alice gets a Secret', call('alice', 'GET', '/api/v1/namespaces/team/secrets/pw'),
    'secrets "pw" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "team"');
  await refused('alice in another namespace', call('alice', 'GET', '/api/v1/namespaces/other/configmaps'),
    'configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "other"');
  await refused('alice deletes', call('alice', 'DELETE', '/api/v1/namespaces/team/configmaps/settings'),
    'configmaps "settings" is forbidden: User "alice" cannot delete resource "configmaps" in API group "" in the namespace "team"');
  const review = await ok('alice asks who she is', call('alice', 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }));
  t.same((review.status as { userInfo: unknown }).userInfo, { username: 'alice', uid: '2', groups: ['team-readers', 'people', 'system:authenticated'] }, 'SelfSubjectReview');

  // ---------------------------------------------------------------- escalation
  await ok('eve may manage Roles in team', call('admin', 'POST', `${rbac}/namespaces/team/roles`, {
    metadata: { name: 'role-manager' },
    // Not '*': that would include the escalate and bind verbs.
    rules: [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles', 'rolebindings'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] }, { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
  }));
  await ok('bound', call('admin', 'POST', `${rbac}/namespaces/team/rolebindings`, {
    metadata: { name: 'eve-rm' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'role-manager' },
    subjects: [{ kind: 'User', name: 'eve' }],
  }));
  await ok('eve creates a Role within her rights', call('eve', 'POST', `${rbac}/namespaces/team/roles`, {
    metadata: { name: 'cm-get' }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
  }));
  await refused('eve creates a Role beyond her rights', call('eve', 'POST', `${rbac}/namespaces/team/roles`, {
    metadata: { name: 'secret-get' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
  }), 'roles.rbac.authorization.k8s.io "secret-get" is forbidden: user "eve" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held');
  await refused('eve binds admin', call('eve', 'POST', `${rbac}/namespaces/team/rolebindings`, {
    metadata: { name: 'x-admin' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' }, subjects: [{ kind: 'User', name: 'x' }],
  }), 'is attempting to grant RBAC permissions not currently held');
  t.equal((await call('admin', 'GET', `${rbac}/namespaces/team/roles/secret-get`)).status, 404, 'the refused Role was not stored');

  // ---------------------------------------------------------------- aggregation
  await ok('a ClusterRole labelled aggregate-to-view', call('admin', 'POST', `${rbac}/clusterroles`, {
    metadata: { name: 'widget-reader', labels: { 'rbac.authorization.k8s.io/aggregate-to-view': 'true' } },
    rules: [{ apiGroups: ['example.com'], resources: ['widgets'], verbs: ['get', 'list'] }],
  }));
  for (const role of ['view', 'edit', 'admin']) {
    await waitFor(`widgets aggregated into ${role}`, async () => (await call('admin', 'GET', `${rbac}/clusterroles/${role}`)).text.includes('widgets'), 20_000, 200);
    t.pass(`widgets aggregated into ${role}`);
  }

  // ---------------------------------------------------------------- component roles
  const can = async (user: string, attrs: Record<string, string>) => {
    const r = await ok(`SubjectAccessReview for ${user}`, call('admin', 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec: { user, resourceAttributes: attrs },
    }));
    return (r.status as { allowed: boolean }).allowed;
  };
  await waitFor('the component roles', async () => (await call('admin', 'GET', `${rbac}/clusterrolebindings/system:kube-scheduler`)).status === 200, 20_000, 200);
  t.ok(await can('system:kube-scheduler', { verb: 'create', resource: 'pods', subresource: 'binding', namespace: 'team' }), 'the scheduler binds pods');
  t.ok(await can('system:kube-scheduler', { verb: 'update', resource: 'leases', group: 'coordination.k8s.io', namespace: 'kube-system', name: 'kube-scheduler' }), 'the scheduler renews its lease');
  t.notOk(await can('system:kube-scheduler', { verb: 'update', resource: 'leases', group: 'coordination.k8s.io', namespace: 'kube-system', name: 'kube-controller-manager' }), 'but not the controller manager\'s');
  t.notOk(await can('system:kube-scheduler', { verb: 'get', resource: 'secrets', namespace: 'team', name: 'pw' }), 'the scheduler reads no Secret');
  t.notOk(await can('system:kube-scheduler', { verb: 'create', resource: 'deployments', group: 'apps', namespace: 'team' }), 'the scheduler creates no Deployment');
  t.ok(await can('system:kube-controller-manager', { verb: 'create', resource: 'pods', namespace: 'team' }), 'the controller manager creates pods');
  t.ok(await can('system:kube-controller-manager', { verb: 'update', resource: 'deployments', subresource: 'status', group: 'apps', namespace: 'team' }), 'and writes Deployment status');
  // Its serviceaccount and token controllers list and watch Secrets (Kubernetes gives them their own ServiceAccounts; here one identity runs every controller).
  t.ok(await can('system:kube-controller-manager', { verb: 'list', resource: 'secrets', namespace: 'team' }), 'the controller manager lists Secrets');
  t.notOk(await can('system:kube-controller-manager', { verb: 'create', resource: 'clusterrolebindings', group: 'rbac.authorization.k8s.io' }), 'nor grants rights');
  t.ok(await can('system:flotilla-ingress', { verb: 'get', resource: 'secrets', namespace: 'team', name: 'pw' }), 'the ingress proxy reads TLS Secrets');
  t.notOk(await can('system:flotilla-ingress', { verb: 'create', resource: 'pods', namespace: 'team' }), 'but writes no pod');
  t.ok(await can('system:flotilla-dns', { verb: 'watch', resource: 'services' }), 'DNS watches Services');
  t.notOk(await can('system:flotilla-dns', { verb: 'list', resource: 'secrets' }), 'DNS lists no Secret');

  // ---------------------------------------------------------------- node identities
  const node = (name: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { allocatable: { cpu: '4', memory: '8Gi', pods: '110' } } });
  await ok('n1 registers its Node', call('n1', 'POST', '/api/v1/nodes', node('n1')));
  await refused('n1 registers another Node', call('n1', 'POST', '/api/v1/nodes', node('n9')), 'nodes "n9" is forbidden: node "n1" can only modify its own Node object');
  await ok('n2 registers its Node', call('n2', 'POST', '/api/v1/nodes', node('n2')));
  await ok('n1 reads every Node', call('n1', 'GET', '/api/v1/nodes'));
  await ok('n1 updates its status', call('n1', 'PATCH', '/api/v1/nodes/n1/status', { status: { conditions: [{ type: 'Ready', status: 'True' }] } }, 'application/merge-patch+json'));
  await refused('n1 updates n2', call('n1', 'PATCH', '/api/v1/nodes/n2/status', { status: { conditions: [{ type: 'Ready', status: 'False' }] } }, 'application/merge-patch+json'),
    'nodes "n2" is forbidden: User "system:node:n1" cannot patch resource "nodes/status" in API group "" at the cluster scope');
  await refused('n1 deletes n2', call('n1', 'DELETE', '/api/v1/nodes/n2'), 'User "system:node:n1" cannot delete resource "nodes"');
  const lease = (name: string) => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'kube-node-lease' }, spec: { holderIdentity: name } });
  await ok('n1 creates its Lease', call('n1', 'POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', lease('n1')));
  await refused('n1 creates n2\'s Lease', call('n1', 'POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', lease('n2')), 'node "n1" can only access its own lease');

  const pod = (name: string, nodeName: string, secret?: string) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'team' },
    spec: {
      nodeName, containers: [{ name: 'c', image: 'busybox', command: ['sleep', '1000'], ...(secret ? { env: [{ name: 'P', valueFrom: { secretKeyRef: { name: secret, key: 'p' } } }] } : {}) }],
      volumes: [{ name: 'cfg', configMap: { name: 'settings' } }],
    },
  });
  await ok('a pod bound to n1 uses a Secret', call('admin', 'POST', '/api/v1/namespaces/team/pods', pod('on-n1', 'n1', 'used-by-n1')));
  await ok('a pod bound to n2', call('admin', 'POST', '/api/v1/namespaces/team/pods', pod('on-n2', 'n2')));
  await ok('n1 reads the Secret its pod uses', call('n1', 'GET', '/api/v1/namespaces/team/secrets/used-by-n1'));
  await ok('n1 reads the ConfigMap its pod mounts', call('n1', 'GET', '/api/v1/namespaces/team/configmaps/settings'));
  await refused('n1 reads a Secret no pod of its uses', call('n1', 'GET', '/api/v1/namespaces/team/secrets/unused'),
    'secrets "unused" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "team"');
  await refused('n2 reads n1\'s Secret', call('n2', 'GET', '/api/v1/namespaces/team/secrets/used-by-n1'), 'User "system:node:n2" cannot get resource "secrets"');
  await refused('n1 lists Secrets', call('n1', 'GET', '/api/v1/namespaces/team/secrets'), 'User "system:node:n1" cannot list resource "secrets"');
  await refused('n1 lists every pod', call('n1', 'GET', '/api/v1/pods'), 'User "system:node:n1" cannot list resource "pods"');
  const mine = await ok('n1 lists its own pods', call('n1', 'GET', `/api/v1/pods?fieldSelector=${encodeURIComponent('spec.nodeName=n1')}`));
  t.same((mine.items as { metadata: { name: string } }[]).map((i) => i.metadata.name), ['on-n1'], 'only its pods');
  await refused('n1 lists n2\'s pods', call('n1', 'GET', `/api/v1/pods?fieldSelector=${encodeURIComponent('spec.nodeName=n2')}`), 'cannot list resource "pods"');
  await ok('n1 reads its pod', call('n1', 'GET', '/api/v1/namespaces/team/pods/on-n1'));
  await refused('n1 reads n2\'s pod', call('n1', 'GET', '/api/v1/namespaces/team/pods/on-n2'), 'pods "on-n2" is forbidden: User "system:node:n1" cannot get resource "pods"');
  await ok('n1 reports its pod\'s status', call('n1', 'PATCH', '/api/v1/namespaces/team/pods/on-n1/status', { status: { phase: 'Running' } }, 'application/merge-patch+json'));
  await refused('n1 reports n2\'s pod\'s status', call('n1', 'PATCH', '/api/v1/namespaces/team/pods/on-n2/status', { status: { phase: 'Failed' } }, 'application/merge-patch+json'),
    'cannot patch resource "pods/status"');
  await refused('n1 changes its pod\'s spec', call('n1', 'PATCH', '/api/v1/namespaces/team/pods/on-n1', { metadata: { labels: { x: 'y' } } }, 'application/merge-patch+json'), 'cannot patch resource "pods"');
  await refused('n1 creates a pod', call('n1', 'POST', '/api/v1/namespaces/team/pods', pod('sneaky', 'n1')), 'cannot create resource "pods"');
  await refused('n1 deletes n2\'s pod', call('n1', 'DELETE', '/api/v1/namespaces/team/pods/on-n2'), 'cannot delete resource "pods"');
  await ok('n1 watches Services (its proxy)', call('n1', 'GET', '/api/v1/services'));
  // What the agent really reads and writes besides: its pods' ServiceAccounts, kube-root-ca.crt where it has pods, its cluster-IP proxy's Lease.
  const allowed = async (what: string, p: ReturnType<typeof call>) => {
    const r = await p;
    t.not(r.status, 403, `${what} (authorized: ${r.status})`);
  };
  await allowed('n1 reads the ServiceAccount its pod runs as', call('n1', 'GET', '/api/v1/namespaces/team/serviceaccounts/default'));
  await refused('n1 reads another ServiceAccount', call('n1', 'GET', '/api/v1/namespaces/team/serviceaccounts/builder'), 'cannot get resource "serviceaccounts"');
  await allowed('n1 reads kube-root-ca.crt where it has pods', call('n1', 'GET', '/api/v1/namespaces/team/configmaps/kube-root-ca.crt'));
  await refused('n1 reads kube-root-ca.crt where it has none', call('n1', 'GET', '/api/v1/namespaces/kube-public/configmaps/kube-root-ca.crt'), 'cannot get resource "configmaps"');
  const proxyLease = (name: string) => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'kube-system' }, spec: { holderIdentity: 'n1' } });
  await ok('n1 creates a cluster-IP proxy Lease', call('n1', 'POST', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases', proxyLease('flotilla-proxy-host1')));
  await ok('n1 reads it', call('n1', 'GET', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/flotilla-proxy-host1'));
  await refused('n1 creates another kube-system Lease', call('n1', 'POST', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases', proxyLease('kube-scheduler')),
    'node "n1" can only create the cluster-IP proxy\'s leases (flotilla-proxy-*) in kube-system');
  await refused('n1 reads the scheduler\'s Lease', call('n1', 'GET', '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler'), 'cannot get resource "leases"');

  // The graph follows the store: once the pod is gone, so is the right to its Secret.
  await ok('admin deletes the pod on n1', call('admin', 'DELETE', '/api/v1/namespaces/team/pods/on-n1?gracePeriodSeconds=0'));
  await waitFor('the pod gone', async () => (await call('admin', 'GET', '/api/v1/namespaces/team/pods/on-n1')).status === 404, 20_000, 100);
  await refused('n1 no longer reads that Secret', call('n1', 'GET', '/api/v1/namespaces/team/secrets/used-by-n1'), 'cannot get resource "secrets"');
});
