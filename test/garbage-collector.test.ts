// The garbage collector: its decisions as tables (Kubernetes' rules), then
// against a real server with the real kubectl: background (owner gone at once,
// dependents after), foreground (blocking dependents, down a two-level tree,
// deleted before the owner; non-blocking ones collected without holding it), orphan (references
// removed, dependents kept), and dangling references found at start.
import { spawn } from 'node:child_process';
import t from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { newControllerContext, stopControllerContext } from '../agents/controllers/context.ts';
import { GarbageCollector } from '../agents/controllers/garbagecollector/controller.ts';
import { type OwnerState, decideDependent, decideOwner } from '../agents/controllers/garbagecollector/decide.ts';
import type { KubeObject } from '../agents/informer/types.ts';
import { main as deleteCmd } from '../bin/commands/delete.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { tempDir, waitFor } from '../harness/procs.ts';

const ref = (uid: string, block?: boolean) => ({ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `rs-${uid}`, uid, ...(block !== undefined ? { blockOwnerDeletion: block } : {}) });
const obj = (refs: ReturnType<typeof ref>[], meta: Record<string, unknown> = {}): KubeObject =>
  ({ metadata: { name: 'x', uid: 'self', ownerReferences: refs, ...meta } }) as KubeObject;

t.test('decideDependent (attemptToDeleteItem)', async (t) => {
  const states = (...s: [string, OwnerState][]) => new Map(s);
  const cases: [string, KubeObject, Map<string, OwnerState>, boolean, unknown][] = [
    ['no owners: nothing', obj([]), states(), false, { do: 'nothing' }],
    ['a solid owner keeps it', obj([ref('a')]), states(['a', 'present']), false, { do: 'nothing' }],
    ['owner gone: background delete', obj([ref('a')]), states(['a', 'absent']), false, { do: 'delete', policy: 'Background' }],
    ['one of two owners gone: its reference is removed', obj([ref('a'), ref('b')]), states(['a', 'present'], ['b', 'absent']), false, { do: 'removeOwnerRefs', uids: ['b'] }],
    ['a solid owner and one deleting in the foreground: reference removed', obj([ref('a'), ref('b')]), states(['a', 'present'], ['b', 'deletingDependents']), false, { do: 'removeOwnerRefs', uids: ['b'] }],
    ['owner deleting in foreground, no dependents: background', obj([ref('a')]), states(['a', 'deletingDependents']), false, { do: 'delete', policy: 'Background' }],
    ['owner deleting in foreground, has dependents: foreground', obj([ref('a')]), states(['a', 'deletingDependents']), true, { do: 'delete', policy: 'Foreground' }],
    ['an orphan finalizer it carries is honoured', obj([ref('a')], { finalizers: ['orphan'] }), states(['a', 'absent']), true, { do: 'delete', policy: 'Orphan' }],
    ['being deleted already: nothing', obj([ref('a')], { deletionTimestamp: '2026-01-01T00:00:00Z' }), states(['a', 'absent']), false, { do: 'nothing' }],
  ];
  for (const [what, o, s, hasDeps, want] of cases) t.match(decideDependent(o, s, hasDeps), want, what);
  t.throws(() => decideDependent(obj([ref('a')]), states(), false), /no state for owner/, 'every owner must have been looked up');
});

t.test('decideOwner (orphan and foreground finalizers)', async (t) => {
  const owner = (finalizers: string[], deleting = true) => ({ metadata: { name: 'o', uid: 'o', finalizers, ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) } }) as KubeObject;
  const blocking = obj([ref('o', true)], { name: 'blocking' });
  const loose = obj([ref('o', false)], { name: 'loose' });
  t.match(decideOwner(owner(['foregroundDeletion'], false), [blocking]), { do: 'nothing' }, 'not being deleted');
  t.match(decideOwner(owner(['foregroundDeletion']), [blocking, loose]), { do: 'waitFor', dependents: [{ metadata: { name: 'blocking' } }] }, 'waits only for blocking dependents');
  t.match(decideOwner(owner(['foregroundDeletion']), [loose]), { do: 'removeFinalizer', finalizer: 'foregroundDeletion' }, 'non-blocking dependents do not hold the owner');
  t.match(decideOwner(owner(['orphan']), [blocking, loose]), { do: 'orphan' }, 'orphan: strip references first');
  t.match(decideOwner(owner(['orphan']), []), { do: 'removeFinalizer', finalizer: 'orphan' }, 'then the finalizer');
  t.match(decideOwner(owner(['example.com/x']), [blocking]), { do: 'nothing' }, 'other finalizers are not ours');
});

t.test('against a real server, with kubectl --cascade', async (t) => {
  const noKubectl = kubectlMissing(t);
  if (noKubectl) return;
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const nodes = new FakeNodes({ client, nats: nats.url, count: 1 });
  await nodes.start();
  t.teardown(() => nodes.stop());
  // Dangling before the collector starts: found once its caches are full.
  await client.create(resourcePath(resolveKind('configmaps')!, 'default'), {
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'early', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'never', uid: '11111111-1111-1111-1111-111111111111' }] },
  });
  const ctx = newControllerContext({ client, nats: nats.url });
  const gc = new GarbageCollector(ctx);
  const abort = new AbortController();
  await ctx.informers.start();
  const running = gc.run(abort.signal);
  t.teardown(async () => {
    abort.abort();
    await running;
    await stopControllerContext(ctx);
  });

  const PODS = resolveKind('pods')!;
  const RS = resolveKind('replicasets')!;
  const DEPLOY = resolveKind('deployments')!;
  const CM = resolveKind('configmaps')!;
  const cache = tempDir('kubectl-cache');
  const kubectl = (...args: string[]) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const p = spawn('kubectl', ['--kubeconfig', cluster.kubeconfig, '--cache-dir', cache, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
  const template = { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'c', image: 'x' }] } };
  const ownerRef = (o: KubeObject, block = true) => ({ apiVersion: o.apiVersion!, kind: o.kind!, name: o.metadata!.name!, uid: o.metadata!.uid!, controller: block, blockOwnerDeletion: block });
  const mkRs = (name: string, owner?: KubeObject) => client.create(resourcePath(RS, 'default'), {
    apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name, ...(owner ? { ownerReferences: [ownerRef(owner)] } : {}) },
    spec: { replicas: 0, selector: { matchLabels: { app: 'x' } }, template },
  });
  const mkPod = (name: string, owner: KubeObject) => client.create(resourcePath(PODS, 'default'), {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, ownerReferences: [ownerRef(owner)] }, spec: { containers: [{ name: 'c', image: 'x' }] },
  });
  const mkCm = (name: string, refs: unknown[]) => client.create(resourcePath(CM, 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ownerReferences: refs } });
  const exists = async (path: string) => client.get(path).then(() => true, (e) => {
    if (e instanceof ApiClientError && e.code === 404) return false;
    throw e;
  });
  const gone = (what: string, path: string) => waitFor(`${what} gone`, async () => !(await exists(path)), 20_000, 50);

  await t.test('background: the owner goes at once, its dependents after', async (t) => {
    const rs = await mkRs('bg');
    await mkPod('bg-1', rs);
    await mkPod('bg-2', rs);
    const r = await kubectl('delete', 'replicaset', 'bg', '--cascade=background');
    t.equal(r.code, 0, r.err);
    t.notOk(await exists(resourcePath(RS, 'default', 'bg')), 'the ReplicaSet is gone when kubectl returns');
    await gone('bg-1', resourcePath(PODS, 'default', 'bg-1'));
    await gone('bg-2', resourcePath(PODS, 'default', 'bg-2'));
    t.pass('its pods were collected');
  });

  await t.test('foreground: blocking dependents (two levels) go before the owner', async (t) => {
    const deploy = await client.create(resourcePath(DEPLOY, 'default'), {
      apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'fg' },
      spec: { replicas: 0, selector: { matchLabels: { app: 'x' } }, template },
    });
    const rs = await mkRs('fg-rs', deploy);
    const pods = [await mkPod('fg-1', rs), await mkPod('fg-2', rs)];
    await mkCm('fg-loose', [ownerRef(deploy, false)]);
    // Record the resourceVersion (= Raft index) at which each object is deleted.
    const deletedAt = new Map<string, number>();
    const watch = (res: string) => ctx.informers.informer(res).onDelete((o) => deletedAt.set(`${res}/${o.metadata!.name}`, Number(o.metadata!.resourceVersion)));
    const offs = ['pods', 'replicasets', 'deployments', 'configmaps'].map(watch);
    t.teardown(() => offs.forEach((off) => off()));
    const r = await kubectl('delete', 'deployment', 'fg', '--cascade=foreground', '--timeout=60s');
    t.equal(r.code, 0, r.err);
    t.notOk(await exists(resourcePath(DEPLOY, 'default', 'fg')), 'kubectl waited until the Deployment was gone');
    await waitFor('deletions observed', async () => deletedAt.has('deployments/fg') && deletedAt.has('replicasets/fg-rs') && pods.every((p) => deletedAt.has(`pods/${p.metadata!.name}`)), 20_000, 50);
    const d = deletedAt.get('deployments/fg')!;
    t.ok(deletedAt.get('replicasets/fg-rs')! < d, 'the ReplicaSet went before the Deployment');
    for (const p of pods) t.ok(deletedAt.get(`pods/${p.metadata!.name}`)! < deletedAt.get('replicasets/fg-rs')!, `${p.metadata!.name} went before its ReplicaSet`);
    // Kubernetes deletes every dependent of a foreground deletion; only the blocking ones hold the owner.
    await gone('fg-loose', resourcePath(CM, 'default', 'fg-loose'));
    t.pass('the non-blocking dependent was collected too');
  });

  await t.test('orphan: the owner goes, its dependents stay without the reference', async (t) => {
    const rs = await mkRs('or');
    await mkPod('or-1', rs);
    const r = await kubectl('delete', 'replicaset', 'or', '--cascade=orphan', '--timeout=60s');
    t.equal(r.code, 0, r.err);
    t.notOk(await exists(resourcePath(RS, 'default', 'or')), 'the ReplicaSet is gone');
    const pod = await client.get(resourcePath(PODS, 'default', 'or-1'));
    t.same((pod.metadata as { ownerReferences?: unknown[] }).ownerReferences ?? [], [], 'the pod stays, its owner reference removed');
    t.notOk(pod.metadata!.deletionTimestamp, 'and it is not being deleted');
  });

  await t.test('flotilla delete --cascade', async (t) => {
    const cli = async (...args: string[]) => {
      let out = '';
      let err = '';
      const before = process.exitCode;
      await deleteCmd([...args, '--server', cluster.urls[0]], { out: (x) => void (out += x), err: (x) => void (err += x), stdin: process.stdin });
      const failed = process.exitCode === 1 && before !== 1;
      process.exitCode = before;
      return { out, err, failed };
    };
    const fg = await mkRs('cli-fg');
    await mkPod('cli-fg-1', fg);
    const r = await cli('replicaset', 'cli-fg', '--cascade=foreground');
    t.notOk(r.failed, r.err);
    t.equal(r.out, 'replicaset.apps "cli-fg" deleted\n');
    t.notOk(await exists(resourcePath(PODS, 'default', 'cli-fg-1')), 'foreground: the pod was gone before the waiting delete returned');
    const or = await mkRs('cli-or');
    await mkPod('cli-or-1', or);
    t.notOk((await cli('rs', 'cli-or', '--cascade', 'orphan')).failed);
    t.same((await client.get(resourcePath(PODS, 'default', 'cli-or-1'))).metadata?.ownerReferences ?? [], [], 'orphan: the pod stays without its reference');
    t.match((await cli('rs', 'x', '--cascade=sideways')).err, /invalid cascade value \(sideways\)/);
  });

  await t.test('dangling references: collected, or removed beside a solid owner', async (t) => {
    const solid = await mkCm('solid-owner', []);
    const ghost = { apiVersion: 'v1', kind: 'ConfigMap', name: 'ghost', uid: '00000000-0000-0000-0000-000000000000' };
    await mkCm('dangling', [ghost]);
    await mkCm('half', [ghost, ownerRef(solid, false)]);
    await gone('dangling', resourcePath(CM, 'default', 'dangling'));
    await gone('early', resourcePath(CM, 'default', 'early'));
    await waitFor('half loses the dangling reference', async () => {
      const half = await client.get(resourcePath(CM, 'default', 'half'));
      const refs = (half.metadata as { ownerReferences?: { uid: string }[] }).ownerReferences ?? [];
      return refs.length === 1 && refs[0].uid === solid.metadata!.uid;
    }, 20_000, 50);
    t.pass('dangling collected; the object with a solid owner kept and its dangling reference removed');
  });
});
