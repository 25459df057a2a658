// Rollouts driven by the real kubectl (rollout status/history/undo/pause/
// resume/restart, set image, wait --for=condition=Available) and by
// `flotilla rollout`, against real servers and NATS with the ReplicaSet and
// Deployment controllers and FakeNodes.
import { Readable } from 'node:stream';
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { DeploymentController } from '../agents/controllers/deployment/controller.ts';
import { ReplicaSetController } from '../agents/controllers/replicaset/controller.ts';
import type { Deployment, ReplicaSet } from '../agents/informer/types.ts';
import { main as rollout, rolloutStatus } from '../bin/commands/rollout.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing, runKubectl } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { tempDir, waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const DEPLOYMENTS = resolveKind('deployments')!;
const RS = resolveKind('replicasets')!;

t.test('kubectl rollout status messages (DeploymentStatusViewer)', async (t) => {
  const d = (generation: number, status: object, replicas = 3) => ({ metadata: { name: 'web', generation }, spec: { replicas }, status }) as Deployment;
  t.match(rolloutStatus(d(2, { observedGeneration: 1 })), { message: 'Waiting for deployment spec update to be observed...', done: false });
  t.match(rolloutStatus(d(1, { observedGeneration: 1, updatedReplicas: 1 })), { message: 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...' });
  t.match(rolloutStatus(d(1, { observedGeneration: 1, updatedReplicas: 3, replicas: 4 })), { message: 'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...' });
  t.match(rolloutStatus(d(1, { observedGeneration: 1, updatedReplicas: 3, replicas: 3, availableReplicas: 2 })), { message: 'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...' });
  t.match(rolloutStatus(d(1, { observedGeneration: 1, updatedReplicas: 3, replicas: 3, availableReplicas: 3 })), { message: 'deployment "web" successfully rolled out', done: true });
  t.throws(() => rolloutStatus(d(1, { observedGeneration: 1, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] })), /exceeded its progress deadline/);
});

t.test('kubectl and flotilla rollout against a real cluster', async (t) => {
  const noKubectl = kubectlMissing(t);
  if (noKubectl) return;
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const nodes = new FakeNodes({ client, nats: nats.url, count: 2 });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const ctl = await runControllers(client, nats.url, [(ctx) => new ReplicaSetController(ctx), (ctx) => new DeploymentController(ctx)]);
  t.teardown(() => ctl.stop());

  const cache = tempDir('kubectl-cache');
  const kubectl = async (...args: string[]) => {
    const r = await runKubectl(cluster.kubeconfig, cache, args);
    t.equal(r.code, 0, `kubectl ${args.join(' ')} succeeds${r.code ? `: ${r.err}` : ''}`);
    return r.out;
  };
  const flotilla = async (...args: string[]) => {
    let out = '';
    let err = '';
    process.exitCode = 0;
    await rollout([...args, '--server', cluster.urls.join(',')], { out: (s) => (out += s), err: (s) => (err += s), stdin: Readable.from([]) });
    const code = process.exitCode;
    process.exitCode = 0;
    return { out, err, code };
  };
  const image = async () => (await client.get<Deployment>(resourcePath(DEPLOYMENTS, 'default', 'web'))).spec?.template?.spec?.containers[0]?.image;
  const replicaSets = async () => (await client.list<ReplicaSet>(resourcePath(RS, 'default'), { labelSelector: 'app=web' })).items;

  await client.create(resourcePath(DEPLOYMENTS, 'default'), {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' },
    spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'v1' }] } } },
  });

  await t.test('rollout status and wait --for=condition=Available', async (t) => {
    t.match(await kubectl('rollout', 'status', 'deployment/web', '--timeout=60s'), /deployment "web" successfully rolled out/);
    t.match(await kubectl('wait', '--for=condition=Available', 'deployment/web', '--timeout=60s'), /condition met/);
  });

  await t.test('set image, history, undo, undo --to-revision', async (t) => {
    await kubectl('set', 'image', 'deployment/web', 'c=v2');
    t.match(await kubectl('rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    const history = await kubectl('rollout', 'history', 'deployment/web');
    t.match(history, /REVISION\s+CHANGE-CAUSE\n1\s+<none>\n2\s+<none>/, 'two revisions');
    t.match(await kubectl('rollout', 'history', 'deployment/web', '--revision=1'), /Image:\s+v1/, 'revision 1 ran v1');
    t.match(await kubectl('rollout', 'undo', 'deployment/web'), /rolled back/);
    t.equal(await image(), 'v1', 'back to v1');
    t.match(await kubectl('rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    t.match(await kubectl('rollout', 'history', 'deployment/web'), /2\s+<none>\n3\s+<none>/, 'v1 is now revision 3');
    t.match(await kubectl('rollout', 'undo', 'deployment/web', '--to-revision=2'), /rolled back/);
    t.equal(await image(), 'v2');
    t.match(await kubectl('rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    t.equal((await replicaSets()).length, 2, 'two templates, two ReplicaSets: undo reuses them');
  });

  await t.test('pause, change, resume; restart', async (t) => {
    t.match(await kubectl('rollout', 'pause', 'deployment/web'), /paused/);
    await kubectl('set', 'image', 'deployment/web', 'c=v3');
    await waitFor('paused change observed', async () => {
      const d = await client.get<Deployment>(resourcePath(DEPLOYMENTS, 'default', 'web'));
      return d.status?.observedGeneration === d.metadata.generation ? true : undefined;
    });
    t.equal((await replicaSets()).length, 2, 'no ReplicaSet for v3 while paused');
    t.match(await kubectl('rollout', 'resume', 'deployment/web'), /resumed/);
    t.match(await kubectl('rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    t.equal((await replicaSets()).length, 3);
    t.match(await kubectl('rollout', 'restart', 'deployment/web'), /restarted/);
    t.match(await kubectl('rollout', 'status', 'deployment/web', '--timeout=60s'), /successfully rolled out/);
    const rss = await replicaSets();
    t.equal(rss.length, 4, 'restart made a new ReplicaSet');
    t.ok(rss.some((r) => r.spec?.replicas === 3 && r.spec?.template?.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']), 'its template carries restartedAt');
  });

  await t.test('flotilla rollout', async (t) => {
    t.match((await flotilla('status', 'web')).out, /deployment "web" successfully rolled out/);
    const h = await flotilla('history', 'deployment/web');
    t.match(h.out, /^deployment\.apps\/web \nREVISION\s+CHANGE-CAUSE\n/);
    t.match(h.out, /\n6\s+<none>\n\n$/, 'the restart is revision 6');
    t.match((await flotilla('history', 'web', '--revision', '5')).out, /with revision #5\nPod Template:\n[\s\S]*image: v3/);
    t.match((await flotilla('undo', 'web', '--to-revision', '5')).out, /deployment.apps\/web rolled back/);
    t.equal(await image(), 'v3');
    t.match((await flotilla('status', 'web', '--timeout', '60s')).out, /successfully rolled out/);
    t.match((await flotilla('undo', 'web', '--to-revision', '7')).out, /skipped rollback \(current template already matches revision 7\)/);
    t.match((await flotilla('pause', 'web')).out, /deployment.apps\/web paused/);
    t.match((await flotilla('pause', 'web')), { code: 1, err: /already paused/ });
    t.match((await flotilla('undo', 'web')), { code: 1, err: /cannot rollback a paused deployment/ });
    t.match((await flotilla('resume', 'web')).out, /resumed/);
    t.match((await flotilla('restart', 'web')).out, /restarted/);
    t.match((await flotilla('status', 'web', '--timeout', '60s')).out, /successfully rolled out/);
    t.match((await flotilla('status', 'nope')), { code: 1, err: /deployments.apps "nope" not found/ });
    t.match((await flotilla('frobnicate', 'web')), { code: 1, err: /expected one of status, history/ });
  });
});
