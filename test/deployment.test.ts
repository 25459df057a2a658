// The Deployment controller: Kubernetes' rounding of maxSurge/maxUnavailable,
// the sizing rules and the conditions as tables of facts, then rollouts
// against real servers and NATS (ReplicaSet and Deployment controllers in
// this process, pods run by FakeNodes), with the surge and availability
// bounds checked on every event of the pod stream.
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { REVISION, REVISION_HISTORY, setNewReplicaSetAnnotations } from '../agents/controllers/deployment/annotations.ts';
import { DeploymentController } from '../agents/controllers/deployment/controller.ts';
import { maxSurge, maxUnavailable, resolveFenceposts } from '../agents/controllers/deployment/fenceposts.ts';
import { computeHash, equalIgnoreHash } from '../agents/controllers/deployment/hash.ts';
import { activeOrLatest, isScalingEvent, newRSNewReplicas, proportionalSizes, scaleDownOld } from '../agents/controllers/deployment/sizing.ts';
import { calculateStatus, getCondition, isTimedOut, newCondition, recheckAfter, setCondition, updateProgressing } from '../agents/controllers/deployment/status.ts';
import { ReplicaSetController } from '../agents/controllers/replicaset/controller.ts';
import { Informer } from '../agents/informer/informer.ts';
import type { Deployment, Pod, ReplicaSet } from '../agents/informer/types.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

t.test('maxSurge rounds up, maxUnavailable rounds down, both 0 → 1 unavailable', async (t) => {
  // [maxSurge, maxUnavailable, replicas, surge, unavailable]
  const facts: [number | string, number | string, number, number, number][] = [
    ['25%', '25%', 1, 1, 0], ['25%', '25%', 3, 1, 0], ['25%', '25%', 4, 1, 1], ['25%', '25%', 5, 2, 1],
    ['25%', '25%', 10, 3, 2], ['25%', '25%', 100, 25, 25], ['25%', '25%', 0, 0, 1], ['10%', '10%', 9, 1, 0],
    ['10%', '10%', 10, 1, 1], ['10%', '10%', 11, 2, 1], ['50%', '50%', 3, 2, 1], ['0%', '10%', 5, 0, 1],
    ['1%', '0%', 5, 1, 0], [0, 0, 5, 0, 1], [0, '0%', 7, 0, 1], [2, 0, 3, 2, 0], [0, 3, 3, 0, 3],
    ['100%', '0%', 7, 7, 0], ['33%', '33%', 10, 4, 3], ['3', '2', 10, 3, 2],
  ];
  for (const [s, u, n, ws, wu] of facts) t.same(resolveFenceposts(s, u, n), [ws, wu], `maxSurge ${s}, maxUnavailable ${u} of ${n}: ${ws}/${wu}`);
  t.throws(() => resolveFenceposts('abc', 1, 3), /invalid value/);
  const d = (replicas: number, type = 'RollingUpdate', ru: object = { maxSurge: 1, maxUnavailable: 5 }) => ({ metadata: { name: 'd' }, spec: { replicas, strategy: { type, rollingUpdate: ru } } }) as Deployment;
  t.equal(maxUnavailable(d(3)), 3, 'maxUnavailable never above replicas');
  t.equal(maxUnavailable(d(0)), 0, 'nothing unavailable of 0 replicas');
  t.equal(maxUnavailable(d(3, 'Recreate')), 0, 'Recreate: no unavailability budget');
  t.equal(maxSurge(d(3, 'Recreate')), 0, 'Recreate: no surge');
});

const template = (image: string) => ({ metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image }] } });

t.test('pod-template hash', async (t) => {
  t.equal(computeHash(template('a')), computeHash(template('a')), 'deterministic');
  t.equal(computeHash(template('a')), computeHash({ spec: { containers: [{ image: 'a', name: 'c' }] }, metadata: { labels: { app: 'web' } } }), 'key order does not matter');
  t.not(computeHash(template('a')), computeHash(template('b')), 'another template, another hash');
  t.not(computeHash(template('a'), 1), computeHash(template('a')), 'collisionCount changes it');
  t.not(computeHash(template('a'), 1), computeHash(template('a'), 2));
  t.match(computeHash(template('a')), /^[bcdfghjklmnpqrstvwxz2456789]+$/, 'safe alphabet: no vowels');
  const labelled = { ...template('a'), metadata: { labels: { app: 'web', 'pod-template-hash': 'xyz' } } };
  t.ok(equalIgnoreHash(labelled, template('a')), 'equal apart from the hash label');
  t.notOk(equalIgnoreHash(labelled, template('b')));
  const fromKubectl = { metadata: { creationTimestamp: null, labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'a', resources: {} }], volumes: [] } };
  t.ok(equalIgnoreHash(fromKubectl as never, template('a')), 'nulls and empty maps or lists are as absent (Go semantic equality)');
  t.equal(computeHash(fromKubectl as never), computeHash(template('a')), 'and hash the same');
});

const NOW = Date.parse('2026-01-01T12:00:00Z');
let seq = 0;
const rs = (name: string, replicas: number, o: { available?: number; status?: number; desired?: number; max?: number; age?: number; revision?: number; generation?: number; observed?: number } = {}): ReplicaSet => ({
  metadata: {
    name, namespace: 'ns', uid: `uid-${name}`, generation: o.generation ?? 1, creationTimestamp: new Date(NOW - (o.age ?? 1000 - seq++) * 1000).toISOString(),
    annotations: {
      ...(o.desired !== undefined ? { 'deployment.kubernetes.io/desired-replicas': String(o.desired) } : {}),
      ...(o.max !== undefined ? { 'deployment.kubernetes.io/max-replicas': String(o.max) } : {}),
      ...(o.revision !== undefined ? { [REVISION]: String(o.revision) } : {}),
    },
  },
  spec: { replicas },
  status: { replicas: o.status ?? replicas, availableReplicas: o.available ?? replicas, readyReplicas: o.available ?? replicas, observedGeneration: o.observed ?? o.generation ?? 1 },
});
const dep = (replicas: number, maxSurge: number | string, maxUnavailable: number | string, status: object = {}): Deployment => ({
  metadata: { name: 'web', namespace: 'ns', generation: 2 },
  spec: { replicas, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge, maxUnavailable } }, progressDeadlineSeconds: 600 },
  status: { observedGeneration: 1, ...status },
});

t.test('rolling update sizing', async (t) => {
  const d = dep(10, 3, 2);
  t.equal(newRSNewReplicas(d, [rs('old', 10), rs('new', 0)], rs('new', 0)), 3, 'grows by the surge');
  const nw = rs('new', 3, { available: 0 });
  t.equal(newRSNewReplicas(d, [rs('old', 10), nw], nw), 3, 'at replicas + surge: no growth');
  t.equal(newRSNewReplicas(d, [rs('old', 8, { status: 10 }), nw], nw), 3, 'old pods not yet terminating still count');
  t.equal(newRSNewReplicas(d, [rs('old', 8), nw], nw), 5, 'old pods gone: grows to fill the surge');
  // The rollout before was growing `mid` (spec 3, a third pod on its way, status 2), then this one scaled it down to 1:
  // its status does not bound its pods until its controller has seen them all.
  t.equal(newRSNewReplicas(d, [rs('old', 6), rs('mid', 1, { status: 2, generation: 5, observed: 4 }), nw], nw), 3, 'an old ReplicaSet resized but not yet observed: no growth (it may have 3 pods, not 2)');
  t.equal(newRSNewReplicas(d, [rs('old', 6), rs('mid', 1, { status: 3, generation: 5 }), nw], nw), 4, 'observed: its pods count, and the surge is what is left');
  const full = rs('new', 9);
  t.equal(newRSNewReplicas(d, [rs('old', 1), full], full), 10, 'never above replicas');
  t.equal(newRSNewReplicas({ ...d, spec: { ...d.spec, strategy: { type: 'Recreate' } } }, [rs('old', 10), nw], nw), 10, 'Recreate: all at once');

  t.same([...scaleDownOld(d, [rs('old', 10)], rs('new', 3, { available: 0 }))], [['old', 8]], 'only down to replicas − maxUnavailable while the new pods are unavailable');
  t.same([...scaleDownOld(d, [rs('old', 8)], rs('new', 5, { available: 0 }))], [], 'unavailable new pods use up the budget');
  t.same([...scaleDownOld(d, [rs('old', 8)], rs('new', 5, { available: 5 }))], [['old', 3]], 'available new pods free old ones');
  t.same([...scaleDownOld(d, [rs('old', 8, { available: 5 })], rs('new', 5, { available: 3 }))], [['old', 5]], 'unhealthy old pods go first, within the budget');
  t.same([...scaleDownOld(d, [rs('older', 2, { age: 2000 }), rs('old', 4, { age: 1000 })], rs('new', 6, { available: 6 }))], [['older', 0], ['old', 2]], 'oldest ReplicaSet first');
  t.same([...scaleDownOld(d, [rs('older', 0)], rs('new', 10))], [], 'nothing to scale down');
});

t.test('scaling and proportional scaling', async (t) => {
  const d = dep(20, 3, 2, { replicas: 13 });
  const old = rs('old', 8, { desired: 10, max: 13, age: 100 });
  const nw = rs('new', 5, { desired: 10, max: 13, available: 0, age: 10 });
  t.ok(isScalingEvent(d, nw, [old]), 'desired-replicas 10 ≠ 20: a scaling event');
  t.notOk(isScalingEvent(dep(10, 3, 2), nw, [old]), 'same size: a rollout step');
  t.same([...proportionalSizes(d, nw, [old])].sort(), [['new', 9], ['old', 14]], '10 → 20 with 8 old and 5 new shares 10 extra pods as 6 and 4 (23 = 20 + surge)');
  const down = dep(5, 3, 2, { replicas: 13 });
  const sizes = proportionalSizes(down, nw, [old]);
  t.equal([...sizes.values()].reduce((a, b) => a + b, 0), 8, 'scaling down to 5 leaves 5 + surge');
  t.same([...sizes].sort(), [['new', 3], ['old', 5]]);
  t.same([...proportionalSizes(dep(0, 3, 2), nw, [old])].sort(), [['new', 0], ['old', 0]], 'to zero: everything goes');
  t.equal(activeOrLatest(rs('new', 0), [rs('old', 4)])?.metadata.name, 'old', 'the one ReplicaSet with pods');
  t.equal(activeOrLatest(rs('new', 0), [rs('old', 0)])?.metadata.name, 'new', 'none with pods: the new one');
  t.equal(activeOrLatest(rs('new', 2), [rs('old', 4)]), undefined, 'several with pods: proportional');
});

t.test('annotations and conditions', async (t) => {
  const d = { metadata: { name: 'web', annotations: { team: 'a', 'kubectl.kubernetes.io/last-applied-configuration': '{}', [REVISION]: '3' } }, spec: { replicas: 4 } } as Deployment;
  const r = rs('web-x', 0, { revision: 1 });
  t.ok(setNewReplicaSetAnnotations(d, r, 4, true, 1));
  t.same(r.metadata.annotations, { [REVISION]: '4', [REVISION_HISTORY]: '1', team: 'a' }, 'revision raised, old one in history, own annotations copied, last-applied not');
  t.notOk(setNewReplicaSetAnnotations(d, r, 4, true, 1), 'nothing new');
  const fresh = rs('web-y', 0);
  setNewReplicaSetAnnotations(d, fresh, 5, false, 1);
  t.match(fresh.metadata.annotations, { [REVISION]: '5', 'deployment.kubernetes.io/desired-replicas': '4', 'deployment.kubernetes.io/max-replicas': '5' });

  const s: { conditions?: ReturnType<typeof newCondition>[] } = {};
  setCondition(s, newCondition('Progressing', 'True', 'ReplicaSetUpdated', 'a', NOW));
  setCondition(s, newCondition('Progressing', 'True', 'ReplicaSetUpdated', 'b', NOW + 5000));
  t.equal(getCondition(s, 'Progressing')?.message, 'a', 'same status and reason: unchanged');
  setCondition(s, newCondition('Progressing', 'True', 'NewReplicaSetAvailable', 'c', NOW + 9000));
  t.match(getCondition(s, 'Progressing'), { reason: 'NewReplicaSetAvailable', lastTransitionTime: '2026-01-01T12:00:00Z', lastUpdateTime: '2026-01-01T12:00:09Z' }, 'same status keeps the transition time');

  const rolling = dep(4, 1, 1, { replicas: 4, updatedReplicas: 1, readyReplicas: 4, availableReplicas: 4, conditions: [newCondition('Progressing', 'True', 'ReplicaSetUpdated', 'x', NOW - 700_000)] });
  const olds = [rs('old', 3), rs('new', 1)];
  const st = calculateStatus(rolling, olds, olds[1], NOW);
  t.match(st, { replicas: 4, updatedReplicas: 1, availableReplicas: 4, unavailableReplicas: 0, observedGeneration: 2 });
  t.match(getCondition(st, 'Available'), { status: 'True', reason: 'MinimumReplicasAvailable' });
  t.ok(isTimedOut(rolling, st, NOW), 'no progress for 700 s > 600 s');
  updateProgressing(rolling, st, olds[1], olds, NOW);
  t.match(getCondition(st, 'Progressing'), { status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "new" has timed out progressing.' });
  const low = calculateStatus(dep(4, 1, 1), [rs('new', 4, { available: 2 })], undefined, NOW);
  t.match(getCondition(low, 'Available'), { status: 'False', reason: 'MinimumReplicasUnavailable' }, '2 of 4 with maxUnavailable 1');
  const progressed = dep(4, 1, 1, { updatedReplicas: 0 });
  const st2 = calculateStatus(progressed, [rs('new', 2)], rs('new', 2), NOW);
  updateProgressing(progressed, st2, rs('new', 2), [], NOW);
  t.match(getCondition(st2, 'Progressing'), { status: 'True', reason: 'ReplicaSetUpdated' }, 'more updated replicas: progressing');
});

t.test('when to look at a Deployment again for its progress deadline', async (t) => {
  const at = (reason: string, agoMs: number, available: number) => {
    const d = dep(2, 1, 0, { observedGeneration: 2, replicas: 2, updatedReplicas: 2, readyReplicas: available, availableReplicas: available, conditions: [newCondition('Progressing', 'True', reason, 'x', NOW - agoMs)] });
    return recheckAfter(d, calculateStatus(d, [rs('new', 2, { available })], rs('new', 2, { available }), NOW), NOW);
  };
  t.equal(at('ReplicaSetUpdated', 100_000, 1), 501_000, 'a rollout in progress: after its deadline, plus a second');
  t.equal(at('ReplicaSetUpdated', 599_500, 1), 0, 'less than a second left: now (rate-limited by the caller)');
  t.equal(at('NewReplicaSetAvailable', 700_000, 1), undefined, 'a complete rollout that lost an available pod has no deadline to wait for (isTimedOut never fires for it)');
  t.notOk(isTimedOut(dep(2, 1, 0, { conditions: [newCondition('Progressing', 'True', 'NewReplicaSetAvailable', 'x', NOW - 700_000)] }), { conditions: [newCondition('Progressing', 'True', 'NewReplicaSetAvailable', 'x', NOW - 700_000)] } as never, NOW), 'as isTimedOut says');
  t.equal(at('NewReplicaSetAvailable', 700_000, 2), undefined, 'complete: nothing pending');
  t.equal(at('ProgressDeadlineExceeded', 700_000, 1), undefined, 'timed out already');
});

const PODS = resolveKind('pods')!;
const DEPLOYMENTS = resolveKind('deployments')!;
const RS = resolveKind('replicasets')!;

t.test('Deployments against a real cluster', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const nodes = new FakeNodes({ client, nats: nats.url, count: 3 });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const pods = new Informer<Pod>({ client, nats: nats.url, kind: PODS });
  await pods.start();
  t.teardown(() => pods.stop());
  const ctl = await runControllers(client, nats.url, [(ctx) => new ReplicaSetController(ctx), (ctx) => new DeploymentController(ctx)]);
  t.teardown(() => ctl.stop());

  const tmpl = (app: string, image: string, extra: object = {}) => ({ metadata: { labels: { app } }, spec: { containers: [{ name: 'c', image }], ...extra } });
  const mk = (name: string, spec: Record<string, unknown>) => client.create<Deployment>(resourcePath(DEPLOYMENTS, 'default'), {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name }, spec: { selector: { matchLabels: { app: name } }, template: tmpl(name, 'v1'), ...spec },
  });
  const get = (name: string) => client.get<Deployment>(resourcePath(DEPLOYMENTS, 'default', name));
  const patch = (name: string, body: object) => client.patch<Deployment>(resourcePath(DEPLOYMENTS, 'default', name), body, 'application/merge-patch+json');
  const replicaSets = async (name: string) => (await client.list<ReplicaSet>(resourcePath(RS, 'default'), { labelSelector: `app=${name}` })).items;
  const complete = (name: string, timeoutMs = 30_000) => waitFor(`${name} rolled out`, async () => {
    const d = await get(name);
    const s = d.status ?? {};
    const want = d.spec?.replicas ?? 1;
    const prog = s.conditions?.find((c) => c.type === 'Progressing');
    return s.observedGeneration === d.metadata.generation && s.updatedReplicas === want && s.replicas === want && s.availableReplicas === want && prog?.reason === 'NewReplicaSetAvailable' ? d : undefined;
  }, timeoutMs);
  const livePods = (app: string) => pods.list('default').filter((p) => p.metadata.labels?.app === app && !p.metadata.deletionTimestamp);

  await t.test('create: a ReplicaSet named by the template hash, revision 1, Available', async (t) => {
    const d = await mk('web', { replicas: 4, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 1 } } });
    const done = await complete('web');
    const [r] = await replicaSets('web');
    const hash = r!.metadata.labels!['pod-template-hash']!;
    t.equal(r!.metadata.name, `web-${hash}`, 'named <deployment>-<hash>');
    t.same(r!.spec!.selector!.matchLabels, { app: 'web', 'pod-template-hash': hash }, 'selector gets the hash');
    t.equal(r!.metadata.ownerReferences?.[0]?.uid, d.metadata!.uid);
    t.equal(r!.metadata.annotations?.[REVISION], '1');
    t.equal(done.metadata.annotations?.[REVISION], '1', 'the Deployment carries its revision');
    t.match(done.status?.conditions?.find((c) => c.type === 'Available'), { status: 'True', reason: 'MinimumReplicasAvailable' });
    t.equal(livePods('web').length, 4);
    t.ok(livePods('web').every((p) => p.metadata.labels?.['pod-template-hash'] === hash));
  });

  await t.test('rolling update within maxSurge and maxUnavailable on every pod event', async (t) => {
    const replicas = 4;
    const violations: string[] = [];
    let events = 0;
    const check = () => {
      events++;
      const live = livePods('web');
      const ready = live.filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      if (live.length > replicas + 1) violations.push(`${live.length} pods > replicas + maxSurge`);
      if (ready.length < replicas - 1) violations.push(`${ready.length} ready < replicas − maxUnavailable`);
    };
    const stop = pods.addEventHandler({ onAdd: check, onUpdate: check, onDelete: check });
    await patch('web', { spec: { template: tmpl('web', 'v2') } });
    const d = await complete('web');
    stop();
    t.same(violations, [], `no bound broken over ${events} pod events`);
    t.equal(d.metadata.annotations?.[REVISION], '2');
    const rss = await replicaSets('web');
    t.equal(rss.length, 2, 'the old ReplicaSet is kept (history)');
    t.same(rss.map((r) => r.spec?.replicas).sort(), [0, 4]);
    t.ok(livePods('web').every((p) => p.spec?.containers[0]?.image === 'v2'), 'every pod runs v2');
  });

  await t.test('rollback to the old template reuses its ReplicaSet with a new revision', async (t) => {
    const before = await replicaSets('web');
    await patch('web', { spec: { template: tmpl('web', 'v1') } });
    const d = await complete('web');
    const after = await replicaSets('web');
    t.same(after.map((r) => r.metadata.name).sort(), before.map((r) => r.metadata.name).sort(), 'no new ReplicaSet');
    const v1 = after.find((r) => r.spec?.template?.spec?.containers[0]?.image === 'v1')!;
    t.equal(v1.metadata.annotations?.[REVISION], '3');
    t.equal(v1.metadata.annotations?.[REVISION_HISTORY], '1');
    t.equal(d.metadata.annotations?.[REVISION], '3');
  });

  await t.test('revisionHistoryLimit removes the oldest empty ReplicaSets', async (t) => {
    await patch('web', { spec: { revisionHistoryLimit: 1, template: tmpl('web', 'v4') } });
    await complete('web');
    await waitFor('history trimmed to 1 old ReplicaSet', async () => ((await replicaSets('web')).length === 2 ? true : undefined));
    const rss = await replicaSets('web');
    t.same(rss.map((r) => r.spec?.template?.spec?.containers[0]?.image).sort(), ['v1', 'v4'], 'v2 (revision 2) went, v1 (revision 3) stays');
  });

  await t.test('pause holds a template change; resume rolls it out', async (t) => {
    await patch('web', { spec: { paused: true } });
    await waitFor('paused condition', async () => ((await get('web')).status?.conditions?.find((c) => c.type === 'Progressing')?.reason === 'DeploymentPaused' ? true : undefined));
    await patch('web', { spec: { template: tmpl('web', 'v5') } });
    await waitFor('generation observed', async () => {
      const d = await get('web');
      return d.status?.observedGeneration === d.metadata.generation ? true : undefined;
    });
    t.notOk((await replicaSets('web')).some((r) => r.spec?.template?.spec?.containers[0]?.image === 'v5'), 'no ReplicaSet for the new template while paused');
    await patch('web', { spec: { paused: false } });
    await complete('web');
    t.ok(livePods('web').every((p) => p.spec?.containers[0]?.image === 'v5'), 'resumed and rolled out');
  });

  await t.test('Recreate: no new pod while an old one exists', async (t) => {
    await mk('batch', { replicas: 3, strategy: { type: 'Recreate' } });
    await complete('batch');
    const hashes = () => new Set(pods.list('default').filter((p) => p.metadata.labels?.app === 'batch').map((p) => p.metadata.labels?.['pod-template-hash']));
    let mixed = 0;
    const check = () => { if (hashes().size > 1) mixed++; };
    const stop = pods.addEventHandler({ onAdd: check, onUpdate: check, onDelete: check });
    await patch('batch', { spec: { template: tmpl('batch', 'v2') } });
    await complete('batch');
    stop();
    t.equal(mixed, 0, 'never pods of two templates at once (terminating ones included)');
    t.equal(livePods('batch').length, 3);
  });

  await t.test('scaled mid-rollout: proportional', async (t) => {
    await mk('api', { replicas: 10, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 3, maxUnavailable: 2 } } });
    await complete('api');
    // New pods can never be placed: the rollout stalls at old 8, new 5.
    await patch('api', { spec: { template: tmpl('api', 'v2', { nodeSelector: { nowhere: 'true' } }) } });
    const sizes = async () => Object.fromEntries((await replicaSets('api')).map((r) => [r.spec?.template?.spec?.containers[0]?.image, r.spec?.replicas]));
    await waitFor('stalled at 8 + 5', async () => { const s = await sizes(); return s.v1 === 8 && s.v2 === 5 ? s : undefined; });
    await patch('api', { spec: { replicas: 20 } });
    const s = await waitFor('proportional sizes', async () => { const s = await sizes(); return s.v1 === 14 && s.v2 === 9 ? s : undefined; });
    t.same(s, { v1: 14, v2: 9 }, '10 more pods plus the surge shared 6 : 4');
  });

  await t.test('a complete Deployment past its progress deadline loses an available pod: the controllers keep turning', async (t) => {
    // The 30-minute mixed chaos run: a node went silent, its pods were marked
    // not Ready, and a Deployment whose Progressing condition
    // (NewReplicaSetAvailable) was older than its deadline was requeued at
    // once, from inside its own reconcile, for ever — without I/O, so the
    // controller manager's event loop never turned again. Here the
    // controllers run in this process: had it happened, no timer of the
    // waits below would fire and the test would hang until tap's timeout.
    await mk('steady', { replicas: 2, progressDeadlineSeconds: 1 });
    await complete('steady');
    await new Promise((r) => setTimeout(r, 1500)); // past the deadline
    const [victim] = livePods('steady');
    nodes.setReady('default', victim!.metadata.name, false);
    const d = await waitFor('1 of 2 available', async () => {
      const d = await get('steady');
      return d.status?.availableReplicas === 1 ? d : undefined;
    });
    t.match(d.status?.conditions?.find((c) => c.type === 'Progressing'), { status: 'True', reason: 'NewReplicaSetAvailable' }, 'still the completed rollout');
    nodes.setReady('default', victim!.metadata.name, true);
    await complete('steady');
    t.pass('the pod came back and the Deployment was seen complete again');
  });

  await t.test('progressDeadlineSeconds: ProgressDeadlineExceeded', async (t) => {
    await mk('stuck', { replicas: 2, progressDeadlineSeconds: 2, template: tmpl('stuck', 'v1', { nodeSelector: { nowhere: 'true' } }) });
    const d = await waitFor('deadline exceeded', async () => {
      const d = await get('stuck');
      return d.status?.conditions?.find((c) => c.type === 'Progressing')?.reason === 'ProgressDeadlineExceeded' ? d : undefined;
    }, 30_000);
    t.match(d.status?.conditions?.find((c) => c.type === 'Progressing'), { status: 'False', message: /has timed out progressing/ });
    t.match(d.status?.conditions?.find((c) => c.type === 'Available'), { status: 'False', reason: 'MinimumReplicasUnavailable' });
  });
});
