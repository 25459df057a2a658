// metrics.k8s.io and the HPA against a real server: usage reports published
// on NATS (the node agent's path) come back from /apis/metrics.k8s.io/v1beta1
// (client and `kubectl get --raw`), and the HPA scales a Deployment's /scale
// up on high CPU and back down once the (short) stabilization window passed.
// No Deployment controller runs: the HPA's current size is the target's
// spec.replicas (as in Kubernetes), and the test asserts on it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { HorizontalPodAutoscalerController, type HorizontalPodAutoscaler } from '../agents/controllers/hpa/controller.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { type NodeUsageReport, metricsSubject } from '../api/metrics.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const DEPLOYMENTS = resolveKind('deployments')!;
const PODS = resolveKind('pods')!;
const HPAS = resolveKind('horizontalpodautoscalers')!;
const EVENTS = resolveKind('events')!;
const noKubectl = kubectlMissing(t);

t.test('metrics.k8s.io and the HPA', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const nodes = new FakeNodes({ client, nats: nats.url, names: ['node-1'] });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const nc = await connect({ servers: nats.url });
  t.teardown(() => nc.close());

  // The workload: a Deployment and two pods of it (made here, as no Deployment controller runs).
  const template = { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'x', resources: { requests: { cpu: '100m', memory: '64Mi' } } }] } };
  await client.create(resourcePath(DEPLOYMENTS, 'default'), {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template },
  });
  for (const name of ['web-a', 'web-b']) await client.create(resourcePath(PODS, 'default'), { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'web' } }, spec: template.spec });
  await waitFor('pods ready', async () => {
    const pods = (await client.list<Pod>(resourcePath(PODS, 'default'), { labelSelector: 'app=web' })).items;
    return pods.length === 2 && pods.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  }, 20_000);
  // What spec.replicas went through (the HPA's "current" is spec.replicas, so no Deployment controller is needed).
  const replicasLog: number[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const d = await client.get<KubeObject & { spec: { replicas: number } }>(resourcePath(DEPLOYMENTS, 'default', 'web'));
      if (replicasLog[replicasLog.length - 1] !== d.spec.replicas) replicasLog.push(d.spec.replicas);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  t.teardown(async () => {
    watching = false;
    await watcher;
  });

  // The node agent's part: a usage report every 300 ms, timestamped now over a 1 s window.
  let cpu = '100m';
  const report = (): NodeUsageReport => ({
    node: 'node-1', timestamp: new Date().toISOString(), window: '1s', usage: { cpu: '1500m', memory: '2Gi' },
    pods: ['web-a', 'web-b'].map((name) => ({ namespace: 'default', name, containers: [{ name: 'app', usage: { cpu, memory: '32Mi' } }] })),
  });
  const publish = () => nc.publish(metricsSubject('node-1'), JSON.stringify(report()));
  publish();
  const publisher = setInterval(publish, 300);
  t.teardown(() => clearInterval(publisher));

  t.test('metrics.k8s.io serves what was published', async (t) => {
    const path = '/apis/metrics.k8s.io/v1beta1/namespaces/default/pods';
    const list = await waitFor('pod metrics', async () => {
      const l = await client.get<{ kind: string; items: { metadata: { name: string; labels: Record<string, string> }; window: string; containers: { name: string; usage: Record<string, string> }[] }[] }>(path, { labelSelector: 'app=web' });
      return l.items.length === 2 ? l : undefined;
    });
    t.equal(list.kind, 'PodMetricsList');
    t.same(list.items.map((i) => i.metadata.name).sort(), ['web-a', 'web-b']);
    t.same(list.items[0].containers, [{ name: 'app', usage: { cpu: '100m', memory: '32Mi' } }]);
    t.same(list.items[0].metadata.labels, { app: 'web' }, 'the pod\'s labels');
    t.equal((await client.get<{ items: unknown[] }>(path, { labelSelector: 'app=other' })).items.length, 0, 'label selector filters');
    const one = await client.get<{ kind: string; window: string }>(`${path}/web-a`);
    t.match(one, { kind: 'PodMetrics', window: '1s' });
    await t.rejects(client.get(`${path}/nope`), { code: 404 }, 'a pod without metrics: NotFound');
    t.match(await client.get('/apis/metrics.k8s.io/v1beta1/nodes/node-1'), { kind: 'NodeMetrics', usage: { cpu: '1500m', memory: '2Gi' } });
    const groups = await client.get<{ groups: { name: string }[] }>('/apis');
    t.ok(groups.groups.some((g) => g.name === 'metrics.k8s.io'), 'discovery lists metrics.k8s.io');
    await t.rejects(client.get(path, { labelSelector: 'app in (' }), { code: 400 }, 'a bad selector: BadRequest');
    // A malformed report is dropped; the server keeps serving the last good one.
    nc.publish(metricsSubject('node-1'), JSON.stringify({ node: 'node-1', pods: 'nope' }));
    t.equal((await client.get<{ items: unknown[] }>(path)).items.length, 2);
    if (!noKubectl) {
      const r = spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, '--cache-dir', mkdtempSync(join(tmpdir(), 'kcache-')), 'get', '--raw', `${path}?labelSelector=app%3Dweb`], { encoding: 'utf8', timeout: 30_000 });
      t.equal(r.status, 0, r.stderr);
      t.equal(JSON.parse(r.stdout).items.length, 2, 'kubectl get --raw reads the same list');
      const top = spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, '--cache-dir', mkdtempSync(join(tmpdir(), 'kcache-')), 'top', 'pod', '-l', 'app=web'], { encoding: 'utf8', timeout: 30_000 });
      t.equal(top.status, 0, top.stderr);
      t.match(top.stdout, /web-a\s+100m\s+32Mi/, 'kubectl top pod');
    }
  });

  t.test('the HPA scales up on high usage and down after the stabilization window', async (t) => {
    const ctl = await runControllers(client, nats.url, [(ctx) => new HorizontalPodAutoscalerController(ctx)], { hpaSyncPeriodMs: 300 });
    t.teardown(() => ctl.stop());
    await client.create(resourcePath(HPAS, 'default'), {
      apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'web' },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, minReplicas: 1, maxReplicas: 10,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 50 } } }],
        behavior: { scaleDown: { stabilizationWindowSeconds: 4 } },
      },
    });
    const spec = async () => (await client.get<KubeObject & { spec: { replicas: number } }>(resourcePath(DEPLOYMENTS, 'default', 'web'))).spec.replicas;
    // 100m of 100m requested is 100 % against a 50 % target: ceil(2 × 2) = 4.
    await waitFor('scaled up to 4', async () => (await spec()) === 4, 20_000);
    const hpa = await client.get<HorizontalPodAutoscaler>(resourcePath(HPAS, 'default', 'web'));
    t.match(hpa.status, { currentMetrics: [{ type: 'Resource', resource: { name: 'cpu', current: { averageUtilization: 100, averageValue: '100m' } } }] });
    t.ok(hpa.status?.lastScaleTime, 'lastScaleTime set');
    t.match(hpa.status?.conditions?.find((c) => c.type === 'ScalingActive'), { status: 'True', reason: 'ValidMetricFound' });
    const events = (await client.list<KubeObject & { reason?: string; message?: string }>(resourcePath(EVENTS, 'default'), { fieldSelector: 'involvedObject.name=web,involvedObject.kind=HorizontalPodAutoscaler' })).items;
    t.ok(events.some((e) => e.reason === 'SuccessfulRescale' && e.message === 'New size: 4; reason: cpu resource utilization (percentage of request) above target'), 'SuccessfulRescale event');
    // Usage drops to 10 %: ceil(0.2 × 2) = 1, but only after the 4 s window.
    cpu = '10m';
    const dropped = Date.now();
    await waitFor('scale-down held by stabilization', async () => {
      const h = await client.get<HorizontalPodAutoscaler>(resourcePath(HPAS, 'default', 'web'));
      return h.status?.conditions?.find((c) => c.type === 'AbleToScale')?.reason === 'ScaleDownStabilized';
    }, 10_000, 50);
    t.equal(await spec(), 4, 'still 4 while the window holds higher recommendations');
    await waitFor('scaled down to 1', async () => (await spec()) === 1, 20_000);
    t.ok(Date.now() - dropped >= 3500, `scale-down came after the window (${Date.now() - dropped} ms)`);
    await waitFor('the copier saw 1', () => replicasLog[replicasLog.length - 1] === 1, 5000);
    t.same(replicasLog, [2, 4, 1], 'spec.replicas went 2 → 4 → 1, nothing in between');
  });
});
