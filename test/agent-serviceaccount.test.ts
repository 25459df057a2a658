// The service-account volume and the API's address in every container, with
// a real node agent, the root CA publisher and the kubernetes-Service
// controller, on a cluster with a ServiceAccount signing key:
// /var/run/secrets/kubernetes.io/serviceaccount holds token (bound to the pod,
// usable against the API), ca.crt (the namespace's kube-root-ca.crt) and
// namespace, read-only, unless automountServiceAccountToken is false on the
// pod or its ServiceAccount (the pod's word wins); a container's own mount
// there wins; projected volumes combine ConfigMap, Secret, downward API files
// and serviceAccountToken projections (audience, expirationSeconds, path);
// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT name the kubernetes Service.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { KubernetesServiceController } from '../agents/controllers/kubernetesservice/controller.ts';
import { NodeIpamController } from '../agents/controllers/nodeipam/controller.ts';
import { RootCAPublisher } from '../agents/controllers/serviceaccount/rootca.ts';
import { ServiceAccountsController } from '../agents/controllers/serviceaccount/serviceaccounts.ts';
import type { Pod, Service } from '../agents/informer/types.ts';
import { kindByName } from '../api/kinds/index.ts';
import { AgentProcess } from '../harness/agent.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';
import { ServiceAccountTokenManager } from '../agents/agent/service-account-token.ts';
import { silentLogger } from '../agents/informer/index.ts';

const octet = 30 + Math.floor(Math.random() * 200);
const ADDRESS = `127.0.${octet}.13`;
const NODE = `sa-${octet}`;
const NS = 'team-a';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const CA = '-----BEGIN CERTIFICATE-----\nZmxvdGlsbGEgdGVzdCBDQQ==\n-----END CERTIFICATE-----\n';

t.test('service-account volume and the API address', { skip: kubectlMissing(t) ?? false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sa-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'ca.crt'), CA);
  writeFileSync(join(dir, 'sa.key'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url, '--service-account-signing-key-file', join(dir, 'sa.key')] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  await c.create(resourcePath(kindByName('namespaces')!, ''), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  const ctl = await runControllers(c, nats.url, [(ctx) => new NodeIpamController(ctx), (ctx) => new RootCAPublisher(ctx), (ctx) => new KubernetesServiceController(ctx), (ctx) => new ServiceAccountsController(ctx)], {
    clusterCIDR: `127.${100 + (octet % 100)}.0.0/16`, rootCAFile: join(dir, 'ca.crt'),
  });
  t.teardown(() => ctl.stop());
  const kubernetes = await waitFor('the kubernetes Service', async () => {
    try {
      return await c.get<Service>(resourcePath(kindByName('services')!, 'default', 'kubernetes'));
    } catch {
      return undefined;
    }
  }, 20_000, 100);
  const agent = await AgentProcess.start({ servers: cluster.urls, name: NODE, address: ADDRESS, nats: nats.url, args: ['--service-proxy', 'false'] });
  t.teardown(() => agent.stop());
  const pods = resourcePath(kindByName('pods')!, NS);
  await c.create(resourcePath(kindByName('serviceaccounts')!, NS), { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'quiet' }, automountServiceAccountToken: false });
  await c.create(resourcePath(kindByName('configmaps')!, NS), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' }, data: { mode: 'fast' } });
  await c.create(resourcePath(kindByName('secrets')!, NS), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds' }, data: { password: Buffer.from('hunter2').toString('base64') } });
  const pod = (name: string, spec: Record<string, unknown> = {}, container: Record<string, unknown> = {}) => c.create(pods, {
    apiVersion: 'v1', kind: 'Pod', metadata: { name },
    spec: { nodeName: NODE, terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: 'busybox', command: ['sleep', '3600'], ...container }], ...spec },
  });
  const running = (name: string) => waitFor(`${name} running`, async () => {
    const p = await c.get<Pod>(`${pods}/${name}`);
    return p.status?.phase === 'Running' && (p.status.containerStatuses?.[0]?.state as { running?: unknown } | undefined)?.running ? p : undefined;
  }, 30_000, 100);
  const sh = (name: string, script: string) => spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, '-n', NS, 'exec', name, '--', 'sh', '-c', script], { encoding: 'utf8', timeout: 30_000 });

  await pod('plain');
  await pod('off', { automountServiceAccountToken: false });
  await pod('quiet', { serviceAccountName: 'quiet' });
  await pod('quiet-but-asks', { serviceAccountName: 'quiet', automountServiceAccountToken: true });
  await pod('own-mount', { volumes: [{ name: 'mine', emptyDir: {} }] }, { volumeMounts: [{ name: 'mine', mountPath: SA_DIR }] });
  await pod('projected', {
    volumes: [{ name: 'all', projected: { sources: [
      { configMap: { name: 'settings' } },
      { secret: { name: 'creds', items: [{ key: 'password', path: 'secret/password' }] } },
      { downwardAPI: { items: [{ path: 'name', fieldRef: { fieldPath: 'metadata.name' } }] } },
    ] } }],
  }, { volumeMounts: [{ name: 'all', mountPath: '/etc/all' }] });
  await pod('token', { volumes: [{ name: 'tok', projected: { sources: [{ serviceAccountToken: { path: 'vault/token', audience: 'vault', expirationSeconds: 600 } }] } }] }, { volumeMounts: [{ name: 'tok', mountPath: '/var/tok' }] });

  await t.test('mounted read-only with token, ca.crt and namespace; the API\'s address in the environment', async (t) => {
    await running('plain');
    const r = sh('plain', `cat ${SA_DIR}/ca.crt; echo "ns=$(cat ${SA_DIR}/namespace)"; ls ${SA_DIR}; echo "host=$KUBERNETES_SERVICE_HOST port=$KUBERNETES_SERVICE_PORT"; touch ${SA_DIR}/x 2>/dev/null && echo writable || echo read-only`);
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout, `${CA}ns=${NS}\nca.crt\nnamespace\ntoken\nhost=${kubernetes.spec!.clusterIP} port=443\nread-only\n`);
  });

  await t.test('the pod reads its token and the API knows it as its ServiceAccount, bound to the pod', async (t) => {
    const p = await running('plain');
    // The agent runs without the service proxy here, so the pod talks to the server's own address.
    const r = sh('plain', `curl -sS -X POST -H "Authorization: Bearer $(cat ${SA_DIR}/token)" -H 'Content-Type: application/json' `
      + `-d '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}' ${cluster.urls[0]}/apis/authentication.k8s.io/v1/selfsubjectreviews`);
    t.equal(r.status, 0, r.stderr);
    const info = (JSON.parse(r.stdout) as { status: { userInfo: { username: string; groups: string[]; extra: Record<string, string[]> } } }).status.userInfo;
    t.equal(info.username, `system:serviceaccount:${NS}:default`);
    t.same(info.groups, ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated']);
    t.same(info.extra['authentication.kubernetes.io/pod-name'], ['plain']);
    t.same(info.extra['authentication.kubernetes.io/pod-uid'], [p.metadata.uid]);
    t.same(info.extra['authentication.kubernetes.io/node-name'], [NODE]);
    const bad = sh('plain', `curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat ${SA_DIR}/token)x" ${cluster.urls[0]}/api/v1/namespaces/${NS}/configmaps`);
    t.equal(bad.stdout, '401', 'a damaged token is refused');
  });

  await t.test('automountServiceAccountToken: false on the pod, or on its ServiceAccount unless the pod says true', async (t) => {
    for (const [name, mounted] of [['off', false], ['quiet', false], ['quiet-but-asks', true]] as const) {
      await running(name);
      const r = sh(name, `cat ${SA_DIR}/namespace 2>/dev/null || printf absent; echo; echo "host=$KUBERNETES_SERVICE_HOST"`);
      t.equal(r.stdout, `${mounted ? NS : 'absent'}\nhost=${kubernetes.spec!.clusterIP}\n`, `${name}: ${mounted ? 'mounted' : 'not mounted'}, the API address either way`);
    }
  });

  await t.test('a container\'s own mount at that path wins', async (t) => {
    await running('own-mount');
    const r = sh('own-mount', `ls -A ${SA_DIR}; touch ${SA_DIR}/mine && echo writable`);
    t.equal(r.stdout, 'writable\n', 'its emptyDir, empty and writable');
  });

  await t.test('projected volumes: ConfigMap, Secret and downward API files together', async (t) => {
    await running('projected');
    const r = sh('projected', 'cat /etc/all/mode; echo; cat /etc/all/secret/password; echo; cat /etc/all/name');
    t.equal(r.stdout, 'fast\nhunter2\nprojected');
  });

  await t.test('the agent\'s token manager asks again once 80 % of a token\'s lifetime has passed', async (t) => {
    const p = await running('plain');
    let now = Date.now();
    const m = new ServiceAccountTokenManager(c, silentLogger, () => now);
    const projection = { path: 'token', expirationSeconds: 600 };
    const first = await m.token(p, projection);
    t.type(first, 'string');
    now += 0.79 * 600_000;
    t.equal(await m.token(p, projection), first, 'kept before 80 %');
    now += 0.02 * 600_000;
    const second = await m.token(p, projection);
    t.not(second, first, 'a new token after 80 %');
    t.equal(await m.token(p, projection), second, 'and that one is kept');
    t.not(await m.token(p, { ...projection, audience: 'vault' }), second, 'another audience is another token');
  });

  await t.test('a serviceAccountToken projection: its path, audience and lifetime', async (t) => {
    const p = await running('token');
    const r = sh('token', 'cat /var/tok/vault/token');
    t.equal(r.status, 0, r.stderr);
    const claims = JSON.parse(Buffer.from(r.stdout.split('.')[1], 'base64url').toString()) as Record<string, any>;
    t.same(claims.aud, ['vault']);
    t.equal(claims.exp - claims.iat, 600);
    t.same(claims['kubernetes.io'].pod, { name: 'token', uid: p.metadata.uid });
    const code = sh('token', `curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat /var/tok/vault/token)" ${cluster.urls[0]}/api/v1/namespaces/${NS}/configmaps`);
    t.equal(code.stdout, '401', 'a token for another audience does not authenticate to the API');
  });
});
