// The ReplicaSet controller: Kubernetes' deletion ranking and slow-start
// batches as tables of facts, then create/scale/adopt/release/delete ranking
// against real servers and NATS with pods run by FakeNodes.
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { ReplicaSetController } from '../agents/controllers/replicaset/controller.ts';
import { POD_DELETION_COST, compareForDeletion, isPodAvailable, podsToDelete } from '../agents/controllers/replicaset/pods.ts';
import { slowStartBatch } from '../agents/controllers/replicaset/slow-start.ts';
import { calculateStatus } from '../agents/controllers/replicaset/status.ts';
import { Informer } from '../agents/informer/informer.ts';
import type { Pod, ReplicaSet } from '../agents/informer/types.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

interface P { node?: string; phase?: string; ready?: boolean; readyAgo?: number; createdAgo?: number; restarts?: number; cost?: number; uid?: string }
const pod = (name: string, o: P = {}): Pod => ({
  metadata: {
    name, namespace: 'ns', uid: o.uid ?? `uid-${name}`, creationTimestamp: ago(o.createdAgo ?? 3600),
    ...(o.cost !== undefined ? { annotations: { [POD_DELETION_COST]: String(o.cost) } } : {}),
  },
  spec: { containers: [{ name: 'c' }], ...(o.node !== '' ? { nodeName: o.node ?? 'n1' } : {}) },
  status: {
    phase: o.phase ?? 'Running',
    conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True', lastTransitionTime: ago(o.readyAgo ?? 600) }],
    containerStatuses: [{ name: 'c', ready: o.ready !== false, restartCount: o.restarts ?? 0 }],
  },
} as Pod);

t.test('deletion ranking (ActivePodsWithRanks)', async (t) => {
  // [description, first, second, rank of first, rank of second]: `first` goes before `second`.
  const facts: [string, Pod, Pod, number?, number?][] = [
    ['unassigned before assigned', pod('a', { node: '', phase: 'Pending', ready: false }), pod('b', { phase: 'Pending', ready: false })],
    ['Pending before Unknown', pod('a', { phase: 'Pending', ready: false }), pod('b', { phase: 'Unknown', ready: false })],
    ['Unknown before Running', pod('a', { phase: 'Unknown' }), pod('b', { phase: 'Running' })],
    ['not ready before ready', pod('a', { ready: false }), pod('b')],
    ['lower deletion cost first', pod('a', { cost: -5 }), pod('b', { cost: 10 })],
    ['deletion cost outranks node crowding', pod('a', { cost: 1 }), pod('b', { cost: 2 }), 1, 5],
    ['more related pods on its node first', pod('a'), pod('b'), 3, 1],
    ['ready more recently first', pod('a', { readyAgo: 10 }), pod('b', { readyAgo: 10_000 })],
    ['more restarts first', pod('a', { restarts: 4 }), pod('b', { restarts: 1 })],
    ['newer first', pod('a', { createdAgo: 5 }), pod('b', { createdAgo: 50_000 })],
    ['same log₂ age bucket: by uid', pod('a', { createdAgo: 1000, uid: 'u1' }), pod('b', { createdAgo: 1001, uid: 'u2' })],
    ['restarts outrank creation time', pod('a', { restarts: 1, createdAgo: 50_000 }), pod('b', { createdAgo: 5 })],
    ['readiness outranks phase of an equal kind only after phase', pod('a', { phase: 'Pending', ready: true }), pod('b', { phase: 'Running', ready: false })],
  ];
  for (const [what, a, b, ra = 1, rb = 1] of facts) {
    t.ok(compareForDeletion({ pod: a, rank: ra }, { pod: b, rank: rb }, NOW) < 0, what);
    t.ok(compareForDeletion({ pod: b, rank: rb }, { pod: a, rank: ra }, NOW) > 0, `${what} (reversed)`);
  }
  t.equal(compareForDeletion({ pod: pod('a'), rank: 1 }, { pod: pod('a'), rank: 1 }, NOW), 0, 'a pod equals itself');

  const pods = [pod('old-ready', { createdAgo: 90_000, node: 'n1' }), pod('unready', { ready: false, node: 'n2' }), pod('crowded', { node: 'n3' }), pod('unbound', { node: '', phase: 'Pending', ready: false })];
  const related = [...pods, pod('x1', { node: 'n3' }), pod('x2', { node: 'n3' })];
  t.same(podsToDelete(pods, related, 3, NOW).map((p) => p.metadata.name), ['unbound', 'unready', 'crowded'], 'unbound, unready, then the crowded node');
  t.same(podsToDelete(pods, related, 9, NOW).length, 4, 'asking for more than there are returns them all');
});

t.test('availability and status', async (t) => {
  t.ok(isPodAvailable(pod('a', { readyAgo: 11 }), 10, NOW), 'ready for longer than minReadySeconds');
  t.notOk(isPodAvailable(pod('a', { readyAgo: 10 }), 10, NOW), 'exactly minReadySeconds is not yet available');
  t.ok(isPodAvailable(pod('a', { readyAgo: 0 }), 0, NOW), 'minReadySeconds 0: ready is available');
  t.notOk(isPodAvailable(pod('a', { ready: false }), 0, NOW), 'not ready');
  const rs = { metadata: { name: 'r', namespace: 'ns', generation: 2 }, spec: { replicas: 4, minReadySeconds: 30, template: { metadata: { labels: { app: 'x', tier: 'y' } } } } } as ReplicaSet;
  const labeled = (p: Pod, l: Record<string, string>) => ({ ...p, metadata: { ...p.metadata, labels: l } }) as Pod;
  const s = calculateStatus(rs, [labeled(pod('a', { readyAgo: 60 }), { app: 'x', tier: 'y' }), labeled(pod('b', { readyAgo: 5 }), { app: 'x', tier: 'y' }), labeled(pod('c', { ready: false }), { app: 'x' })], new Error('quota exceeded'), NOW);
  t.match(s, { replicas: 3, fullyLabeledReplicas: 2, readyReplicas: 2, availableReplicas: 1 });
  t.match(s.conditions, [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: 'quota exceeded' }], 'too few pods and an error: FailedCreate');
  t.notOk(calculateStatus({ ...rs, status: s }, [], undefined, NOW).conditions, 'a clean round removes ReplicaFailure');
});

t.test('slow start batches', async (t) => {
  let calls = 0;
  t.same(await slowStartBatch(10, 1, async () => { calls++; }), { successes: 10 });
  t.equal(calls, 10, 'batches 1, 2, 4, 3');
  calls = 0;
  const r = await slowStartBatch(100, 1, async () => { if (++calls > 4) throw new Error('quota'); });
  t.equal(r.successes, 4, 'batches 1 and 2 succeed, batch 4 has one success then failures');
  t.equal(calls, 7, 'stops after the first failing batch: 1 + 2 + 4 calls, not 100');
  t.match(r.error, /quota/);
  let pending = 0;
  let most = 0;
  const limited = await slowStartBatch(100, 1, async () => {
    most = Math.max(most, ++pending);
    await new Promise((res) => setTimeout(res, 1));
    pending--;
  }, 8);
  t.same(limited, { successes: 100 });
  t.equal(most, 8, 'never more than 8 calls pending at once');
});

const PODS = resolveKind('pods')!;
const RS = resolveKind('replicasets')!;
const EVENTS = resolveKind('events')!;

t.test('ReplicaSets against a real cluster', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const nodes = new FakeNodes({ client, nats: nats.url, count: 3 });
  await nodes.start();
  t.teardown(() => nodes.stop());
  // Every pod ever created, to prove nothing was created twice.
  const seen = new Informer<Pod>({ client, nats: nats.url, kind: PODS });
  const created = new Set<string>();
  seen.onAdd((p) => created.add(p.metadata.name));
  await seen.start();
  t.teardown(() => seen.stop());
  const ctl = await runControllers(client, nats.url, [(ctx) => new ReplicaSetController(ctx)]);
  t.teardown(() => ctl.stop());

  const template = (app: string) => ({ metadata: { labels: { app } }, spec: { containers: [{ name: 'c', image: 'x' }] } });
  const mkRS = (name: string, replicas: number, app = name) => client.create<ReplicaSet>(resourcePath(RS, 'default'), {
    apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name }, spec: { replicas, selector: { matchLabels: { app } }, template: template(app) },
  });
  const livePods = async (app: string) => (await client.list<Pod>(resourcePath(PODS, 'default'), { labelSelector: `app=${app}` })).items.filter((p) => !p.metadata.deletionTimestamp);
  const status = async (name: string) => (await client.get<ReplicaSet>(resourcePath(RS, 'default', name))).status ?? {};
  const settled = (name: string, n: number) => waitFor(`${name} at ${n} ready pods`, async () => {
    const s = await status(name);
    const pods = await livePods(name);
    return s.replicas === n && s.readyReplicas === n && s.availableReplicas === n && s.fullyLabeledReplicas === n && pods.length === n ? pods : undefined;
  }, 30_000);

  await t.test('create, scale up and down, with events and no duplicate', async (t) => {
    const rs = await mkRS('web', 3);
    let pods = await settled('web', 3);
    t.ok(pods.every((p) => p.metadata.ownerReferences?.[0]?.uid === rs.metadata!.uid && p.metadata.generateName === 'web-'), 'controlled pods named web-…');
    t.equal((await status('web')).observedGeneration, rs.metadata!.generation);
    await client.patch(resourcePath(RS, 'default', 'web'), { spec: { replicas: 6 } }, 'application/merge-patch+json');
    pods = await settled('web', 6);
    t.equal([...created].filter((n) => n.startsWith('web-')).length, 6, 'six pods ever created for six replicas');
    // Scale down by one with one pod not ready: that one goes.
    const unready = pods[2]!.metadata.name;
    nodes.setReady('default', unready, false);
    await waitFor('web not ready', async () => ((await status('web')).readyReplicas === 5 ? true : undefined));
    await client.patch(resourcePath(RS, 'default', 'web'), { spec: { replicas: 5 } }, 'application/merge-patch+json');
    pods = await settled('web', 5);
    t.notOk(pods.some((p) => p.metadata.name === unready), `the not-ready pod ${unready} was deleted`);
    const events = (await client.list<{ reason: string; involvedObject: { name: string } }>(resourcePath(EVENTS, 'default'))).items.filter((e) => e.involvedObject.name === 'web');
    t.ok(events.some((e) => e.reason === 'SuccessfulCreate'), 'SuccessfulCreate event');
    t.ok(events.some((e) => e.reason === 'SuccessfulDelete'), 'SuccessfulDelete event');
  });

  await t.test('adopts a matching orphan and releases a pod that stops matching', async (t) => {
    const orphan = await client.create<Pod>(resourcePath(PODS, 'default'), { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'stray', labels: { app: 'db' } }, spec: template('db').spec });
    // Informers of different kinds are not ordered: let the controller's pod cache see the orphan first.
    await ctl.ctx.informers.informer('pods').waitForResourceVersion(orphan.metadata.resourceVersion!);
    const rs = await mkRS('db', 2);
    const pods = await settled('db', 2);
    const adopted = pods.find((p) => p.metadata.name === 'stray');
    t.ok(adopted, 'the orphan counts as one of the two');
    t.equal(adopted?.metadata.ownerReferences?.[0]?.uid, rs.metadata!.uid, 'with a controller reference to the ReplicaSet');
    t.equal(adopted?.metadata.uid, orphan.metadata.uid);
    t.equal([...created].filter((n) => n.startsWith('db-')).length, 1, 'only one pod created');
    await client.patch(resourcePath(PODS, 'default', 'stray'), { metadata: { labels: { app: 'other' } } }, 'application/merge-patch+json');
    await settled('db', 2);
    const released = await waitFor('stray released', async () => {
      const p = await client.get<Pod>(resourcePath(PODS, 'default', 'stray'));
      return !(p.metadata.ownerReferences ?? []).length ? p : undefined;
    });
    t.ok(released, 'the relabelled pod lost its controller reference and a replacement was made');
  });

  await t.test('scale down honours pod-deletion-cost', async (t) => {
    // All pods are ready and spread round-robin over 3 nodes by FakeNodes, so a deletion cost decides.
    await mkRS('api', 3);
    const pods = await settled('api', 3);
    const keep = pods[1]!.metadata.name;
    for (const p of pods) {
      if (p.metadata.name !== keep) await client.patch(resourcePath(PODS, 'default', p.metadata.name), { metadata: { annotations: { [POD_DELETION_COST]: '-100' } } }, 'application/merge-patch+json');
    }
    await client.patch(resourcePath(RS, 'default', 'api'), { spec: { replicas: 1 } }, 'application/merge-patch+json');
    const left = await settled('api', 1);
    t.equal(left[0]!.metadata.name, keep, 'the pods with a low deletion cost went first');
  });

  await t.test('status claims a generation only once every pod asked for is in the cache', async (t) => {
    // The Deployment controller reads observedGeneration as "status.replicas counts every pod
    // this ReplicaSet may have": a creation still on its way must hold it back.
    const rsc = ctl.controllers[0] as ReplicaSetController;
    const replicaSets = ctl.ctx.informers.informer<ReplicaSet>('replicasets');
    await mkRS('hold', 2);
    await settled('hold', 2);
    // A creation the cache has not seen yet (as right after a create returned).
    rsc.expectations.expectCreations('default/hold', 1);
    const scaled = await client.patch<ReplicaSet>(resourcePath(RS, 'default', 'hold'), { spec: { replicas: 1 } }, 'application/merge-patch+json');
    await replicaSets.waitForResourceVersion(scaled.metadata.resourceVersion!);
    // One pass on the scaled-down ReplicaSet (the queue may run others: all see the same expectations).
    await rsc['reconcile']('default/hold');
    const held = await status('hold');
    t.ok((held.observedGeneration ?? 0) < scaled.metadata.generation!, `generation ${scaled.metadata.generation} not claimed (observedGeneration ${held.observedGeneration})`);
    t.equal((await livePods('hold')).length, 2, 'and nothing deleted on an incomplete cache');
    rsc.expectations.creationObserved('default/hold');
    await rsc['reconcile']('default/hold');
    await settled('hold', 1);
    t.equal((await status('hold')).observedGeneration, scaled.metadata.generation, 'claimed once the cache is complete');
  });
});
