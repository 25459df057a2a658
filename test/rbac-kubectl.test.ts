// Authentication and RBAC with the real kubectl, on a 1-server cluster started
// with --authorization-mode RBAC --token-auth-file: the admin (system:masters)
// can do everything; a user bound to a namespaced Role reads ConfigMaps there
// and is refused Secrets and other namespaces with Kubernetes' message;
// `kubectl auth can-i [--list]` and `auth whoami`; impersonation allowed and
// refused; anonymous reaches only the health and version endpoints; an invalid
// token is 401; escalation and binding beyond one's rights are refused; a
// labelled ClusterRole is aggregated into view (and, through edit, admin).
// kubectl 1.32 sends a bearer token only over HTTPS: the server serves TLS
// (`flotilla certs` makes the CA and its certificate) and each user is a
// kubeconfig that trusts the CA and carries `token:`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing, runKubectl } from '../harness/kubectl.ts';
import { FLOTILLA_BIN, ROOT, tempDir, waitFor } from '../harness/procs.ts';

const skip = kubectlMissing(t);

t.test('RBAC with kubectl', { skip, timeout: 120_000 }, async (t) => {
  const work = tempDir('rbac');
  const cache = join(work, 'kube-cache');
  mkdirSync(cache);
  const tokens = { admin: 'tok-admin-0123456789', alice: 'tok-alice-0123456789', eve: 'tok-eve-0123456789' };
  const tokenFile = join(work, 'tokens.csv');
  writeFileSync(tokenFile, [
    `${tokens.admin},admin,1,"system:masters"`,
    `${tokens.alice},alice,2,"team-readers,people"`,
    `${tokens.eve},eve,3`,
  ].join('\n'), { mode: 0o600 });
  const pki = join(work, 'pki');
  const certs = spawnSync(process.execPath, [FLOTILLA_BIN, 'certs', '--dir', pki, '--server-ip', '127.0.0.1', '--client', 'admin/system:masters'], { cwd: ROOT, encoding: 'utf8' });
  t.equal(certs.status, 0, `flotilla certs: ${certs.stderr}`);
  const cluster = await FlotillaCluster.start(1, { tls: { pkiDir: pki }, args: ['--authorization-mode', 'RBAC', '--token-auth-file', tokenFile], adminToken: tokens.admin });
  t.teardown(() => cluster.stop());
  const url = cluster.urls[0];
  t.match(url, /^https:\/\//);
  // Requests of no one in particular: they trust the CA and present nothing.
  const caOnly = new Agent({ connect: { ca: readFileSync(join(pki, 'ca.crt')) } });
  t.teardown(() => caOnly.close());
  const kubeconfig = (user: keyof typeof tokens | 'anonymous') => {
    const file = join(work, `${user}.kubeconfig`);
    writeFileSync(file, [
      'apiVersion: v1', 'kind: Config', 'current-context: c',
      'clusters:', '- name: c', '  cluster:', `    server: ${url}`, `    certificate-authority: ${join(pki, 'ca.crt')}`,
      'contexts:', '- name: c', '  context:', '    cluster: c', `    user: ${user}`, '    namespace: default',
      'users:', `- name: ${user}`, user === 'anonymous' ? '  user: {}' : `  user:\n    token: ${tokens[user]}`, '',
    ].join('\n'));
    return file;
  };
  const as = (user: keyof typeof tokens | 'anonymous') => {
    const file = kubeconfig(user);
    return (...args: string[]) => runKubectl(file, cache, args);
  };
  const admin = as('admin');
  const alice = as('alice');
  const eve = as('eve');
  const ok = async (what: string, p: Promise<{ code: number | null; out: string; err: string }>) => {
    const r = await p;
    t.equal(r.code, 0, `${what}: ${r.err}`);
    return r.out;
  };
  const refused = async (what: string, p: Promise<{ code: number | null; out: string; err: string }>, message: string) => {
    const r = await p;
    t.not(r.code, 0, `${what} is refused`);
    t.match(r.err, message, `${what}: ${r.err.trim()}`);
  };
  const apply = (run: typeof admin, obj: object) => {
    const f = join(work, `obj-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, JSON.stringify(obj));
    return run('apply', '-f', f);
  };

  // The leader bootstraps the default policy and aggregates view.
  await waitFor('the default roles, view aggregated', async () => {
    const r = await admin('get', 'clusterrole', 'view', '-o', 'jsonpath={.rules[*].resources}');
    return r.code === 0 && r.out.includes('configmaps');
  }, 30_000, 200);

  // ---------------------------------------------------------------- the admin
  await ok('admin creates namespaces', admin('create', 'namespace', 'team'));
  await ok('admin creates a namespace', admin('create', 'namespace', 'other'));
  await ok('admin creates a ConfigMap', admin('-n', 'team', 'create', 'configmap', 'settings', '--from-literal=a=1'));
  await ok('admin creates a Secret', admin('-n', 'team', 'create', 'secret', 'generic', 'pw', '--from-literal=p=x'));
  await ok('admin lists nodes (cluster scope)', admin('get', 'nodes'));
  await ok('admin creates a Role', admin('-n', 'team', 'create', 'role', 'cm-reader', '--verb=get,list,watch', '--resource=configmaps'));
  await ok('admin binds it to alice', admin('-n', 'team', 'create', 'rolebinding', 'alice-cm', '--role=cm-reader', '--user=alice'));

  // ---------------------------------------------------------------- a user with a namespaced Role
  t.match(await ok('alice lists ConfigMaps in team', alice('-n', 'team', 'get', 'configmaps')), 'settings');
  await ok('alice gets one ConfigMap', alice('-n', 'team', 'get', 'configmap', 'settings'));
  await refused('alice lists Secrets in team', alice('-n', 'team', 'get', 'secrets'),
    'Error from server (Forbidden): secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "team"');
  await refused('alice gets a Secret by name', alice('-n', 'team', 'get', 'secret', 'pw'),
    'secrets "pw" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "team"');
  await refused('alice lists ConfigMaps in another namespace', alice('-n', 'other', 'get', 'configmaps'),
    'configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "other"');
  await refused('alice lists namespaces (cluster scope)', alice('get', 'namespaces'),
    'namespaces is forbidden: User "alice" cannot list resource "namespaces" in API group "" at the cluster scope');
  await refused('alice deletes a ConfigMap', alice('-n', 'team', 'delete', 'configmap', 'settings'),
    'configmaps "settings" is forbidden: User "alice" cannot delete resource "configmaps" in API group "" in the namespace "team"');

  // ---------------------------------------------------------------- can-i, whoami
  t.equal((await alice('auth', 'can-i', 'list', 'configmaps', '-n', 'team')).out.trim(), 'yes', 'can-i list configmaps in team: yes');
  const no = await alice('auth', 'can-i', 'list', 'secrets', '-n', 'team');
  t.equal(no.out.trim(), 'no', 'can-i list secrets: no');
  t.equal(no.code, 1, 'can-i answers no with exit code 1');
  t.equal((await alice('auth', 'can-i', 'list', 'configmaps', '-n', 'other')).out.trim(), 'no', 'can-i in another namespace: no');
  t.equal((await admin('auth', 'can-i', '*', '*')).out.trim(), 'yes', 'admin can do everything');
  t.equal((await admin('auth', 'can-i', 'list', 'secrets', '-n', 'team', '--as', 'alice')).out.trim(), 'no', 'can-i --as alice');
  const list = await ok('can-i --list', alice('auth', 'can-i', '--list', '-n', 'team'));
  t.match(list, /configmaps\s+\[\]\s+\[\]\s+\[get list watch\]/, 'the Role\'s rule is listed');
  t.match(list, /selfsubjectaccessreviews\.authorization\.k8s\.io\s+\[\]\s+\[\]\s+\[create\]/, 'system:basic-user is listed');
  t.notMatch(list, /secrets/, 'nothing about secrets');
  const whoami = await ok('auth whoami', alice('auth', 'whoami', '-o', 'json'));
  const info = JSON.parse(whoami).status.userInfo;
  t.same({ username: info.username, uid: info.uid, groups: info.groups }, { username: 'alice', uid: '2', groups: ['team-readers', 'people', 'system:authenticated'] }, 'whoami: the token file\'s user, uid and groups, plus system:authenticated');

  // ---------------------------------------------------------------- impersonation
  t.match(await ok('admin --as alice reads ConfigMaps', admin('-n', 'team', 'get', 'configmaps', '--as', 'alice')), 'settings');
  await refused('admin --as alice is alice for Secrets', admin('-n', 'team', 'get', 'secrets', '--as', 'alice'),
    'secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "team"');
  const asGroup = JSON.parse(await ok('--as-group', admin('auth', 'whoami', '-o', 'json', '--as', 'carol', '--as-group', 'devs')));
  t.same(asGroup.status.userInfo.groups, ['devs', 'system:authenticated'], 'impersonated groups');
  await refused('alice may not impersonate', alice('-n', 'team', 'get', 'configmaps', '--as', 'admin'),
    'users "admin" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope');
  // Impersonation replaces the groups: bob in group x holds nothing in team.
  await refused('bob impersonated with a group', admin('-n', 'team', 'get', 'configmaps', '--as', 'bob', '--as-group', 'x'), 'configmaps is forbidden: User "bob"');

  // ---------------------------------------------------------------- anonymous
  for (const p of ['/healthz', '/readyz', '/livez', '/version']) {
    const r = await request(`${url}${p}`, { dispatcher: caOnly });
    t.equal(r.statusCode, 200, `anonymous GET ${p}`);
    await r.body.dump();
  }
  for (const [p, msg] of [
    ['/api', 'forbidden: User "system:anonymous" cannot get path "/api"'],
    ['/api/v1/namespaces/default/pods', 'pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "default"'],
    ['/apis/apps/v1/deployments', 'deployments.apps is forbidden: User "system:anonymous" cannot list resource "deployments" in API group "apps" at the cluster scope'],
    ['/api/v1/nosuchthings', 'nosuchthings is forbidden: User "system:anonymous"'],
  ]) {
    const r = await request(`${url}${p}`, { dispatcher: caOnly });
    const body = await r.body.json() as { message: string; reason: string };
    t.equal(r.statusCode, 403, `anonymous GET ${p} is 403`);
    t.equal(body.reason, 'Forbidden');
    t.match(body.message, msg, body.message);
  }
    // (kubectl itself is not asked here: over HTTPS with no credentials at all it prompts for a username on stdin.)
  const bad = await request(`${url}/api/v1/namespaces`, { dispatcher: caOnly, headers: { authorization: 'Bearer not-a-token' } });
  t.equal(bad.statusCode, 401, 'an unknown token is 401, not anonymous');
  await bad.body.dump();

  // ---------------------------------------------------------------- escalation
  await ok('eve may manage Roles in team', apply(admin, {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'role-manager', namespace: 'team' },
    rules: [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles', 'rolebindings'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] }, { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
  }));
  await ok('bound', admin('-n', 'team', 'create', 'rolebinding', 'eve-rm', '--role=role-manager', '--user=eve'));
  await ok('eve creates a Role within her rights', eve('-n', 'team', 'create', 'role', 'cm-get', '--verb=get', '--resource=configmaps'));
  await refused('eve creates a Role beyond her rights', eve('-n', 'team', 'create', 'role', 'secret-get', '--verb=get', '--resource=secrets'),
    'roles.rbac.authorization.k8s.io "secret-get" is forbidden: user "eve" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held');
  await ok('eve binds a role she holds', eve('-n', 'team', 'create', 'rolebinding', 'x-cm', '--role=cm-get', '--user=x'));
  await refused('eve binds admin', eve('-n', 'team', 'create', 'rolebinding', 'x-admin', '--clusterrole=admin', '--user=x'),
    'is attempting to grant RBAC permissions not currently held');
  await refused('eve widens a Role', eve('-n', 'team', 'patch', 'role', 'cm-get', '--type=json', '-p', '[{"op":"add","path":"/rules/0/resources/-","value":"secrets"}]'),
    'is attempting to grant RBAC permissions not currently held');
  t.equal((await admin('-n', 'team', 'get', 'role', 'secret-get')).code, 1, 'the refused Role was not stored');

  // ---------------------------------------------------------------- aggregation
  await ok('a ClusterRole labelled aggregate-to-view', apply(admin, {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole',
    metadata: { name: 'widget-reader', labels: { 'rbac.authorization.k8s.io/aggregate-to-view': 'true' } },
    rules: [{ apiGroups: ['example.com'], resources: ['widgets'], verbs: ['get', 'list'] }],
  }));
  for (const role of ['view', 'edit', 'admin']) {
    await waitFor(`widgets aggregated into ${role}`, async () => (await admin('get', 'clusterrole', role, '-o', 'json')).out.includes('widgets'), 20_000, 200);
    t.pass(`widgets aggregated into ${role}`);
  }
  await ok('alice gets view in other', admin('-n', 'other', 'create', 'rolebinding', 'alice-view', '--clusterrole=view', '--user=alice'));
  // `kubectl auth can-i` cannot name a group that discovery does not list (it sends "widgets.example.com" as the
  // resource): ask with a SelfSubjectAccessReview instead.
  const review = join(work, 'ssar-widgets.json');
  writeFileSync(review, JSON.stringify({ apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { namespace: 'other', verb: 'list', group: 'example.com', resource: 'widgets' } } }));
  const answer = JSON.parse(await ok('alice reviews her access to widgets', alice('create', '--raw', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', '-f', review))) as { status?: { allowed?: boolean } };
  t.equal(answer.status?.allowed, true, 'the aggregated rule applies');
  // Discovery lists the review resources, so kubectl maps the kind itself (`create -f`, `api-resources`).
  const mapped = JSON.parse(await ok('kubectl create -f of a SelfSubjectAccessReview', alice('create', '-f', review, '-o', 'json'))) as { status?: { allowed?: boolean } };
  t.equal(mapped.status?.allowed, true, 'the same answer through the REST mapping');
  const listed = await ok('api-resources of authorization.k8s.io', admin('api-resources', '--api-group=authorization.k8s.io', '-o', 'name'));
  t.same(listed.trim().split('\n').sort(), ['selfsubjectaccessreviews.authorization.k8s.io', 'selfsubjectrulesreviews.authorization.k8s.io', 'subjectaccessreviews.authorization.k8s.io'], 'the authorization.k8s.io review resources');
  t.equal((await alice('auth', 'can-i', 'list', 'secrets', '-n', 'other')).out.trim(), 'no', 'view does not read Secrets');
});
