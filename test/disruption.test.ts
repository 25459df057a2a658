// The disruption controller: the budget arithmetic as tables, then PDB
// status against a real server with pods run by FakeNodes, owned by a
// ReplicaSet and by a Deployment's ReplicaSet.
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { type PodDisruptionBudget, type ScaleFinder, countHealthy, disruptedPods, disruptionsAllowed, expectedCounts, scaledValue } from '../agents/controllers/disruption/budget.ts';
import { DisruptionController } from '../agents/controllers/disruption/controller.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const pod = (name: string, o: { ready?: boolean; owner?: string; deleting?: boolean } = {}): Pod => ({
  metadata: {
    name, namespace: 'ns', ...(o.deleting ? { deletionTimestamp: new Date(NOW).toISOString() } : {}),
    ...(o.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: o.owner, uid: `uid-${o.owner}`, controller: true }] } : {}),
  },
  spec: { containers: [] },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
} as Pod);
const pdb = (spec: PodDisruptionBudget['spec'], status?: PodDisruptionBudget['status']): PodDisruptionBudget => ({ metadata: { name: 'b', namespace: 'ns' }, spec, status });

t.test('budget arithmetic', async (t) => {
  t.equal(scaledValue('50%', 3), 2, '50 % of 3 rounds up');
  t.equal(scaledValue('10%', 10), 1);
  t.equal(scaledValue(4, 10), 4);
  t.throws(() => scaledValue('abc', 3), /invalid value/);
  const scales: Record<string, number> = { 'uid-rs-a': 4, 'uid-rs-b': 6 };
  const finder: ScaleFinder = async (ref) => (scales[ref.uid] !== undefined ? { uid: ref.uid, scale: scales[ref.uid] } : undefined);
  const pods = [pod('a1', { owner: 'rs-a' }), pod('a2', { owner: 'rs-a' }), pod('b1', { owner: 'rs-b' })];
  t.same(await expectedCounts(pdb({ minAvailable: 2 }), pods, finder), { expected: 3, desiredHealthy: 2, unmanaged: [] }, 'integer minAvailable: expected = selected pods');
  t.same(await expectedCounts(pdb({ minAvailable: '50%' }), pods, finder), { expected: 10, desiredHealthy: 5, unmanaged: [] }, 'percent minAvailable: expected = summed controller scale');
  t.same(await expectedCounts(pdb({ maxUnavailable: '25%' }), pods, finder), { expected: 10, desiredHealthy: 7, unmanaged: [] }, 'maxUnavailable 25 % of 10 rounds up to 3');
  t.same(await expectedCounts(pdb({ maxUnavailable: 20 }), pods, finder), { expected: 10, desiredHealthy: 0, unmanaged: [] }, 'desired healthy never below 0');
  t.same(await expectedCounts(pdb({ maxUnavailable: 1 }), [...pods, pod('stray')], finder), { expected: 10, desiredHealthy: 9, unmanaged: ['stray'] }, 'unmanaged pods are reported apart');
  await t.rejects(expectedCounts(pdb({ maxUnavailable: 1 }), [pod('x', { owner: 'gone' })], finder), /found no controllers for pod "x"/);
  t.same(await expectedCounts(pdb({}), pods, finder), { expected: 0, desiredHealthy: 0, unmanaged: [] }, 'neither set');

  const recent = new Date(NOW - 30_000).toISOString();
  const old = new Date(NOW - 150_000).toISOString();
  const d = disruptedPods(pdb({}, { disruptedPods: { a1: recent, a2: old, gone: recent } }), pods, NOW);
  t.same(d.map, { a1: recent }, 'expired and vanished evictions are dropped');
  t.equal(d.recheckAt, NOW + 90_000, 'recheck when the remaining one expires');
  t.equal(countHealthy([...pods, pod('u', { ready: false }), pod('z', { deleting: true })], d.map, NOW), 2, 'ready, not deleting, not recently evicted');
  t.equal(disruptionsAllowed(3, 2, 3), 1);
  t.equal(disruptionsAllowed(1, 2, 3), 0, 'never negative');
  t.equal(disruptionsAllowed(3, 0, 0), 0, 'nothing expected: no disruption');
});

const RS = resolveKind('replicasets')!;
const DEPLOYMENTS = resolveKind('deployments')!;
const PODS = resolveKind('pods')!;
const PDBS = resolveKind('poddisruptionbudgets')!;

t.test('PDB status against a real server', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const nodes = new FakeNodes({ client, nats: nats.url, count: 2 });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const ctl = await runControllers(client, nats.url, [(ctx) => new DisruptionController(ctx)]);
  t.teardown(() => ctl.stop());

  const template = (app: string) => ({ metadata: { labels: { app } }, spec: { containers: [{ name: 'c', image: 'x' }] } });
  const owned = async (owner: KubeObject, names: string[], app: string) => {
    for (const name of names) {
      await client.create(resourcePath(PODS, 'default'), {
        apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app }, ownerReferences: [{ apiVersion: 'apps/v1', kind: owner.kind, name: owner.metadata!.name, uid: owner.metadata!.uid, controller: true }] },
        spec: template(app).spec,
      });
    }
  };
  const status = async (name: string) => (await client.get<PodDisruptionBudget>(resourcePath(PDBS, 'default', name))).status ?? {};
  const until = (name: string, want: Partial<NonNullable<PodDisruptionBudget['status']>>) =>
    waitFor(`${name} status ${JSON.stringify(want)}`, async () => {
      const s = await status(name);
      return Object.entries(want).every(([k, v]) => (s as Record<string, unknown>)[k] === v) ? s : undefined;
    }, 20_000);
  const mkPDB = (name: string, spec: Record<string, unknown>) => client.create(resourcePath(PDBS, 'default'), { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name }, spec });

  const rs = await client.create(resourcePath(RS, 'default'), {
    apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web' }, spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: template('web') },
  });
  await owned(rs, ['web-1', 'web-2', 'web-3'], 'web');

  t.test('minAvailable 2 of 3 ready pods: one disruption; an unready pod takes it away', async (t) => {
    await mkPDB('web-min', { minAvailable: 2, selector: { matchLabels: { app: 'web' } } });
    const s = await until('web-min', { currentHealthy: 3, desiredHealthy: 2, expectedPods: 3, disruptionsAllowed: 1 });
    t.match(s.conditions?.find((c) => c.type === 'DisruptionAllowed'), { status: 'True', reason: 'SufficientPods' });
    t.equal(s.observedGeneration, 1);
    nodes.setReady('default', 'web-2', false);
    const after = await until('web-min', { currentHealthy: 2, disruptionsAllowed: 0 });
    t.match(after.conditions?.find((c) => c.type === 'DisruptionAllowed'), { status: 'False', reason: 'InsufficientPods' });
  });

  t.test('maxUnavailable 50 % counts against the ReplicaSet\'s scale', async (t) => {
    await mkPDB('web-max', { maxUnavailable: '50%', selector: { matchLabels: { app: 'web' } } });
    // 3 replicas: 50 % rounds up to 2 unavailable, so 1 must be healthy; 2 are.
    await until('web-max', { expectedPods: 3, desiredHealthy: 1, currentHealthy: 2, disruptionsAllowed: 1 });
    await client.patch(resourcePath(RS, 'default', 'web'), { spec: { replicas: 6 } }, 'application/merge-patch+json');
    // 6 replicas: 3 may be unavailable, 3 must be healthy; only 2 are.
    await until('web-max', { expectedPods: 6, desiredHealthy: 3, disruptionsAllowed: 0 });
    t.pass('scale change reflected');
  });

  t.test('pods of a Deployment\'s ReplicaSet count against the Deployment\'s scale', async (t) => {
    const d = await client.create(resourcePath(DEPLOYMENTS, 'default'), {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'api' }, spec: { replicas: 2, selector: { matchLabels: { app: 'api' } }, template: template('api') },
    });
    const r = await client.create(resourcePath(RS, 'default'), {
      apiVersion: 'apps/v1', kind: 'ReplicaSet',
      metadata: { name: 'api-1', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'api', uid: d.metadata!.uid, controller: true }] },
      spec: { replicas: 2, selector: { matchLabels: { app: 'api' } }, template: template('api') },
    });
    await owned(r, ['api-1-a', 'api-1-b'], 'api');
    await mkPDB('api', { maxUnavailable: 1, selector: { matchLabels: { app: 'api' } } });
    await until('api', { expectedPods: 2, desiredHealthy: 1, currentHealthy: 2, disruptionsAllowed: 1 });
    await client.patch(resourcePath(DEPLOYMENTS, 'default', 'api'), { spec: { replicas: 5 } }, 'application/merge-patch+json');
    await until('api', { expectedPods: 5, desiredHealthy: 4, disruptionsAllowed: 0 });
    t.pass('the Deployment\'s replicas, not the ReplicaSet\'s');
  });

  t.test('a budget that selects nothing allows nothing', async (t) => {
    await mkPDB('none', { minAvailable: 0, selector: { matchLabels: { app: 'nothing' } } });
    const s = await until('none', { expectedPods: 0, disruptionsAllowed: 0, observedGeneration: 1 });
    t.match(s.conditions?.find((c) => c.type === 'DisruptionAllowed'), { status: 'False' });
  });
});
