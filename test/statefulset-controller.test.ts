// StatefulSet: identities and revision hashes as tables, then against a real
// server with FakeNodes: ordered creation (each pod only once the lower ones
// are Running and Ready, checked on every pod event), stable names, labels,
// hostname/subdomain, per-pod claims kept on scale-down, scale-down from the
// highest ordinal, Parallel, RollingUpdate with a partition and OnDelete
// with ControllerRevisions, `kubectl rollout status`; and two real
// `flotilla controllers` processes with the leader killed (-9) during a
// scale-up, never two pods for one ordinal.
import t from 'tap';
import { resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { CONTROLLER_REVISION_HASH, type ControllerRevision, revisionData, revisionHash, safeEncode, templateOf } from '../agents/controllers/history/revisions.ts';
import { GarbageCollector } from '../agents/controllers/garbagecollector/controller.ts';
import { StatefulSetController } from '../agents/controllers/statefulset/controller.ts';
import { POD_INDEX_LABEL, POD_NAME_LABEL, type StatefulSetObj, claimsFor, newStatefulPod, ordinalOf } from '../agents/controllers/statefulset/pods.ts';
import { Informer } from '../agents/informer/informer.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { ControllerManager } from '../harness/controllers.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { waitFor } from '../harness/procs.ts';
import { startWorkloadCluster } from './support/workload-cluster.ts';

const SETS = resolveKind('statefulsets')!;
const PODS = resolveKind('pods')!;
const CLAIMS = resolveKind('persistentvolumeclaims')!;
const REVISIONS = resolveKind('controllerrevisions')!;

const template = (image: string, extra: Record<string, unknown> = {}) => ({ metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'db', image }], ...extra } });

t.test('identities, claims and revision names', async (t) => {
  t.equal(ordinalOf('web', 'web-0'), 0);
  t.equal(ordinalOf('web', 'web-12'), 12);
  t.equal(ordinalOf('web', 'web-x'), undefined);
  t.equal(ordinalOf('web', 'webby-1'), undefined, 'another set');
  t.equal(ordinalOf('web-1', 'web-1-2'), 2, 'a set whose name ends in a number');
  t.equal(ordinalOf('web', 'web-1-2'), undefined);

  const set = {
    metadata: { name: 'web', namespace: 'ns', uid: 'u1' }, apiVersion: 'apps/v1', kind: 'StatefulSet',
    spec: {
      serviceName: 'nginx', selector: { matchLabels: { app: 'db' } }, template: template('x'),
      volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
    },
  } as StatefulSetObj;
  const claims = claimsFor(set, 2);
  t.match(claims, [{ metadata: { name: 'data-web-2', namespace: 'ns', labels: { app: 'db' } }, spec: { accessModes: ['ReadWriteOnce'] } }]);
  const pod = newStatefulPod(set, { ...template('x'), spec: { ...template('x').spec, volumes: [{ name: 'data', emptyDir: {} }] } } as never, 'web-abc', 2);
  t.equal(pod.metadata.name, 'web-2');
  t.same(pod.metadata.labels, { app: 'db', [POD_NAME_LABEL]: 'web-2', [POD_INDEX_LABEL]: '2', [CONTROLLER_REVISION_HASH]: 'web-abc' });
  t.equal(pod.spec?.hostname, 'web-2');
  t.equal(pod.spec?.subdomain, 'nginx');
  t.same(pod.spec?.volumes, [{ name: 'data', persistentVolumeClaim: { claimName: 'data-web-2' } }], 'the claim replaces the template volume of that name');
  t.match(pod.metadata.ownerReferences, [{ kind: 'StatefulSet', name: 'web', uid: 'u1', controller: true }]);

  t.equal(safeEncode('0123456789'), '456789bcdf', 'Kubernetes\' safe alphabet, indexed by char code modulo 27');
  const d = revisionData(template('a') as never);
  t.equal(d!.spec!.template!.$patch, 'replace');
  t.same(templateOf({ data: d } as ControllerRevision), template('a'));
  t.equal(revisionHash(d), revisionHash(revisionData(template('a') as never)), 'stable');
  t.not(revisionHash(d), revisionHash(revisionData(template('b') as never)), 'another template, another hash');
  t.not(revisionHash(d), revisionHash(d, 1), 'collisionCount changes the name');
  t.match(revisionHash(d), /^[bcdfghjklmnpqrstvwxz2456789]+$/);
});

t.test('StatefulSets against a real server', async (t) => {
  const c = await startWorkloadCluster(t, [(ctx) => new StatefulSetController(ctx), (ctx) => new GarbageCollector(ctx)], { nodes: { count: 2 } });
  const { client, nodes } = c;
  const get = (name: string) => client.get<StatefulSetObj>(resourcePath(SETS, 'default', name));
  const mk = (name: string, spec: Record<string, unknown>) => client.create<StatefulSetObj>(resourcePath(SETS, 'default'), {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name },
    spec: { selector: { matchLabels: { app: 'db' } }, template: template('db:1'), ...spec },
  });
  const patch = (name: string, p: Record<string, unknown>) => client.patch(resourcePath(SETS, 'default', name), p, 'application/merge-patch+json');
  const livePods = async (uid: string) => (await c.podsOf('default', uid)).filter((p) => !p.metadata.deletionTimestamp);
  const settled = (name: string, want: Record<string, unknown>) => waitFor(`${name} status ${JSON.stringify(want)}`, async () => {
    const s = await get(name);
    return s.status?.observedGeneration === s.metadata.generation && Object.entries(want).every(([k, v]) => (s.status as Record<string, unknown>)?.[k] === v) ? s : undefined;
  }, 30_000);

  // Every pod event: ordered sets create a pod only when all lower ordinals are Running and Ready; never two pods per ordinal.
  const watch = new Informer<Pod>({ client, nats: c.nats.url, kind: PODS, name: 'test-pods' });
  const violations: string[] = [];
  const ordered = new Set(['web']);
  const uidsByName = new Map<string, Set<string>>();
  const deletions: string[] = [];
  watch.addEventHandler({
    onAdd: (p) => {
      const set = p.metadata.ownerReferences?.[0]?.name;
      const ord = set ? ordinalOf(set, p.metadata.name) : undefined;
      if (!set || ord === undefined) return;
      const uids = uidsByName.get(p.metadata.name) ?? new Set();
      uids.add(p.metadata.uid!);
      uidsByName.set(p.metadata.name, uids);
      if (!ordered.has(set)) return;
      for (let i = 0; i < ord; i++) {
        const lower = watch.get('default', `${set}-${i}`);
        const ready = lower?.status?.phase === 'Running' && lower.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');
        if (!ready) violations.push(`${p.metadata.name} created while ${set}-${i} was not Running and Ready`);
      }
    },
    onUpdate: (o, p) => {
      if (p.metadata.deletionTimestamp && !o.metadata.deletionTimestamp) deletions.push(p.metadata.name);
    },
  });
  await watch.start();
  t.teardown(() => watch.stop());

  t.test('OrderedReady: ordinal names, identity, claims; scale down from the highest, claims kept', async (t) => {
    const s = await mk('web', {
      replicas: 3, serviceName: 'web',
      volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
    });
    const st = await settled('web', { replicas: 3, readyReplicas: 3, availableReplicas: 3, updatedReplicas: 3, currentReplicas: 3 });
    t.equal(st.status?.currentRevision, st.status?.updateRevision);
    const pods = (await livePods(s.metadata.uid!)).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    t.same(pods.map((p) => p.metadata.name), ['web-0', 'web-1', 'web-2']);
    const p1 = pods[1]!;
    t.match(p1.metadata.labels, { [POD_NAME_LABEL]: 'web-1', [POD_INDEX_LABEL]: '1', [CONTROLLER_REVISION_HASH]: st.status?.updateRevision });
    t.equal(p1.spec?.hostname, 'web-1');
    t.equal(p1.spec?.subdomain, 'web');
    t.match(p1.spec?.volumes, [{ name: 'data', persistentVolumeClaim: { claimName: 'data-web-1' } }]);
    const claims = async () => (await client.list<KubeObject>(resourcePath(CLAIMS, 'default'))).items.map((x) => x.metadata!.name!).filter((n) => n.startsWith('data-web-')).sort();
    t.same(await claims(), ['data-web-0', 'data-web-1', 'data-web-2']);
    const revs = (await client.list<ControllerRevision>(resourcePath(REVISIONS, 'default'))).items.filter((r) => r.metadata.ownerReferences?.[0]?.uid === s.metadata.uid);
    t.equal(revs.length, 1);
    t.match(revs[0], { metadata: { name: st.status?.updateRevision }, revision: 1 });
    t.equal(revs[0]!.metadata.labels?.[CONTROLLER_REVISION_HASH], st.status!.updateRevision!.slice('web-'.length));

    deletions.length = 0;
    await patch('web', { spec: { replicas: 1 } });
    await settled('web', { replicas: 1, readyReplicas: 1 });
    t.same(deletions.filter((n) => n.startsWith('web-')), ['web-2', 'web-1'], 'highest ordinal first');
    t.same(await claims(), ['data-web-0', 'data-web-1', 'data-web-2'], 'claims kept (Retain)');
    const ev = await waitFor('events', async () => {
      const e = await c.eventsOf('default', 'web', 'StatefulSet');
      return e.some((x) => x.startsWith('SuccessfulDelete: delete Pod web-2')) ? e : undefined;
    });
    t.ok(ev.includes('SuccessfulCreate: create Pod web-0 in StatefulSet web successful'));
    t.ok(ev.includes('SuccessfulCreate: create Claim data-web-0 Pod web-0 in StatefulSet web success'));
  });

  t.test('OrderedReady waits for a pod that cannot run; Parallel does not', async (t) => {
    const stuck = template('db:1', { nodeSelector: { 'no-such': 'node' } });
    ordered.add('ord');
    const o = await mk('ord', { replicas: 3, template: stuck });
    const p = await mk('par', { replicas: 3, podManagementPolicy: 'Parallel', template: stuck });
    await waitFor('three parallel pods', async () => (await livePods(p.metadata.uid!)).length === 3, 20_000);
    await settled('ord', { replicas: 1, readyReplicas: 0 });
    t.same((await livePods(o.metadata.uid!)).map((x) => x.metadata.name), ['ord-0'], 'only ord-0 while it is not ready');
    await patch('par', { spec: { replicas: 0 } });
    await waitFor('parallel scaled to 0', async () => (await c.podsOf('default', p.metadata.uid!)).length === 0, 20_000);
  });

  t.test('RollingUpdate with a partition, then all; a rollback reuses the old revision', async (t) => {
    const s = await mk('roll', { replicas: 3, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 1 } } });
    const first = await settled('roll', { replicas: 3, readyReplicas: 3 });
    const rev1 = first.status!.updateRevision!;
    deletions.length = 0;
    await patch('roll', { spec: { template: template('db:2') } });
    const mid = await settled('roll', { updatedReplicas: 2, readyReplicas: 3, currentReplicas: 1 });
    const rev2 = mid.status!.updateRevision!;
    t.not(rev2, rev1);
    t.equal(mid.status?.currentRevision, rev1, 'not complete below the partition');
    const image = async (n: string) => (await client.get<Pod>(resourcePath(PODS, 'default', n))).spec?.containers[0]?.image;
    t.same([await image('roll-0'), await image('roll-1'), await image('roll-2')], ['db:1', 'db:2', 'db:2']);
    t.same(deletions.filter((n) => n.startsWith('roll-')), ['roll-2', 'roll-1'], 'highest ordinal first, down to the partition');
    if (!kubectlMissing(t)) {
      const r = await c.kubectl('rollout', 'status', 'statefulset/roll', '--watch=false');
      t.match(r.out, /partitioned roll out complete: 2 new pods have been updated/);
    }
    await patch('roll', { spec: { updateStrategy: { rollingUpdate: { partition: 0 } } } });
    const done = await settled('roll', { updatedReplicas: 3, readyReplicas: 3, currentReplicas: 3 });
    t.equal(done.status?.currentRevision, rev2, 'the update revision becomes current');
    if (!kubectlMissing(t)) {
      const r = await c.kubectl('rollout', 'status', 'statefulset/roll', '--timeout=30s');
      t.equal(r.code, 0, r.err);
      // kubectl reports a set with any partition (0 included) as partitioned.
      t.match(r.out, /partitioned roll out complete: 3 new pods have been updated/);
    }
    // Back to db:1: revision 1 is renumbered 3 and reused, no third revision.
    await patch('roll', { spec: { template: template('db:1') } });
    const back = await settled('roll', { updatedReplicas: 3, readyReplicas: 3, currentReplicas: 3 });
    t.equal(back.status?.updateRevision, rev1);
    const revs = (await client.list<ControllerRevision>(resourcePath(REVISIONS, 'default'))).items.filter((r) => r.metadata.ownerReferences?.[0]?.uid === s.metadata.uid);
    t.same(revs.map((r) => [r.metadata.name, r.revision]).sort(), [[rev1, 3], [rev2, 2]].sort());
  });

  t.test('OnDelete: a template change replaces nothing until a pod is deleted', async (t) => {
    const s = await mk('od', { replicas: 2, updateStrategy: { type: 'OnDelete' } });
    await settled('od', { replicas: 2, readyReplicas: 2 });
    await patch('od', { spec: { template: template('db:9') } });
    const st = await settled('od', { updatedReplicas: 0, readyReplicas: 2 });
    t.not(st.status?.updateRevision, st.status?.currentRevision);
    const old = await client.get<Pod>(resourcePath(PODS, 'default', 'od-1'));
    await client.delete(resourcePath(PODS, 'default', 'od-1'));
    await waitFor('od-1 recreated at the new revision', async () => {
      const p = (await livePods(s.metadata.uid!)).find((x) => x.metadata.name === 'od-1');
      return p && p.metadata.uid !== old.metadata.uid && p.spec?.containers[0]?.image === 'db:9';
    }, 20_000);
    const after = await settled('od', { updatedReplicas: 1, readyReplicas: 2 });
    t.equal((await client.get<Pod>(resourcePath(PODS, 'default', 'od-0'))).spec?.containers[0]?.image, 'db:1', 'od-0 untouched');
    t.ok(after);
    if (!kubectlMissing(t)) {
      const r = await c.kubectl('rollout', 'status', 'statefulset/od', '--watch=false');
      t.match(`${r.out}${r.err}`, /rollout status is only available for RollingUpdate strategy type/);
    }
  });

  t.test('persistentVolumeClaimRetentionPolicy Delete: claims go with scaled-away pods and with the set', async (t) => {
    const s = await mk('tmp', {
      replicas: 3, podManagementPolicy: 'Parallel',
      persistentVolumeClaimRetentionPolicy: { whenScaled: 'Delete', whenDeleted: 'Delete' },
      volumeClaimTemplates: [{ metadata: { name: 'scratch' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }],
    });
    await settled('tmp', { replicas: 3, readyReplicas: 3 });
    const claims = async () => (await client.list<KubeObject>(resourcePath(CLAIMS, 'default'))).items.filter((x) => x.metadata!.name!.startsWith('scratch-tmp-'));
    const owners = (await claims()).map((x) => (x.metadata as any).ownerReferences);
    t.same(owners.map((o) => o?.map((r: any) => `${r.kind}/${r.uid}`)), [0, 1, 2].map(() => [`StatefulSet/${s.metadata.uid}`]), 'owned by the set');
    await patch('tmp', { spec: { replicas: 1 } });
    await settled('tmp', { replicas: 1 });
    await waitFor('the scaled-away claims deleted', async () => JSON.stringify((await claims()).map((x) => x.metadata!.name)) === '["scratch-tmp-0"]', 20_000);
    await client.delete(resourcePath(SETS, 'default', 'tmp'));
    await waitFor('the last claim deleted with the set', async () => (await claims()).length === 0, 20_000);
    t.pass('claims followed the policy');
  });

  t.test('no violation on any pod event', async (t) => {
    t.same(violations, []);
    for (const [name, uids] of uidsByName) if (uids.size > 1) t.ok(true, `${name} was replaced (${uids.size} incarnations, one at a time by name)`);
  });
  void nodes;
});

t.test('failover: the leader killed (-9) during a scale-up; never two pods for one ordinal', async (t) => {
  const c = await startWorkloadCluster(t, [], { nodes: { count: 2 } });
  const { client } = c;
  const LE = ['--leader-elect-lease-duration', '3s', '--leader-elect-renew-deadline', '2s', '--leader-elect-retry-period', '500ms', '--controllers', 'statefulset'];
  const start = (id: string) => ControllerManager.start({ servers: c.cluster.urls, nats: c.nats.url, id, args: LE });
  const a = await start('cm-a');
  t.teardown(() => a.stop('SIGKILL'));
  const b = await start('cm-b');
  t.teardown(() => b.stop('SIGKILL'));
  await waitFor('a leader', async () => (await a.leading()) || (await b.leading()), 15_000, 100);
  const [leader, standby] = (await a.leading()) ? [a, b] : [b, a];

  // On every pod event: the live pods of each ordinal (by the pod-index label and by name).
  const watch = new Informer<Pod>({ client, nats: c.nats.url, kind: PODS, name: 'failover-pods' });
  const problems: string[] = [];
  let events = 0;
  const check = () => {
    events++;
    const byIndex = new Map<string, string[]>();
    for (const p of watch.list('default')) {
      if (!p.metadata.name.startsWith('big-') || p.metadata.deletionTimestamp) continue;
      const i = p.metadata.labels?.[POD_INDEX_LABEL] ?? '?';
      byIndex.set(i, [...(byIndex.get(i) ?? []), p.metadata.name]);
      if (`big-${i}` !== p.metadata.name) problems.push(`${p.metadata.name} has index ${i}`);
    }
    for (const [i, names] of byIndex) if (names.length > 1) problems.push(`ordinal ${i}: ${names.join(', ')}`);
  };
  watch.addEventHandler({ onAdd: check, onUpdate: check, onDelete: check });
  await watch.start();
  t.teardown(() => watch.stop());

  const set = await client.create<StatefulSetObj>(resourcePath(SETS, 'default'), {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'big' },
    spec: { replicas: 12, podManagementPolicy: 'Parallel', selector: { matchLabels: { app: 'db' } }, template: template('db:1') },
  });
  await waitFor('the scale-up under way', async () => (await c.podsOf('default', set.metadata.uid!)).length >= 3, 20_000, 20);
  await leader.stop('SIGKILL');
  // Scale further while nobody leads: the standby must finish it.
  await client.patch(resourcePath(SETS, 'default', 'big'), { spec: { replicas: 20 } }, 'application/merge-patch+json');
  await waitFor('the standby to lead', () => standby.leading(), 20_000, 100);
  const done = await waitFor('20 ready', async () => {
    const s = await client.get<StatefulSetObj>(resourcePath(SETS, 'default', 'big'));
    return s.status?.readyReplicas === 20 && s.status.observedGeneration === s.metadata.generation ? s : undefined;
  }, 40_000);
  t.equal(done.status?.replicas, 20);
  const names = (await c.podsOf('default', set.metadata.uid!)).map((p) => p.metadata.name).sort();
  t.same(names, Array.from({ length: 20 }, (_, i) => `big-${i}`).sort(), 'exactly big-0 … big-19');
  t.ok(events > 20, `${events} pod events checked`);
  t.same(problems, [], 'never two pods for one ordinal');
});
