// `flotilla scheduler` as real processes against a real server and NATS:
// two replicas (one leads through the Lease kube-system/kube-scheduler);
// a burst of pods over nodes with limited allocatable is bound completely
// and no node is ever over-committed — checked at every pod event the
// stream delivers, not only at the end; a pod that fits nowhere gets
// PodScheduled=False/Unschedulable with kube-scheduler's message and a
// FailedScheduling event, and is placed once a node is added; every
// placed pod has a Scheduled event; a pod of a higher PriorityClass
// preempts the fewest lower-priority pods and is bound once they are gone;
// volumes steer pods (a pinned volume, a WaitForFirstConsumer claim);
// kubectl cordon keeps pods off a node, uncordon lets the waiting pod in.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { Informer } from '../agents/informer/informer.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { SchedulerProcess } from '../harness/scheduler.ts';
import { createPods, overCommitWatch } from './support/scheduling.ts';

const PODS = resolveKind('pods')!;
const EVENTS = resolveKind('events')!;
const LEASES = resolveKind('leases')!;
// client-go's default durations: a loaded machine must not make the leader lose its Lease mid-test.
const LE = ['--leader-elect-lease-duration', '15s', '--leader-elect-renew-deadline', '10s', '--leader-elect-retry-period', '2s'];
const ALLOC = { cpu: '2', memory: '4Gi', pods: '10', 'ephemeral-storage': '10Gi' };

const pod = (name: string, cpu: string, memory: string): KubeObject => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app: 'burst' } },
  spec: { containers: [{ name: 'c', image: 'busybox', resources: { requests: { cpu, memory } } }] },
});

t.test('two schedulers: a burst bound without over-commit, an unschedulable pod placed when a node is added', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());

  // 12 nodes × (2 cpu, 4Gi): 500m pods → 4 per node by cpu = 48 slots.
  const nodes = new FakeNodes({ client, nats: nats.url, count: 12, allocatable: ALLOC, bind: false });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const pods = new Informer<Pod>({ client, nats: nats.url, kind: PODS, name: 'test-pods' });
  const watch = overCommitWatch(pods, ALLOC);
  await pods.start();
  t.teardown(() => pods.stop());

  const a = await SchedulerProcess.start({ servers: cluster.urls, nats: nats.url, id: 'sched-a', args: LE });
  t.teardown(() => a.stop('SIGKILL'));
  const b = await SchedulerProcess.start({ servers: cluster.urls, nats: nats.url, id: 'sched-b', args: LE });
  t.teardown(() => b.stop('SIGKILL'));
  await waitFor('a leader', async () => (await a.leading()) || (await b.leading()), 20_000, 100);
  const [leader, standby] = (await a.leading()) ? [a, b] : [b, a];
  t.notOk(await standby.leading(), 'only one replica schedules');
  const lease = await client.get<{ spec?: { holderIdentity?: string } }>(resourcePath(LEASES, 'kube-system', 'kube-scheduler'));
  t.equal(lease.spec?.holderIdentity, leader.id, 'the Lease kube-system/kube-scheduler names the leader');

  // 48 pods that fill every node exactly, in one burst.
  await createPods(client, Array.from({ length: 48 }, (_, i) => pod(`burst-${i}`, '500m', '256Mi')));
  await waitFor('every burst pod bound', () => pods.list().filter((p) => p.spec?.nodeName).length === 48, 60_000, 100);
  const perNode = new Map<string, number>();
  for (const p of pods.list()) perNode.set(p.spec!.nodeName!, (perNode.get(p.spec!.nodeName!) ?? 0) + 1);
  t.same([...perNode.values()].sort(), Array(12).fill(4), 'every node holds exactly 4 pods (2 cpu / 500m)');
  t.same(watch.violations, [], 'no node over-committed at any binding event, no pod bound twice');

  // One more fits nowhere.
  await client.create(resourcePath(PODS, 'default'), pod('extra', '500m', '256Mi'));
  // Every pod has priority 0: preemption cannot help, and the message says so.
  const msg = '0/12 nodes are available: 12 Insufficient cpu. preemption: 0/12 nodes are available: 12 No preemption victims found for incoming pod.';
  const cond = await waitFor('PodScheduled=False on the extra pod', () => {
    const c = pods.get('default', 'extra')?.status?.conditions?.find((x) => x.type === 'PodScheduled');
    return c?.status === 'False' ? c : undefined;
  }, 20_000, 100);
  t.equal(cond.reason, 'Unschedulable');
  t.equal(cond.message, msg, 'the message counts the reasons as kube-scheduler does');
  const failed = await waitFor('a FailedScheduling event', async () => {
    const evs = await client.list<KubeObject & { reason?: string; message?: string; type?: string; involvedObject?: { name?: string } }>(resourcePath(EVENTS, 'default'));
    return evs.items.find((e) => e.reason === 'FailedScheduling' && e.involvedObject?.name === 'extra');
  }, 20_000, 200);
  t.equal(failed.type, 'Warning');
  t.equal(failed.message, msg);

  // A new node: the pod is placed there at once (a node event moves it back to the active queue).
  const more = new FakeNodes({ client, nats: nats.url, names: ['node-new'], allocatable: ALLOC, bind: false });
  await more.start();
  t.teardown(() => more.stop());
  await waitFor('the extra pod bound to the new node', () => pods.get('default', 'extra')?.spec?.nodeName, 20_000, 100);
  t.equal(pods.get('default', 'extra')?.spec?.nodeName, 'node-new');
  const scheduled = await waitFor('a Scheduled event for the extra pod', async () => {
    const evs = await client.list<KubeObject & { reason?: string; message?: string; involvedObject?: { name?: string } }>(resourcePath(EVENTS, 'default'));
    return evs.items.find((e) => e.reason === 'Scheduled' && e.involvedObject?.name === 'extra');
  }, 20_000, 200);
  t.equal(scheduled.message, 'Successfully assigned default/extra to node-new');
  t.same(watch.violations, [], 'still no over-commit');

  // Preemption: every node is full; a pod of a higher PriorityClass that needs a whole node evicts the
  // fewest victims — the one 500m pod on node-new (other nodes would need four) — and is bound there once it is gone.
  await client.create(resourcePath(resolveKind('priorityclasses')!), { apiVersion: 'scheduling.k8s.io/v1', kind: 'PriorityClass', metadata: { name: 'high' }, value: 1000 });
  const vip = pod('vip', '2', '256Mi');
  (vip.spec as Record<string, unknown>).priorityClassName = 'high';
  await client.create(resourcePath(PODS, 'default'), vip);
  const vipNode = await waitFor('the high-priority pod bound', () => pods.get('default', 'vip')?.spec?.nodeName, 30_000, 100);
  t.equal(vipNode, 'node-new', 'placed where one victim was enough');
  t.notOk(pods.get('default', 'extra'), 'the victim was deleted');
  t.equal(pods.list().filter((p) => p.metadata.name.startsWith('burst-')).length, 48, 'no other pod was touched');
  const preempted = await waitFor('a Preempted event', async () => {
    const evs = await client.list<KubeObject & { reason?: string; message?: string; involvedObject?: { name?: string } }>(resourcePath(EVENTS, 'default'));
    return evs.items.find((e) => e.reason === 'Preempted' && e.involvedObject?.name === 'extra');
  }, 20_000, 200);
  t.equal(preempted.message, `Preempted by pod ${pods.get('default', 'vip')!.metadata.uid} on node node-new`);
  t.same(watch.violations, [], 'no over-commit through the preemption');

  // Volumes: a claim bound to a volume pinned to node-3 brings its pod there; a WaitForFirstConsumer
  // claim gets the node chosen for its first pod in volume.kubernetes.io/selected-node.
  const PVS = resolveKind('persistentvolumes')!;
  const PVCS = resolveKind('persistentvolumeclaims')!;
  await client.create(resourcePath(resolveKind('storageclasses')!), { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'wffc' }, provisioner: 'flotilla.io/local-path', volumeBindingMode: 'WaitForFirstConsumer' });
  await client.create(resourcePath(PVS), { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'pinned' }, spec: {
    capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: '', hostPath: { path: '/tmp/pinned' },
    nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-3'] }] }] } },
  } });
  const claim = (name: string, extra: Record<string, unknown>) => ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name, namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, ...extra } });
  await client.create(resourcePath(PVCS, 'default'), claim('pinned-claim', { storageClassName: '', volumeName: 'pinned' }));
  await client.create(resourcePath(PVCS, 'default'), claim('late-claim', { storageClassName: 'wffc' }));
  const withClaim = (name: string, claimName: string): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' },
    spec: { containers: [{ name: 'c', image: 'busybox' }], volumes: [{ name: 'v', persistentVolumeClaim: { claimName } }] } });
  await client.create(resourcePath(PODS, 'default'), withClaim('on-pinned', 'pinned-claim'));
  await client.create(resourcePath(PODS, 'default'), withClaim('on-late', 'late-claim'));
  t.equal(await waitFor('the pinned volume\'s pod bound', () => pods.get('default', 'on-pinned')?.spec?.nodeName, 20_000, 100), 'node-3', 'the volume\'s node affinity decides');
  // The scheduler names the node in the claim, then holds the binding until the claim is bound
  // (kube-scheduler's VolumeBinding PreBind); no controller manager runs here, so the test is the provisioner.
  const lateNode = await waitFor('the claim to name its node', async () => {
    const c = await client.get<KubeObject>(resourcePath(PVCS, 'default', 'late-claim'));
    return c.metadata?.annotations?.['volume.kubernetes.io/selected-node'];
  }, 20_000, 100);
  t.match(lateNode, /^node-/, 'the claim names the chosen node for the binder and provisioner');
  await new Promise((r) => setTimeout(r, 500));
  t.notOk(pods.get('default', 'on-late')?.spec?.nodeName, 'the pod is not bound while its claim is unbound');
  await client.create(resourcePath(PVS), { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'late-pv' }, spec: {
    capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: 'wffc', hostPath: { path: '/tmp/late' },
    claimRef: { namespace: 'default', name: 'late-claim' },
    nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [lateNode] }] }] } },
  } });
  await client.patch(resourcePath(PVCS, 'default', 'late-claim'), { spec: { volumeName: 'late-pv' } }, 'application/merge-patch+json');
  t.equal(await waitFor('the WaitForFirstConsumer pod bound', () => pods.get('default', 'on-late')?.spec?.nodeName, 20_000, 100), lateNode,
    'once the claim is bound the pod is bound to the node the claim names');

  // kubectl cordon: the node takes no new pod (the reason counted), uncordon brings the pod there at once.
  const kubectl = (...args: string[]) => {
    if (kubectlMissing(t)) return undefined;
    const r = spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, '--cache-dir', mkdtempSync(join(tmpdir(), 'kube-cache-')), ...args], { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const cordon = async (on: boolean) => {
    if (kubectl(on ? 'cordon' : 'uncordon', 'node-1') === undefined) {
      await client.patch(resourcePath(resolveKind('nodes')!, '', 'node-1'), { spec: { unschedulable: on ? true : null } }, 'application/merge-patch+json');
    }
  };
  await cordon(true);
  const toNode1: KubeObject = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'to-node-1', namespace: 'default' }, spec: { nodeSelector: { 'kubernetes.io/hostname': 'node-1' }, containers: [{ name: 'c', image: 'busybox' }] } };
  await client.create(resourcePath(PODS, 'default'), toNode1);
  const cordoned = await waitFor('the pod for the cordoned node to be refused', () => {
    const c = pods.get('default', 'to-node-1')?.status?.conditions?.find((x) => x.type === 'PodScheduled');
    return c?.status === 'False' ? c : undefined;
  }, 20_000, 100);
  t.equal(cordoned.message, "0/13 nodes are available: 1 node(s) were unschedulable, 12 node(s) didn't match Pod's node affinity/selector. preemption: 0/13 nodes are available: 13 Preemption is not helpful for scheduling.");
  await cordon(false);
  t.equal(await waitFor('the pod bound after uncordon', () => pods.get('default', 'to-node-1')?.spec?.nodeName, 20_000, 100), 'node-1');

  const metrics = await leader.metrics();
  t.match(metrics, /scheduler_schedule_attempts_total\{result="scheduled",profile="default-scheduler"\} 53/, 'attempts counted by result');
  t.match(metrics, /scheduler_preemption_attempts_total [1-9]/);
  t.match(metrics, /scheduler_schedule_attempts_total\{result="unschedulable",profile="default-scheduler"\} [1-9]/);
  t.match(metrics, /scheduler_e2e_scheduling_duration_seconds_count\{result="scheduled",profile="default-scheduler"\} 53/);
  t.match(metrics, /scheduler_pending_pods\{queue="active"\}/);
  t.match(await standby.metrics(), /flotilla_scheduler_leading 0/);
});
