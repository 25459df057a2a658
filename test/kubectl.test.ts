// The real kubectl, unchanged, against 3 Flotilla servers; and the official
// @kubernetes/client-node library (list, create, watch).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { ROOT, sleep, tempDir, waitFor } from '../harness/procs.ts';

const noKubectl = kubectlMissing(t);

// One cluster for both tests (they write different objects); started by the first that needs it.
let shared: Promise<FlotillaCluster> | undefined;
const cluster = (): Promise<FlotillaCluster> => (shared ??= FlotillaCluster.start(3).then((c) => {
  t.teardown(() => c.stop());
  return c;
}));

t.test('kubectl against a Flotilla cluster', { skip: noKubectl ?? false }, async (t) => {
  const c = await cluster();
  const cache = tempDir('kubectl-cache');
  const kubectl = (...args: string[]) => {
    const r = spawnSync('kubectl', ['--kubeconfig', c.kubeconfig, '--cache-dir', cache, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const ok = (r: { code: number | null; out: string; err: string }, what: string) => {
    t.equal(r.code, 0, `${what}${r.code ? `: ${r.err.slice(0, 600)}` : ''}`);
    return r.out;
  };

  const v = ok(kubectl('version', '-o', 'json'), 'kubectl version');
  t.match(JSON.parse(v).serverVersion?.gitVersion ?? '', /^v1\.\d+\.\d+/, 'server gitVersion is semver');

  const manifest = join(ROOT, 'examples', 'nginx.yaml');
  t.match(ok(kubectl('apply', '-f', manifest), 'apply (default validation)'), /deployment.apps\/nginx created[\s\S]*service\/nginx created/);
  const changed = join(cache, 'nginx-3.yaml');
  writeFileSync(changed, readFileSync(manifest, 'utf8').replace('replicas: 2', 'replicas: 3'));
  t.match(ok(kubectl('apply', '-f', changed), 'apply again with a change'), /deployment.apps\/nginx configured/);
  t.match(ok(kubectl('apply', '-f', changed), 'apply again unchanged'), /deployment.apps\/nginx unchanged/);
  t.equal(JSON.parse(ok(kubectl('get', 'deployment', 'nginx', '-o', 'json'), 'get -o json')).spec.replicas, 3);

  const ss = join(cache, 'ss.yaml');
  writeFileSync(ss, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: "1"\n');
  t.match(ok(kubectl('apply', '--server-side', '-f', ss), 'apply --server-side'), /configmap\/ssa serverside-applied/);
  writeFileSync(ss, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  b: "2"\n');
  ok(kubectl('apply', '--server-side', '-f', ss), 'apply --server-side again, dropping a field');
  t.same(JSON.parse(ok(kubectl('get', 'cm', 'ssa', '-o', 'json'), 'get cm')).data, { b: '2' }, 'server-side apply removed the field no longer applied');

  const table = ok(kubectl('get', 'deployments'), 'get (table)');
  t.match(table, /NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE/);
  t.match(table, /nginx\s+0\/3/);
  t.match(ok(kubectl('get', 'deploy', '-o', 'wide'), 'get -o wide'), /CONTAINERS\s+IMAGES\s+SELECTOR[\s\S]*nginx:1\.27/);
  t.match(ok(kubectl('get', 'svc', 'nginx', '-o', 'yaml'), 'get -o yaml'), /kind: Service[\s\S]*port: 80/);
  t.match(ok(kubectl('get', 'namespaces'), 'get namespaces'), /default\s+Active/);
  t.match(ok(kubectl('get', 'configmaps', '-A'), 'get -A'), /NAMESPACE\s+NAME\s+DATA\s+AGE[\s\S]*default\s+ssa/);

  // get -w prints later changes.
  const watcher = spawn('kubectl', ['--kubeconfig', c.kubeconfig, '--cache-dir', cache, 'get', 'configmaps', '-w'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let watched = '';
  watcher.stdout.on('data', (d) => (watched += d));
  await waitFor('kubectl get -w to list', () => watched.includes('ssa'), 20_000);
  ok(kubectl('create', 'configmap', 'later', '--from-literal=x=y'), 'create configmap');
  await waitFor('kubectl get -w to print the new object', () => /later/.test(watched), 20_000);
  watcher.kill();
  t.pass('get -w printed a later change');

  t.match(ok(kubectl('scale', 'deployment', 'nginx', '--replicas=5'), 'scale'), /deployment.apps\/nginx scaled/);
  t.equal(JSON.parse(ok(kubectl('get', 'deployment', 'nginx', '-o', 'json'), 'get')).spec.replicas, 5);
  t.match(ok(kubectl('delete', 'configmap', 'later'), 'delete (default --wait)'), /configmap "later" deleted/);
  t.equal(kubectl('get', 'configmap', 'later').code, 1, 'gone');
  t.match(kubectl('get', 'configmap', 'later').err, /NotFound|not found/);

  const status = JSON.parse(ok(kubectl('get', '--raw', '/cluster/status'), 'get --raw /cluster/status'));
  t.equal(status.members.length, 3);
  const ar = ok(kubectl('api-resources'), 'api-resources');
  for (const r of ['pods', 'deployments', 'services', 'configmaps', 'leases', 'horizontalpodautoscalers', 'clusterroles']) t.match(ar, new RegExp(`\\b${r}\\b`));

  const bad = join(cache, 'bad.yaml');
  writeFileSync(bad, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\nspec:\n  foo: 1\n');
  const r = kubectl('apply', '-f', bad);
  t.not(r.code, 0, 'an unknown field is refused');
  t.match(r.err, /unknown field|spec/);
});

t.test('@kubernetes/client-node: list, create, watch', async (t) => {
  const k8s = await import('@kubernetes/client-node');
  const c = await cluster();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(c.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const created = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'from-client' }, data: { k: 'v' } } });
  t.equal(created.metadata?.name, 'from-client');
  const list = await core.listNamespacedConfigMap({ namespace: 'default' });
  t.ok(list.items.some((i) => i.metadata?.name === 'from-client'), 'list sees it');
  await apps.createNamespacedDeployment({
    namespace: 'default',
    body: {
      metadata: { name: 'web' },
      spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx' }] } } },
    },
  });
  const d = await apps.readNamespacedDeployment({ name: 'web', namespace: 'default' });
  t.equal(d.spec?.replicas, 1, 'defaulted replicas');

  const seen: string[] = [];
  const watch = new k8s.Watch(kc);
  const req = await watch.watch('/api/v1/namespaces/default/configmaps', { resourceVersion: list.metadata?.resourceVersion }, (type, obj) => {
    seen.push(`${type}:${obj.metadata.name}`);
  }, () => {});
  await sleep(200);
  await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'watched' } } });
  await core.deleteNamespacedConfigMap({ name: 'watched', namespace: 'default' });
  await waitFor('client-node watch events', () => seen.includes('DELETED:watched'), 10_000);
  req.abort();
  t.same(seen.filter((s) => s.endsWith(':watched')), ['ADDED:watched', 'DELETED:watched']);
});
