// The resource quota controller: usage arithmetic as tables (requests and
// limits with init containers, terminal pods, scopes, claims per class,
// quantity formatting), then status.used kept current against a real server
// as pods, claims, services, config maps and Deployments come and go.
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { ResourceQuotaController } from '../agents/controllers/resourcequota/controller.ts';
import { formatQuantity, podAmount, podCharged, podInScope, quotaUsage } from '../api/quota-usage.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const res = (requests?: Record<string, string>, limits?: Record<string, string>) => ({ name: 'c', resources: { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) } });
const pod = (name: string, containers: unknown[], o: { init?: unknown[]; phase?: string; deadline?: number; priorityClassName?: string } = {}): Pod => ({
  metadata: { name },
  spec: { containers, ...(o.init ? { initContainers: o.init } : {}), ...(o.deadline !== undefined ? { activeDeadlineSeconds: o.deadline } : {}), ...(o.priorityClassName ? { priorityClassName: o.priorityClassName } : {}) },
  status: { phase: o.phase ?? 'Running' },
} as Pod);

t.test('usage arithmetic', async (t) => {
  const web = pod('web', [res({ cpu: '250m', memory: '64Mi' }, { cpu: '500m', memory: '128Mi' }), res({ cpu: '250m', memory: '64Mi' })]);
  t.equal(podAmount(web, 'requests', 'cpu'), 500, 'requests add up over containers');
  t.equal(podAmount(web, 'limits', 'memory'), 128 * 1024 * 1024 * 1000, 'a container without limits adds none');
  const withInit = pod('init', [res({ cpu: '100m' })], { init: [res({ cpu: '2' })] });
  t.equal(podAmount(withInit, 'requests', 'cpu'), 2000, 'the larger of the biggest init container and the sum');
  t.equal(podAmount(pod('l', [res(undefined, { cpu: '300m' })]), 'requests', 'cpu'), 300, 'an unset request defaults to the limit');
  t.notOk(podCharged(pod('done', [], { phase: 'Succeeded' }), NOW), 'terminal pods are not charged');
  t.notOk(podCharged({ ...pod('stuck', []), metadata: { name: 'stuck', deletionTimestamp: new Date(NOW - 60_000).toISOString(), deletionGracePeriodSeconds: 30 } } as Pod, NOW), 'a pod stuck past its deletion deadline is not charged');
  t.ok(podCharged({ ...pod('going', []), metadata: { name: 'going', deletionTimestamp: new Date(NOW + 10_000).toISOString(), deletionGracePeriodSeconds: 30 } } as Pod, NOW), 'a pod within its grace period still is');
  const be = pod('be', [res()]);
  t.ok(podInScope(be, { scopes: ['BestEffort'] }) && !podInScope(web, { scopes: ['BestEffort'] }), 'BestEffort scope');
  t.ok(podInScope(pod('j', [res()], { deadline: 60 }), { scopes: ['Terminating'] }) && !podInScope(be, { scopes: ['Terminating'] }), 'Terminating scope');
  t.ok(podInScope(pod('p', [res()], { priorityClassName: 'high' }), { scopeSelector: { matchExpressions: [{ scopeName: 'PriorityClass', operator: 'In', values: ['high'] }] } }), 'PriorityClass In');
  t.notOk(podInScope(be, { scopeSelector: { matchExpressions: [{ scopeName: 'PriorityClass', operator: 'In', values: ['high'] }] } }), 'no priority class: not In');
  t.equal(formatQuantity(1500, false), '1500m');
  t.equal(formatQuantity(2000, false), '2');
  t.equal(formatQuantity(192 * 1024 * 1024 * 1000, true), '192Mi');
  t.equal(formatQuantity(1000 * 1000, true), '1000', 'bytes that are no binary multiple stay plain');
  t.equal(formatQuantity(0, true), '0');

  const claims = [
    { spec: { storageClassName: 'fast', resources: { requests: { storage: '1Gi' } } } },
    { spec: { storageClassName: 'slow', resources: { requests: { storage: '5Gi' } } } },
  ] as KubeObject[];
  const svc = (type: string, ports: number) => ({ spec: { type, ports: Array.from({ length: ports }, (_, i) => ({ port: 80 + i })) } }) as KubeObject;
  const objs = {
    pods: [web, withInit, be, pod('done', [res({ cpu: '8' })], { phase: 'Failed' })],
    services: [svc('ClusterIP', 1), svc('NodePort', 2), svc('LoadBalancer', 1)],
    persistentvolumeclaims: claims,
    count: (r: string) => (r === 'configmaps' ? [{}, {}] as KubeObject[] : r === 'deployments.apps' ? [{}] as KubeObject[] : undefined),
  };
  t.same(quotaUsage({
    hard: {
      pods: '10', 'requests.cpu': '10', 'limits.cpu': '10', 'requests.memory': '1Gi', services: '10', 'services.nodeports': '10', 'services.loadbalancers': '10',
      persistentvolumeclaims: '10', 'requests.storage': '100Gi', 'fast.storageclass.storage.k8s.io/requests.storage': '10Gi',
      configmaps: '10', 'count/deployments.apps': '10', 'count/jobs.batch': '10',
    },
  }, objs, NOW), {
    pods: '3', 'requests.cpu': '2500m', 'limits.cpu': '500m', 'requests.memory': '128Mi', services: '3', 'services.nodeports': '3', 'services.loadbalancers': '1',
    persistentvolumeclaims: '2', 'requests.storage': '6Gi', 'fast.storageclass.storage.k8s.io/requests.storage': '1Gi',
    configmaps: '2', 'count/deployments.apps': '1', 'count/jobs.batch': '0',
  }, 'every hard resource, and only those');
  t.same(quotaUsage({ hard: { pods: '5', services: '5' }, scopes: ['BestEffort'] }, objs, NOW), { pods: '1', services: '0' }, 'a scoped quota counts only its pods');
});

const QUOTAS = resolveKind('resourcequotas')!;
const PODS = resolveKind('pods')!;
const NAMESPACES = resolveKind('namespaces')!;

t.test('status.used against a real server', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const nodes = new FakeNodes({ client, nats: nats.url, count: 1 });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const ctl = await runControllers(client, nats.url, [(ctx) => new ResourceQuotaController(ctx)]);
  t.teardown(() => ctl.stop());
  await client.create(resourcePath(NAMESPACES), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } });
  const ns = 'team';
  const create = (kind: string, obj: Record<string, unknown>) => client.create(resourcePath(resolveKind(kind)!, ns), obj);
  const used = async () => (await client.get<KubeObject & { status?: { used?: Record<string, string>; hard?: Record<string, string> } }>(resourcePath(QUOTAS, ns, 'compute'))).status;
  const until = (what: string, want: Record<string, string>) => waitFor(what, async () => {
    const s = await used();
    return s?.used && Object.entries(want).every(([k, v]) => s.used![k] === v) ? s : undefined;
  }, 20_000);

  const hard = {
    pods: '10', 'requests.cpu': '4', 'requests.memory': '4Gi', 'limits.cpu': '8', 'limits.memory': '8Gi',
    persistentvolumeclaims: '5', 'requests.storage': '50Gi', services: '5', configmaps: '10', secrets: '10', 'count/deployments.apps': '3',
  };
  await create('resourcequotas', { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'compute' }, spec: { hard } });
  const first = await until('zero usage', { pods: '0', 'requests.cpu': '0', configmaps: '0', 'count/deployments.apps': '0' });
  t.same(first.hard, hard, 'status.hard mirrors spec.hard');

  const container = { name: 'c', image: 'x', resources: { requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } } };
  for (const name of ['a', 'b']) await create('pods', { apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { containers: [container] } });
  await create('persistentvolumeclaims', { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '3Gi' } }, storageClassName: '' } });
  await create('services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } });
  await create('configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: { a: 'b' } });
  await create('secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { a: 'b' } });
  await create('deployments', {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' },
    spec: { replicas: 0, selector: { matchLabels: { app: 'd' } }, template: { metadata: { labels: { app: 'd' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
  });
  const s = await until('usage of everything', {
    pods: '2', 'requests.cpu': '1', 'requests.memory': '512Mi', 'limits.cpu': '2', 'limits.memory': '1Gi',
    persistentvolumeclaims: '1', 'requests.storage': '3Gi', services: '1', configmaps: '1', secrets: '1', 'count/deployments.apps': '1',
  });
  t.pass(`used: ${JSON.stringify(s.used)}`);

  nodes.finish(ns, 'a', 'Failed');
  await until('a failed pod is not charged', { pods: '1', 'requests.cpu': '500m', 'limits.memory': '512Mi' });
  await client.delete(resourcePath(PODS, ns, 'b'));
  await until('a deleted pod is not charged', { pods: '0', 'requests.cpu': '0' });
  await client.patch(resourcePath(QUOTAS, ns, 'compute'), { spec: { hard: { ...hard, 'count/jobs.batch': '2' } } }, 'application/merge-patch+json');
  const after = await until('a new hard resource is counted', { 'count/jobs.batch': '0' });
  t.equal(Object.keys(after.used!).length, Object.keys(hard).length + 1, 'used has exactly the hard resources');
});
