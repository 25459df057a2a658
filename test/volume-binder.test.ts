// The PersistentVolume binder and the local-path provisioner: which volume a
// claim gets (table tests of the matching rules), then against a real
// server: the default class at admission, smallest fit, selector and access
// modes, Pending with an Event, Retain and Delete reclaim, provisioning that
// makes and removes a directory, and WaitForFirstConsumer with the
// selected-node annotation.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { ANN_BIND_COMPLETED, ANN_SELECTED_NODE, LOCAL_PATH_PROVISIONER } from '../agents/controllers/volume/annotations.ts';
import { PersistentVolumeBinder } from '../agents/controllers/volume/binder.ts';
import { type PersistentVolume, type PersistentVolumeClaim, findBestMatch } from '../agents/controllers/volume/matching.ts';
import { LocalPathProvisioner, isInside } from '../agents/controllers/volume/provisioner.ts';
import type { KubeObject } from '../agents/informer/types.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const pv = (name: string, storage: string, o: { modes?: string[]; cls?: string; labels?: Record<string, string>; phase?: string; claimRef?: PersistentVolume['spec']['claimRef']; node?: string } = {}): PersistentVolume => ({
  metadata: { name, labels: o.labels },
  spec: {
    capacity: { storage }, accessModes: o.modes ?? ['ReadWriteOnce'], storageClassName: o.cls ?? '', claimRef: o.claimRef,
    ...(o.node ? { nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [o.node] }] }] } } } : {}),
  },
  status: { phase: o.phase ?? 'Available' },
});
const pvc = (storage: string, o: { modes?: string[]; cls?: string; selector?: PersistentVolumeClaim['spec']['selector'] } = {}): PersistentVolumeClaim => ({
  metadata: { name: 'claim', namespace: 'default', uid: 'u-1' },
  spec: { resources: { requests: { storage } }, accessModes: o.modes ?? ['ReadWriteOnce'], storageClassName: o.cls, selector: o.selector },
});

t.test('findBestMatch (FindMatchingVolume)', async (t) => {
  const pool = [pv('big', '10Gi'), pv('small', '1Gi'), pv('mid', '5Gi'), pv('mid-b', '5Gi'), pv('rwx', '2Gi', { modes: ['ReadWriteMany', 'ReadWriteOnce'] }),
    pv('gold', '20Gi', { labels: { tier: 'gold' } }), pv('fast', '1Gi', { cls: 'fast' }), pv('released', '3Gi', { phase: 'Released' }),
    pv('taken', '3Gi', { claimRef: { namespace: 'default', name: 'other', uid: 'u-2' } })];
  const cases: [string, PersistentVolumeClaim, string | undefined][] = [
    ['smallest volume that is big enough', pvc('1500Mi'), 'rwx'],
    ['equal sizes: the first name', pvc('4Gi'), 'mid'],
    ['exact fit', pvc('1Gi'), 'small'],
    ['access modes must all be offered', pvc('1Gi', { modes: ['ReadWriteMany'] }), 'rwx'],
    ['selector narrows to labelled volumes', pvc('1Gi', { selector: { matchLabels: { tier: 'gold' } } }), 'gold'],
    ['class must match', pvc('1Gi', { cls: 'fast' }), 'fast'],
    ['nothing big enough', pvc('100Gi'), undefined],
    ['Released and claimed volumes are not candidates', pvc('1Gi', { modes: ['ReadOnlyMany'] }), undefined],
  ];
  for (const [what, claim, want] of cases) t.equal(findBestMatch(pool, claim)?.metadata.name, want, what);

  const prebound = pv('pre', '1Gi', { cls: 'other', claimRef: { namespace: 'default', name: 'claim' } });
  t.equal(findBestMatch([...pool, prebound], pvc('1Gi'))?.metadata.name, 'pre', 'a volume pre-bound to the claim wins (class is the user\'s call)');
  t.equal(findBestMatch([pv('pre', '1Gi', { claimRef: { namespace: 'default', name: 'claim', uid: 'someone-else' } })], pvc('1Gi')), undefined, 'pre-bound to another claim with the same name');
  const onNode = [pv('n1', '1Gi', { node: 'node-1' }), pv('n2', '1Gi', { node: 'node-2' })];
  t.equal(findBestMatch(onNode, pvc('1Gi'), { node: { name: 'node-2', labels: { 'kubernetes.io/hostname': 'node-2' } } })?.metadata.name, 'n2', 'node affinity admits the selected node');
  t.ok(isInside('/a/b', '/a/b/c') && !isInside('/a/b', '/a/b') && !isInside('/a/b', '/a/b/../c'), 'isInside');
});

const PVS = resolveKind('persistentvolumes')!;
const PVCS = resolveKind('persistentvolumeclaims')!;
const SCS = resolveKind('storageclasses')!;
const EVENTS = resolveKind('events')!;

t.test('against a real server', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const volumeDir = mkdtempSync(join(tmpdir(), 'flotilla-volumes-'));
  t.teardown(() => rmSync(volumeDir, { recursive: true, force: true }));
  const ctl = await runControllers(client, nats.url, [(ctx) => new PersistentVolumeBinder(ctx), (ctx) => new LocalPathProvisioner(ctx)], { volumeDir });
  t.teardown(() => ctl.stop());

  const mkPV = (name: string, storage: string, o: { modes?: string[]; labels?: Record<string, string>; policy?: string } = {}) => client.create(resourcePath(PVS), {
    apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name, labels: o.labels },
    spec: { capacity: { storage }, accessModes: o.modes ?? ['ReadWriteOnce'], hostPath: { path: `/srv/${name}` }, persistentVolumeReclaimPolicy: o.policy ?? 'Retain', storageClassName: '' },
  });
  const mkPVC = (name: string, storage: string, o: { modes?: string[]; cls?: string | null; selector?: unknown } = {}) => client.create<PersistentVolumeClaim>(resourcePath(PVCS, 'default'), {
    apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name },
    spec: { resources: { requests: { storage } }, accessModes: o.modes ?? ['ReadWriteOnce'], ...(o.cls === null ? {} : { storageClassName: o.cls ?? '' }), ...(o.selector ? { selector: o.selector } : {}) },
  });
  const getPV = (name: string) => client.get<PersistentVolume>(resourcePath(PVS, '', name));
  const getPVC = (name: string) => client.get<PersistentVolumeClaim>(resourcePath(PVCS, 'default', name));
  const gone = async (path: string) => {
    try {
      await client.get(path);
      return false;
    } catch (e) {
      return e instanceof ApiClientError && e.code === 404;
    }
  };
  const boundTo = async (claim: string) => {
    const c = await getPVC(claim);
    return c.status?.phase === 'Bound' ? c.spec.volumeName : undefined;
  };
  const events = async (name: string) => (await client.list<KubeObject & { reason?: string; message?: string }>(resourcePath(EVENTS, 'default'), { fieldSelector: `involvedObject.name=${name}` })).items;

  t.test('static volumes: smallest fit, selector, access modes; none fits → Pending with an Event', async (t) => {
    await mkPV('pv-small', '1Gi');
    await mkPV('pv-mid', '5Gi');
    await mkPV('pv-big', '10Gi');
    await mkPV('pv-rwx', '5Gi', { modes: ['ReadWriteMany'] });
    await mkPV('pv-gold', '50Gi', { labels: { tier: 'gold' } });
    await mkPVC('c-mid', '2Gi');
    await mkPVC('c-gold', '1Gi', { selector: { matchLabels: { tier: 'gold' } } });
    await mkPVC('c-rwx', '1Gi', { modes: ['ReadWriteMany'] });
    await mkPVC('c-huge', '100Gi');
    t.equal(await waitFor('c-mid bound', () => boundTo('c-mid')), 'pv-mid', 'the smallest volume of at least 2Gi');
    t.equal(await waitFor('c-gold bound', () => boundTo('c-gold')), 'pv-gold', 'the volume the selector picks');
    t.equal(await waitFor('c-rwx bound', () => boundTo('c-rwx')), 'pv-rwx', 'the only ReadWriteMany volume');
    const c = await getPVC('c-mid');
    t.match(c, { metadata: { annotations: { [ANN_BIND_COMPLETED]: 'yes', 'pv.kubernetes.io/bound-by-controller': 'yes' } }, status: { capacity: { storage: '5Gi' }, accessModes: ['ReadWriteOnce'] } });
    const v = await waitFor('pv-mid Bound', async () => ((await getPV('pv-mid')).status?.phase === 'Bound' ? getPV('pv-mid') : undefined));
    t.match(v.spec.claimRef, { namespace: 'default', name: 'c-mid', uid: c.metadata.uid }, 'claimRef names the claim with its uid');
    const ev = await waitFor('FailedBinding event', async () => (await events('c-huge')).find((e) => e.reason === 'FailedBinding'));
    t.equal(ev.message, 'no persistent volumes available for this claim and no storage class is set');
    t.equal((await getPVC('c-huge')).status?.phase, 'Pending');
    t.equal((await getPV('pv-small')).status?.phase, 'Available', 'unused volume is Available');
  });

  t.test('reclaim: Retain keeps a Released volume, Delete removes it', async (t) => {
    await mkPV('pv-del', '7Gi', { policy: 'Delete' });
    // The binder picks among the volumes it has seen: make sure it has seen this one (it marks it Available) before the claim.
    await waitFor('pv-del Available', async () => (await getPV('pv-del')).status?.phase === 'Available');
    await mkPVC('c-del', '6Gi');
    t.equal(await waitFor('c-del bound', () => boundTo('c-del')), 'pv-del');
    await client.delete(resourcePath(PVCS, 'default', 'c-mid'));
    await client.delete(resourcePath(PVCS, 'default', 'c-del'));
    await waitFor('pv-mid Released', async () => (await getPV('pv-mid')).status?.phase === 'Released');
    await waitFor('pv-del deleted', () => gone(resourcePath(PVS, '', 'pv-del')));
    t.pass('the Delete volume is gone');
    t.equal((await getPV('pv-mid')).status?.phase, 'Released', 'the Retain volume stays Released');
    // A new claim does not get the Released volume.
    await mkPVC('c-again', '4Gi');
    t.equal(await waitFor('c-again bound', () => boundTo('c-again')), 'pv-big', 'Released pv-mid is skipped');
  });

  t.test('default class at admission; provisioning creates and deletes a directory', async (t) => {
    const builtIn = await waitFor('the provisioner\'s default class', async () => (await client.list<KubeObject & { provisioner?: string; volumeBindingMode?: string }>(resourcePath(SCS))).items.find((c) => c.metadata?.name === 'local-path'));
    t.match(builtIn, { metadata: { annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } }, provisioner: LOCAL_PATH_PROVISIONER, volumeBindingMode: 'WaitForFirstConsumer' },
      'the leader made sure of a default class served by the local-path provisioner (k3s\' local-path)');
    // A newer default class wins at admission (Kubernetes picks the newest of several defaults).
    await client.create(resourcePath(SCS), {
      apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'local', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
      provisioner: LOCAL_PATH_PROVISIONER,
    });
    const sc = await client.get<KubeObject & { reclaimPolicy?: string; volumeBindingMode?: string }>(resourcePath(SCS, '', 'local'));
    t.match(sc, { reclaimPolicy: 'Delete', volumeBindingMode: 'Immediate' }, 'class defaults');
    const defaulted = await mkPVC('c-dyn', '1Gi', { cls: null });
    t.equal(defaulted.spec.storageClassName, 'local', 'a claim without a class gets the default class');
    const explicit = await mkPVC('c-none', '1Gi', { cls: '' });
    t.equal(explicit.spec.storageClassName, '', 'an explicit "" is kept');
    const name = await waitFor('c-dyn bound', () => boundTo('c-dyn'));
    t.equal(name, `pvc-${defaulted.metadata.uid}`);
    const v = await getPV(name!);
    t.match(v, { metadata: { annotations: { 'pv.kubernetes.io/provisioned-by': LOCAL_PATH_PROVISIONER } }, spec: { storageClassName: 'local', persistentVolumeReclaimPolicy: 'Delete', capacity: { storage: '1Gi' } } });
    const dir = v.spec.hostPath!.path;
    t.ok(dir.startsWith(volumeDir) && existsSync(dir), `directory ${dir} exists`);
    // The event is recorded after the volume is created, so it may trail the binding.
    t.ok(await waitFor('ProvisioningSucceeded event', async () => (await events('c-dyn')).some((e) => e.reason === 'ProvisioningSucceeded')), 'ProvisioningSucceeded event');
    await client.delete(resourcePath(PVCS, 'default', 'c-dyn'));
    await waitFor('provisioned volume deleted', () => gone(resourcePath(PVS, '', name!)));
    t.notOk(existsSync(dir), 'directory removed');
  });

  t.test('a claim that names its volume; a bound claim whose volume vanishes is Lost', async (t) => {
    await mkPV('pv-named', '2Gi');
    await mkPV('pv-small-named', '1Gi');
    await client.create(resourcePath(PVCS, 'default'), {
      apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'c-named' },
      spec: { resources: { requests: { storage: '1Gi' } }, accessModes: ['ReadWriteOnce'], storageClassName: '', volumeName: 'pv-named' },
    });
    t.equal(await waitFor('c-named bound', () => boundTo('c-named')), 'pv-named', 'bound to the volume it names, not the smallest fit');
    const c = await getPVC('c-named');
    t.equal(c.metadata.annotations?.['pv.kubernetes.io/bound-by-controller'], undefined, 'the user made this binding, not the controller');
    await client.create(resourcePath(PVCS, 'default'), {
      apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'c-too-big' },
      spec: { resources: { requests: { storage: '5Gi' } }, accessModes: ['ReadWriteOnce'], storageClassName: '', volumeName: 'pv-small-named' },
    });
    const ev = await waitFor('VolumeMismatch', async () => (await events('c-too-big')).find((e) => e.reason === 'VolumeMismatch'));
    t.equal(ev.message, 'Cannot bind to requested volume "pv-small-named": requested PV is too small');
    await client.delete(resourcePath(PVS, '', 'pv-named'));
    await waitFor('c-named Lost', async () => (await getPVC('c-named')).status?.phase === 'Lost');
    t.ok((await events('c-named')).some((e) => e.reason === 'ClaimLost' && e.message === 'Bound claim has lost its PersistentVolume. Data on the volume is lost!'), 'ClaimLost event');
  });

  t.test('StorageClass validation', async (t) => {
    await t.rejects(client.create(resourcePath(SCS), { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'bad' }, provisioner: 'not a name!' }), { code: 422 }, 'a provisioner must be a qualified name');
    await t.rejects(client.create(resourcePath(SCS), { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'bad' }, provisioner: 'x.io/y', reclaimPolicy: 'Recycle' }), { code: 422 }, 'Recycle is not a class policy');
    await t.rejects(client.patch(resourcePath(SCS, '', 'local'), { parameters: { a: 'b' } }, 'application/merge-patch+json'), { code: 422, message: /updates to parameters are forbidden/ });
    await t.rejects(client.patch(resourcePath(SCS, '', 'local'), { volumeBindingMode: 'WaitForFirstConsumer' }, 'application/merge-patch+json'), { code: 422, message: /field is immutable/ });
  });

  t.test('WaitForFirstConsumer waits for the selected node, then provisions there', async (t) => {
    await client.create(resourcePath(SCS), {
      apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'local-wait' }, provisioner: LOCAL_PATH_PROVISIONER, volumeBindingMode: 'WaitForFirstConsumer',
    });
    const c = await mkPVC('c-wait', '2Gi', { cls: 'local-wait' });
    await waitFor('WaitForFirstConsumer event', async () => (await events('c-wait')).find((e) => e.reason === 'WaitForFirstConsumer'));
    t.equal((await getPVC('c-wait')).status?.phase, 'Pending');
    t.ok(await gone(resourcePath(PVS, '', `pvc-${c.metadata.uid}`)), 'nothing provisioned before a node is chosen');
    await client.create(resourcePath(resolveKind('nodes')!), { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-7', labels: { 'kubernetes.io/hostname': 'node-7' } } });
    // What the scheduler does once it places the claim's first pod.
    await client.patch(resourcePath(PVCS, 'default', 'c-wait'), { metadata: { annotations: { [ANN_SELECTED_NODE]: 'node-7' } } }, 'application/merge-patch+json');
    t.equal(await waitFor('c-wait bound', () => boundTo('c-wait')), `pvc-${c.metadata.uid}`);
    const v = await getPV(`pvc-${c.metadata.uid}`);
    t.same(v.spec.nodeAffinity, { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-7'] }] }] } }, 'node affinity to the selected node');
  });
});
