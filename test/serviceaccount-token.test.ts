// ServiceAccount tokens with the real kubectl against a real server running
// RBAC with a signing key: `kubectl create token` (TokenRequest, authorized as
// create on serviceaccounts/token), the token authenticates as the
// ServiceAccount (`kubectl auth whoami`), RBAC applies to it with Kubernetes'
// Forbidden messages, and an expired, tampered, foreign-key, wrong-audience
// or orphaned token (its ServiceAccount recreated, its bound pod deleted) is
// 401. A server without a signing key answers TokenRequest with a clear error.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing, runKubectl } from '../harness/kubectl.ts';
import { tempDir, waitFor } from '../harness/procs.ts';
import { TlsFront } from './support/tls-front.ts';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { ServiceAccountTokenManager } from '../agents/agent/service-account-token.ts';
import { cleanupPodVolumes, preparePodVolumes } from '../agents/agent/runtime/volumes.ts';
import { silentLogger } from '../agents/informer/index.ts';
import type { Pod } from '../agents/informer/types.ts';
import { kindByName } from '../api/kinds/index.ts';

const ADMIN_TOKEN = 'admin-secret-token';
const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const NS = 'team';
const SA = 'reader';
const USER = `system:serviceaccount:${NS}:${SA}`;

const pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }) as string;

t.test('ServiceAccount tokens', { skip: kubectlMissing(t) ?? false }, async (t) => {
  const dir = tempDir('sa-token');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const signing = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const foreign = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(dir, 'sa.key'), pem(signing.privateKey), { mode: 0o600 });
  writeFileSync(join(dir, 'tokens.csv'), `${ADMIN_TOKEN},admin,admin-uid,"system:masters"\n`);
  const cluster = await FlotillaCluster.start(1, {
    adminToken: ADMIN_TOKEN,
    args: ['--authorization-mode', 'RBAC', '--token-auth-file', join(dir, 'tokens.csv'), '--service-account-signing-key-file', join(dir, 'sa.key')],
  });
  t.teardown(() => cluster.stop());
  // kubectl sends tokens only over HTTPS.
  const front = await TlsFront.start(cluster.urls[0], dir);
  t.teardown(() => front.stop());
  const kubeconfig = front.writeKubeconfig(join(dir, 'kubeconfig'), ADMIN_TOKEN);
  const cache = join(dir, 'kube-cache');
  const kubectl = (...args: string[]) => runKubectl(kubeconfig, cache, args);
  const ok = async (...args: string[]) => {
    const r = await kubectl(...args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.err}`);
    return r.out;
  };
  const as = (token: string, ...args: string[]) => kubectl('--token', token, ...args);

  writeFileSync(join(dir, 'setup.yaml'), `
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ${SA}, namespace: ${NS}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: ${NS}}
data: {mode: fast}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: elsewhere, namespace: other}
data: {where: other}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: ${NS}}
stringData: {password: hunter2}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader, namespace: ${NS}}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: cm-reader, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}
subjects: [{kind: ServiceAccount, name: ${SA}, namespace: ${NS}}]
`);
  await ok('apply', '-f', join(dir, 'setup.yaml'));
  const saUid = (await ok('-n', NS, 'get', 'serviceaccount', SA, '-o', 'jsonpath={.metadata.uid}')).trim();

  const token = (await ok('-n', NS, 'create', 'token', SA)).trim();

  await t.test('kubectl create token: a JWT with Kubernetes\' claims, 1 h by default', async (t) => {
    const header = decodeProtectedHeader(token);
    t.equal(header.alg, 'ES256');
    t.type(header.kid, 'string');
    const c = decodeJwt(token);
    t.equal(c.iss, ISSUER);
    t.equal(c.sub, USER);
    t.same(c.aud, [ISSUER], 'the API\'s audience by default');
    t.equal(c.exp! - c.iat!, 3600);
    t.equal(c.nbf, c.iat);
    t.match(c.jti, /^[0-9a-f-]{36}$/);
    t.same(c['kubernetes.io'], { namespace: NS, serviceaccount: { name: SA, uid: saUid } });
  });

  await t.test('--duration and --audience; less than 10 minutes is refused', async (t) => {
    const c = decodeJwt((await ok('-n', NS, 'create', 'token', SA, '--duration', '10m', '--audience', 'vault', '--audience', 'other')).trim());
    t.equal(c.exp! - c.iat!, 600);
    t.same(c.aud, ['vault', 'other']);
    const r = await kubectl('-n', NS, 'create', 'token', SA, '--duration', '5m');
    t.not(r.code, 0);
    t.match(r.err, 'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes');
    const missing = await kubectl('-n', NS, 'create', 'token', 'nobody');
    t.match(missing.err, 'serviceaccounts "nobody" not found');
    // A pod's token projection is held to the same rule when the pod is created.
    const pod = await kubectl('-n', NS, 'run', 'short', '--image', 'busybox', '--restart', 'Never',
      '--overrides={"spec":{"volumes":[{"name":"t","projected":{"sources":[{"serviceAccountToken":{"path":"token","expirationSeconds":60}}]}}]}}');
    t.match(pod.err, 'spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes');
  });

  await t.test('the token authenticates as the ServiceAccount', async (t) => {
    const r = await as(token, 'auth', 'whoami');
    t.equal(r.code, 0, r.err);
    t.match(r.out, new RegExp(`Username\\s+${USER}\\n`));
    t.match(r.out, new RegExp(`UID\\s+${saUid}\\n`));
    t.match(r.out, /Groups\s+\[system:serviceaccounts system:serviceaccounts:team system:authenticated\]/);
    t.match(r.out, /authentication\.kubernetes\.io\/credential-id\s+\[JTI=/);
  });

  await t.test('RBAC: its Role lets it list ConfigMaps in its namespace, nothing else', async (t) => {
    const list = await as(token, '-n', NS, 'get', 'configmaps', '-o', 'name');
    t.equal(list.code, 0, list.err);
    t.match(list.out, 'configmap/settings');
    const secrets = await as(token, '-n', NS, 'get', 'secrets');
    t.equal(secrets.err.trim(), `Error from server (Forbidden): secrets is forbidden: User "${USER}" cannot list resource "secrets" in API group "" in the namespace "${NS}"`);
    const other = await as(token, '-n', 'other', 'get', 'configmaps');
    t.equal(other.err.trim(), `Error from server (Forbidden): configmaps is forbidden: User "${USER}" cannot list resource "configmaps" in API group "" in the namespace "other"`);
    const mint = await as(token, '-n', NS, 'create', 'token', SA);
    t.equal(mint.err.trim(), `error: failed to create token: serviceaccounts "${SA}" is forbidden: User "${USER}" cannot create resource "serviceaccounts/token" in API group "" in the namespace "${NS}"`, 'TokenRequest is authorized as create on serviceaccounts/token');
  });

  // kubectl's view of a 401 once; the other refusals are checked on the wire (status and Status), which is faster.
  const refusedByKubectl = async (t: Test, tok: string, what: string) => {
    const r = await as(tok, '-n', NS, 'get', 'configmaps');
    t.not(r.code, 0, what);
    t.match(r.err, 'error: You must be logged in to the server (Unauthorized)', `${what}: 401`);
  };
  const refused = async (t: Test, tok: string, what: string) => {
    const r = await request(`${cluster.urls[0]}/api/v1/namespaces/${NS}/configmaps`, { headers: { authorization: `Bearer ${tok}` } });
    const body = await r.body.json() as { reason?: string; message?: string };
    t.equal(r.statusCode, 401, `${what}: 401`);
    t.match(body, { kind: 'Status', reason: 'Unauthorized', message: 'Unauthorized' }, `${what}: the Status says no more than Unauthorized`);
  };
  const forge = (key: KeyObject, claims: Record<string, unknown>, kid = decodeProtectedHeader(token).kid!) =>
    new SignJWT({ ...decodeJwt(token), ...claims }).setProtectedHeader({ alg: 'ES256', kid }).sign(key);

  await t.test('expired, tampered, foreign-key and wrong-audience tokens are 401, never anonymous', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    // Signed with the cluster's own key, as the server would have, two hours ago (past the 60 s leeway).
    await refusedByKubectl(t, await forge(signing.privateKey, { iat: now - 7200, nbf: now - 7200, exp: now - 3600 }), 'expired');
    const [h, , s] = token.split('.');
    const payload = Buffer.from(JSON.stringify({ ...decodeJwt(token), sub: 'system:serviceaccount:kube-system:admin' })).toString('base64url');
    await refused(t, `${h}.${payload}.${s}`, 'tampered');
    await refused(t, await forge(foreign.privateKey, {}), 'signed by another key under our key id');
    await refused(t, await forge(foreign.privateKey, {}, 'foreign'), 'signed by another key');
    await refused(t, (await ok('-n', NS, 'create', 'token', SA, '--audience', 'vault')).trim(), 'meant for another audience');
    await refused(t, 'not-a-jwt', 'not a token at all');
    // Control: the same forge with the real key and fresh times works.
    const fresh = await forge(signing.privateKey, { iat: now, nbf: now, exp: now + 600 });
    t.equal((await as(fresh, '-n', NS, 'get', 'configmaps', '-o', 'name')).code, 0, 'a well-formed token signed by the cluster key authenticates');
  });

  await t.test('a token bound to a pod works until the pod is deleted', async (t) => {
    for (const [name, sa] of [['app', SA], ['other-app', 'default']]) {
      await ok('-n', NS, 'run', name, '--image', 'busybox', '--restart', 'Never', `--overrides={"spec":{"serviceAccountName":"${sa}"}}`, '--', 'sleep', '3600');
    }
    const podUid = (await ok('-n', NS, 'get', 'pod', 'app', '-o', 'jsonpath={.metadata.uid}')).trim();
    const bound = (await ok('-n', NS, 'create', 'token', SA, '--bound-object-kind', 'Pod', '--bound-object-name', 'app')).trim();
    t.same((decodeJwt(bound)['kubernetes.io'] as { pod?: unknown }).pod, { name: 'app', uid: podUid });
    const who = await as(bound, 'auth', 'whoami');
    t.equal(who.code, 0, who.err);
    t.match(who.out, /authentication\.kubernetes\.io\/pod-name\s+\[app\]/);
    t.match(who.out, new RegExp(`authentication\\.kubernetes\\.io/pod-uid\\s+\\[${podUid}\\]`));
    const wrong = await kubectl('-n', NS, 'create', 'token', SA, '--bound-object-kind', 'Pod', '--bound-object-name', 'other-app');
    t.match(wrong.err, `cannot bind token for serviceaccount "${SA}" to pod running with different serviceaccount name.`);
    const stale = await kubectl('-n', NS, 'create', 'token', SA, '--bound-object-kind', 'Pod', '--bound-object-name', 'app', '--bound-object-uid', 'not-the-uid');
    t.match(stale.err, 'the UID in the bound object reference (not-the-uid) does not match the UID in record');
    await ok('-n', NS, 'delete', 'pod', 'app', '--grace-period', '0', '--force');
    await waitFor('the pod gone', async () => (await kubectl('-n', NS, 'get', 'pod', 'app')).code !== 0, 20_000, 200);
    await refused(t, bound, 'bound to a deleted pod');
    t.equal((await as(token, '-n', NS, 'get', 'configmaps', '-o', 'name')).code, 0, 'an unbound token of the same account still works');
  });

  await t.test('a ServiceAccount deleted and recreated under the same name does not revive old tokens', async (t) => {
    await ok('-n', NS, 'delete', 'serviceaccount', SA);
    await refused(t, token, 'ServiceAccount deleted');
    await ok('-n', NS, 'create', 'serviceaccount', SA);
    await refused(t, token, 'ServiceAccount recreated with another uid');
    const again = (await ok('-n', NS, 'create', 'token', SA)).trim();
    t.equal((await as(again, '-n', NS, 'get', 'configmaps', '-o', 'name')).code, 0, 'a new token for the new account works (the binding names the account by name)');
  });

  await t.test('discovery lists serviceaccounts/token', async (t) => {
    const list = JSON.parse(await ok('get', '--raw', '/api/v1')) as { resources: { name: string; group?: string; version?: string; kind: string; verbs: string[] }[] };
    t.match(list.resources.find((r) => r.name === 'serviceaccounts/token'), { group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest', verbs: ['create'] });
  });
});

t.test('without a signing key TokenRequest answers a clear error and no token authenticates', { skip: kubectlMissing(t) ?? false }, async (t) => {
  const dir = tempDir('sa-nokey');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cluster = await FlotillaCluster.start(1);
  t.teardown(() => cluster.stop());
  const front = await TlsFront.start(cluster.urls[0], dir);
  t.teardown(() => front.stop());
  const kubeconfig = front.writeKubeconfig(join(dir, 'kubeconfig'), 'unused');
  const r = await runKubectl(cluster.kubeconfig, join(dir, 'cache'), ['create', 'token', 'default']);
  t.not(r.code, 0);
  t.match(r.err, 'this cluster issues no ServiceAccount tokens (its servers run without --service-account-signing-key-file)');
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const now = Math.floor(Date.now() / 1000);
  const forged = await new SignJWT({ 'kubernetes.io': { namespace: 'default', serviceaccount: { name: 'default', uid: 'x' } } })
    .setProtectedHeader({ alg: 'ES256' }).setIssuer(ISSUER).setSubject('system:serviceaccount:default:default').setAudience(ISSUER)
    .setIssuedAt(now).setExpirationTime(now + 600).sign(key);
  const who = await runKubectl(kubeconfig, join(dir, 'cache'), ['--token', forged, 'auth', 'whoami']);
  t.match(who.err, 'error: You must be logged in to the server (Unauthorized)');

  // The node agent's side: no token, a warning, and the projected volume is made without the file (the pod still starts).
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const pod = await c.create<Pod>(resourcePath(kindByName('pods')!, 'default'), {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'busybox', command: ['true'] }] },
  });
  const warnings: string[] = [];
  const m = new ServiceAccountTokenManager(c, { ...silentLogger, warn: (_o: object, msg?: string) => void warnings.push(msg ?? '') });
  t.equal(await m.token(pod, { path: 'token' }), undefined, 'no token');
  t.match(warnings, [/the cluster issues none, the token file is left out/]);
  const podDir = join(dir, 'pod');
  t.teardown(() => cleanupPodVolumes(podDir));
  const vols = await preparePodVolumes({
    ...pod, spec: { ...pod.spec!, volumes: [{ name: 'api', projected: { sources: [{ serviceAccountToken: { path: 'token' } }, { downwardAPI: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } }] } }] } as never,
  }, podDir, { configMap: async () => undefined, secret: async () => undefined, claimPath: async () => '', serviceAccountToken: (p, proj) => m.token(p, proj) });
  t.same(readdirSync(vols.get('api')!).filter((f) => !f.startsWith('..')), ['namespace'], 'the volume holds namespace and no token');
});
