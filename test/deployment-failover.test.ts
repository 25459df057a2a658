// A rolling update survives the controller-manager leader's kill -9: two
// `flotilla controllers` processes (ReplicaSet and Deployment controllers),
// the leader killed mid-rollout, the standby finishes it — with exactly one
// pod created per new replica and one deletion per old one (no duplicate, no
// extra deletion), and the surge/availability bounds held on every pod event.
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { Informer, keyOf } from '../agents/informer/informer.ts';
import type { Deployment, Pod } from '../agents/informer/types.ts';
import { ControllerManager } from '../harness/controllers.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';

const DEPLOYMENTS = resolveKind('deployments')!;
const PODS = resolveKind('pods')!;
const LE = ['--leader-elect-lease-duration', '3s', '--leader-elect-renew-deadline', '2s', '--leader-elect-retry-period', '500ms', '--controllers', 'replicaset,deployment'];

t.test('the standby finishes a rollout after the leader is killed', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  // Pods start unready; `gate` decides when they turn ready, so the test can hold the rollout.
  const nodes = new FakeNodes({ client, nats: nats.url, count: 3, startUnready: true });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const pods = new Informer<Pod>({ client, nats: nats.url, kind: PODS });
  let gate = true;
  const created = new Map<string, string>(); // pod → image
  const deleted = new Map<string, string>();
  pods.addEventHandler({
    onAdd: (p) => {
      created.set(p.metadata.name, p.spec!.containers[0]!.image!);
      if (gate) nodes.setReady('default', p.metadata.name, true);
    },
    onUpdate: (_o, p) => { if (p.metadata.deletionTimestamp) deleted.set(p.metadata.name, p.spec!.containers[0]!.image!); },
    onDelete: (p) => deleted.set(p.metadata.name, p.spec!.containers[0]!.image!),
  });
  await pods.start();
  t.teardown(() => pods.stop());

  const a = await ControllerManager.start({ servers: cluster.urls, nats: nats.url, id: 'cm-a', args: LE });
  t.teardown(() => a.stop('SIGKILL'));
  const b = await ControllerManager.start({ servers: cluster.urls, nats: nats.url, id: 'cm-b', args: LE });
  t.teardown(() => b.stop('SIGKILL'));
  await waitFor('a leader', async () => (await a.leading()) || (await b.leading()), 15_000, 100);
  const [leader, standby] = (await a.leading()) ? [a, b] : [b, a];

  const replicas = 12;
  const get = () => client.get<Deployment>(resourcePath(DEPLOYMENTS, 'default', 'web'));
  const tmpl = (image: string) => ({ metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image }] } });
  await client.create(resourcePath(DEPLOYMENTS, 'default'), {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' },
    spec: { replicas, selector: { matchLabels: { app: 'web' } }, template: tmpl('v1'), strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 2, maxUnavailable: 1 } } },
  });
  const rolledOut = (image: string) => waitFor(`rolled out ${image}`, async () => {
    const d = await get();
    const s = d.status ?? {};
    return d.spec?.template?.spec?.containers[0]?.image === image && s.observedGeneration === d.metadata.generation
      && s.updatedReplicas === replicas && s.replicas === replicas && s.availableReplicas === replicas ? d : undefined;
  }, 45_000);
  await rolledOut('v1');
  t.equal([...created.values()].filter((i) => i === 'v1').length, replicas, `${replicas} v1 pods created`);

  const violations: string[] = [];
  const check = () => {
    const live = pods.list('default').filter((p) => !p.metadata.deletionTimestamp);
    const ready = live.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    if (live.length > replicas + 2) violations.push(`${live.length} pods`);
    if (ready.length < replicas - 1) violations.push(`${ready.length} ready`);
  };
  const stopCheck = pods.addEventHandler({ onAdd: check, onUpdate: check, onDelete: check });

  // Hold the rollout with unready new pods, then let it run and kill the leader while it moves.
  gate = false;
  await client.patch(resourcePath(DEPLOYMENTS, 'default', 'web'), { spec: { template: tmpl('v2') } }, 'application/merge-patch+json');
  await waitFor('the rollout held at the surge', async () => ((await get()).status?.updatedReplicas === 2 ? true : undefined), 20_000);
  gate = true;
  for (const p of pods.list('default')) nodes.setReady('default', p.metadata.name, true);
  await waitFor('the rollout under way', async () => ((await get()).status?.updatedReplicas ?? 0) >= 4 ? true : undefined, 20_000, 20);
  await leader.stop('SIGKILL');
  const updatedAtKill = (await get()).status?.updatedReplicas ?? 0;
  t.ok(updatedAtKill < replicas, `killed mid-rollout (${updatedAtKill} of ${replicas} updated)`);
  await waitFor('the standby leads', () => standby.leading(), 15_000, 100);
  await rolledOut('v2');
  await waitFor('old pods gone', () => pods.list('default').every((p) => p.spec?.containers[0]?.image === 'v2') || undefined, 20_000);
  stopCheck();

  t.equal([...created.values()].filter((i) => i === 'v2').length, replicas, `exactly ${replicas} v2 pods were ever created: no duplicate`);
  t.equal([...deleted.values()].filter((i) => i === 'v1').length, replicas, 'every v1 pod deleted once');
  t.equal([...deleted.values()].filter((i) => i === 'v2').length, 0, 'no v2 pod deleted: no extra deletion');
  t.same(violations, [], 'surge and availability bounds held on every pod event');
  t.equal(pods.list('default').length, replicas);
  t.ok(pods.list('default').every((p) => keyOf(p).startsWith('default/web-')));
});
