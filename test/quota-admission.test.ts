// LimitRange defaults and bounds, and ResourceQuota enforcement, at
// admission on a real server: Kubernetes' messages, the QoS class worked out
// after the defaults, and concurrent creates racing for the last unit of a
// quota (exactly the quota's worth succeed).
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { ResourceQuotaController } from '../agents/controllers/resourcequota/controller.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { tempDir, waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const PODS = resolveKind('pods')!;
const PVCS = resolveKind('persistentvolumeclaims')!;
const QUOTAS = resolveKind('resourcequotas')!;
const LIMITS = resolveKind('limitranges')!;
const NS = resolveKind('namespaces')!;

type Obj = Record<string, any>;
const pod = (name: string, resources?: Obj, extra: Obj = {}) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name },
  spec: { containers: [{ name: 'app', image: 'busybox', command: ['sleep', '1'], ...(resources ? { resources } : {}) }], ...extra },
});

t.test('LimitRange and ResourceQuota admission', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const api = new ApiClient(cluster.urls);
  t.teardown(() => api.close());
  const refused = async (ns: string, path: string, body: object) => {
    const e = await api.create(resourcePath(resolveKind(path)!, ns), body).then(() => undefined, (x: unknown) => x);
    return e instanceof ApiClientError ? `${e.code} ${e.message}` : `accepted`;
  };
  for (const ns of ['limits', 'quota', 'race']) await api.create(resourcePath(NS), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });

  // ---- LimitRange
  const lr = await api.create<Obj>(resourcePath(LIMITS, 'limits'), {
    apiVersion: 'v1', kind: 'LimitRange', metadata: { name: 'defaults' },
    spec: { limits: [
      { type: 'Container', default: { cpu: '500m', memory: '256Mi' }, defaultRequest: { cpu: '100m' }, max: { cpu: '1' }, maxLimitRequestRatio: { cpu: '10' } },
      { type: 'Pod', max: { memory: '1Gi' } },
      { type: 'PersistentVolumeClaim', max: { storage: '1Gi' }, min: { storage: '10Mi' } },
    ] },
  });
  t.same(lr.spec.limits[0].defaultRequest, { cpu: '100m', memory: '256Mi' }, 'a missing default request is the default limit (SetDefaults_LimitRangeItem)');
  const bare = await api.create<Obj>(resourcePath(PODS, 'limits'), pod('bare'));
  t.same(bare.spec.containers[0].resources, { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '256Mi' } }, 'defaults from the LimitRange');
  t.equal(bare.status.qosClass, 'Burstable', 'the QoS class reflects the defaults');
  const lim = await api.create<Obj>(resourcePath(PODS, 'limits'), pod('limited', { limits: { cpu: '800m' } }));
  t.same(lim.spec.containers[0].resources.requests.cpu, '800m', 'a stated limit is the request (pod defaulting comes first), not the LimitRange default request');
  t.equal(await refused('limits', 'pods', pod('too-big', { limits: { cpu: '2' } })), '403 pods "too-big" is forbidden: maximum cpu usage per Container is 1, but limit is 2');
  t.equal(await refused('limits', 'pods', pod('ratio', { requests: { cpu: '10m' }, limits: { cpu: '500m' } })),
    '403 pods "ratio" is forbidden: cpu max limit to request ratio per Container is 10, but provided ratio is 50.000000');
  const twoBig = pod('pod-total', { limits: { memory: '600Mi' } });
  twoBig.spec.containers.push({ ...twoBig.spec.containers[0], name: 'second' });
  t.equal(await refused('limits', 'pods', twoBig), `403 pods "pod-total" is forbidden: maximum memory usage per Pod is 1Gi, but limit is ${1200 * 1024 * 1024}`);
  const claim = (name: string, storage: string) => ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: '', resources: { requests: { storage } } } });
  t.equal(await refused('limits', 'persistentvolumeclaims', claim('huge', '2Gi')), '403 persistentvolumeclaims "huge" is forbidden: maximum storage usage per PersistentVolumeClaim is 1Gi, but request is 2Gi');
  t.equal(await refused('limits', 'persistentvolumeclaims', claim('tiny', '1Mi')), '403 persistentvolumeclaims "tiny" is forbidden: minimum storage usage per PersistentVolumeClaim is 10Mi, but request is 1Mi');
  t.equal(await refused('limits', 'persistentvolumeclaims', claim('fine', '100Mi')), 'accepted');
  t.equal(await refused('default', 'pods', pod('elsewhere', { limits: { cpu: '4' } })), 'accepted', 'LimitRanges bind their own namespace only');

  // ---- ResourceQuota: before the controller has counted, usage is unknown.
  await api.create(resourcePath(QUOTAS, 'quota'), { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'compute' }, spec: { hard: { pods: '2', 'requests.cpu': '300m', 'limits.memory': '1Gi' } } });
  t.equal(await refused('quota', 'pods', pod('early', { requests: { cpu: '100m' }, limits: { memory: '64Mi' } })),
    '403 pods "early" is forbidden: status unknown for quota: compute, resource: limits.memory,pods,requests.cpu');
  const ctl = await runControllers(api, nats.url, [(ctx) => new ResourceQuotaController(ctx)]);
  t.teardown(() => ctl.stop());
  await waitFor('the quota to be counted', async () => (await api.get<Obj>(resourcePath(QUOTAS, 'quota', 'compute'))).status?.used?.pods === '0', 15_000, 50);
  t.equal(await refused('quota', 'pods', pod('no-limits', { requests: { cpu: '100m' } })),
    '403 pods "no-limits" is forbidden: failed quota: compute: must specify limits.memory for: app', 'a quota on limits.memory obliges every container to state it');
  t.equal(await refused('quota', 'pods', pod('one', { requests: { cpu: '100m' }, limits: { memory: '64Mi' } })), 'accepted');
  const after = await api.get<Obj>(resourcePath(QUOTAS, 'quota', 'compute'));
  t.same(after.status.used, { pods: '1', 'requests.cpu': '100m', 'limits.memory': '64Mi' }, 'admission raised status.used at once');
  await api.create(resourcePath(PODS, 'quota'), pod('dry', { requests: { cpu: '100m' }, limits: { memory: '64Mi' } }), { dryRun: 'All' });
  t.same((await api.get<Obj>(resourcePath(QUOTAS, 'quota', 'compute'))).status.used.pods, '1', 'a dry run charges nothing');
  t.equal(await refused('quota', 'pods', pod('greedy', { requests: { cpu: '250m' }, limits: { memory: '64Mi' } })),
    '403 pods "greedy" is forbidden: exceeded quota: compute, requested: requests.cpu=250m, used: requests.cpu=100m, limited: requests.cpu=300m');
  t.equal(await refused('quota', 'pods', pod('two', { requests: { cpu: '100m' }, limits: { memory: '64Mi' } })), 'accepted');
  t.equal(await refused('quota', 'pods', pod('three', { requests: { cpu: '50m' }, limits: { memory: '64Mi' } })),
    '403 pods "three" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2');

  // ---- The same through the real kubectl.
  if (!kubectlMissing(t)) {
    const cache = tempDir('kubectl-cache');
    const kubectl = (...args: string[]) => spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, '--cache-dir', cache, ...args], { encoding: 'utf8', timeout: 60_000 });
    const big = kubectl('run', 'big', '-n', 'limits', '--image=busybox', '--restart=Never', '--overrides={"spec":{"containers":[{"name":"big","image":"busybox","resources":{"limits":{"cpu":"2"}}}]}}');
    t.match(big.stderr, /pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2/, 'kubectl shows the LimitRange refusal');
    const small = kubectl('run', 'small', '-n', 'limits', '--image=busybox', '--restart=Never');
    t.equal(small.status, 0, `kubectl run in a LimitRange namespace: ${small.stderr}`);
    t.equal(kubectl('get', 'pod', 'small', '-n', 'limits', '-o', 'jsonpath={.spec.containers[0].resources.limits.cpu}').stdout, '500m', 'with the LimitRange default');
    const over = kubectl('run', 'over', '-n', 'quota', '--image=busybox', '--restart=Never', '--overrides={"spec":{"containers":[{"name":"over","image":"busybox","resources":{"requests":{"cpu":"10m"},"limits":{"memory":"8Mi"}}}]}}');
    t.match(over.stderr, /exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2/, 'kubectl shows the ResourceQuota refusal');
    t.match(kubectl('describe', 'quota', 'compute', '-n', 'quota').stdout, /pods\s+2\s+2/, 'kubectl describe quota: used 2 of 2');
  }

  // ---- Concurrent creates race for the last units: exactly the quota's worth get in.
  await api.create(resourcePath(QUOTAS, 'race'), { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'count' }, spec: { hard: { pods: '5', configmaps: '3' } } });
  await waitFor('the race quota to be counted', async () => (await api.get<Obj>(resourcePath(QUOTAS, 'race', 'count'))).status?.used?.pods === '0', 15_000, 50);
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => refused('race', 'pods', pod(`p${i}`))));
  t.equal(results.filter((r) => r === 'accepted').length, 5, `exactly 5 of 12 concurrent pod creates accepted (${results.filter((r) => r !== 'accepted').map((r) => r.split(': ').slice(1).join(': ')).slice(0, 1)})`);
  t.ok(results.filter((r) => r !== 'accepted').every((r) => /exceeded quota: count, requested: pods=1, used: pods=5, limited: pods=5/.test(r)), 'the others: exceeded quota');
  const cms = await Promise.all(Array.from({ length: 6 }, (_, i) => refused('race', 'configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `c${i}` } })));
  t.equal(cms.filter((r) => r === 'accepted').length, 3, 'object counts too (configmaps: 3)');
  const listed = await api.list(resourcePath(PODS, 'race'));
  t.equal(listed.items.length, 5, 'and exactly 5 pods exist');
});
