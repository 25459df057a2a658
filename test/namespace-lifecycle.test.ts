// Namespace lifecycle: the conditions a terminating namespace reports (a
// table), then against a real server: a new namespace gets its default
// ServiceAccount and kube-root-ca.crt (put back when deleted or changed);
// deleting a namespace with kubectl empties it (pods first), reports what is
// left while a finalizer holds content, refuses new content, and removes it.
import { spawn } from 'node:child_process';
import t from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { newControllerContext, stopControllerContext } from '../agents/controllers/context.ts';
import { namespaceConditions } from '../agents/controllers/namespace/conditions.ts';
import { GarbageCollector } from '../agents/controllers/garbagecollector/controller.ts';
import { NamespaceController, contentKinds } from '../agents/controllers/namespace/controller.ts';
import { selectControllers } from '../agents/controllers/registry.ts';
import { ROOT_CA_CONFIGMAP, RootCAPublisher } from '../agents/controllers/serviceaccount/rootca.ts';
import { ServiceAccountsController } from '../agents/controllers/serviceaccount/serviceaccounts.ts';
import type { Condition, KubeObject } from '../agents/informer/types.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { tempDir, waitFor } from '../harness/procs.ts';

t.test('namespace conditions', async (t) => {
  const empty = { failures: [], remaining: new Map(), finalizers: new Map() };
  const ok = namespaceConditions(empty, undefined, 'T1');
  t.same(ok.map((c) => [c.type, c.status, c.reason]), [
    ['NamespaceDeletionDiscoveryFailure', 'False', 'ResourcesDiscovered'],
    ['NamespaceDeletionGroupVersionParsingFailure', 'False', 'ParsedGroupVersions'],
    ['NamespaceDeletionContentFailure', 'False', 'ContentDeleted'],
    ['NamespaceContentRemaining', 'False', 'ContentRemoved'],
    ['NamespaceFinalizersRemaining', 'False', 'ContentHasNoFinalizers'],
  ], 'all five, False, when everything went');
  const bad = namespaceConditions({
    failures: [{ resource: 'secrets.', error: 'boom' }], remaining: new Map([['pods.', 2], ['configmaps.', 1]]), finalizers: new Map([['example.com/hold', 1]]),
  }, ok, 'T2');
  const by = (type: string) => bad.find((c) => c.type === type) as Condition;
  t.match(by('NamespaceContentRemaining'), { status: 'True', reason: 'SomeResourcesRemain', message: 'Some resources are remaining: configmaps. has 1 resource instances, pods. has 2 resource instances', lastTransitionTime: 'T2' });
  t.match(by('NamespaceFinalizersRemaining'), { status: 'True', reason: 'SomeFinalizersRemain', message: 'Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances' });
  t.match(by('NamespaceDeletionContentFailure'), { status: 'True', reason: 'ContentDeletionFailed', message: /1 remaining: secrets\.: boom/ });
  t.equal(by('NamespaceDeletionDiscoveryFailure').lastTransitionTime, 'T1', 'an unchanged status keeps its transition time');
  const kinds = contentKinds();
  t.equal(kinds[0].plural, 'pods', 'pods are emptied first');
  t.notOk(kinds.some((k) => !k.namespaced), 'only namespaced kinds');
});

t.test('against a real server', async (t) => {
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
  const ctx = newControllerContext({ client, nats: nats.url });
  // Through the registry, as `flotilla controllers --controllers …` builds them (the garbage collector too).
  const controllers = selectControllers('garbagecollector,namespace,serviceaccount,root-ca-cert-publisher').map((d) => d.create(ctx));
  t.same(controllers.map((c) => c.constructor), [GarbageCollector, NamespaceController, ServiceAccountsController, RootCAPublisher]);
  const abort = new AbortController();
  await ctx.informers.start();
  const running = controllers.map((c) => c.run(abort.signal));
  t.teardown(async () => {
    abort.abort();
    await Promise.all(running);
    await stopControllerContext(ctx);
  });
  const NS = resolveKind('namespaces')!;
  const SA = resolveKind('serviceaccounts')!;
  const CM = resolveKind('configmaps')!;
  const PODS = resolveKind('pods')!;
  const exists = async (path: string) => client.get(path).then(() => true, (e) => {
    if (e instanceof ApiClientError && e.code === 404) return false;
    throw e;
  });
  const cache = tempDir('kubectl-cache');
  const kubectl = (...args: string[]) => new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const p = spawn('kubectl', ['--kubeconfig', cluster.kubeconfig, '--cache-dir', cache, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });

  await t.test('every namespace gets a default ServiceAccount and kube-root-ca.crt, kept there', async (t) => {
    await waitFor('system namespaces provisioned', async () => await exists(resourcePath(SA, 'kube-system', 'default')) && await exists(resourcePath(CM, 'default', ROOT_CA_CONFIGMAP)), 15_000, 50);
    await client.create(resourcePath(NS), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } });
    await waitFor('team provisioned', async () => await exists(resourcePath(SA, 'team', 'default')) && await exists(resourcePath(CM, 'team', ROOT_CA_CONFIGMAP)), 15_000, 50);
    const cm = await client.get<KubeObject & { data?: Record<string, string> }>(resourcePath(CM, 'team', ROOT_CA_CONFIGMAP));
    t.same(Object.keys(cm.data ?? {}), ['ca.crt'], 'the ConfigMap holds ca.crt');
    await client.delete(resourcePath(SA, 'team', 'default'));
    await waitFor('default SA made again', () => exists(resourcePath(SA, 'team', 'default')), 15_000, 50);
    await client.patch(resourcePath(CM, 'team', ROOT_CA_CONFIGMAP), { data: { 'ca.crt': 'tampered', extra: 'x' } }, 'application/merge-patch+json');
    await waitFor('kube-root-ca.crt put back', async () => JSON.stringify((await client.get<typeof cm>(resourcePath(CM, 'team', ROOT_CA_CONFIGMAP))).data) === JSON.stringify(cm.data), 15_000, 50);
    await client.delete(resourcePath(CM, 'team', ROOT_CA_CONFIGMAP));
    await waitFor('kube-root-ca.crt made again', () => exists(resourcePath(CM, 'team', ROOT_CA_CONFIGMAP)), 15_000, 50);
    t.pass('deleted or changed, both come back');
  });

  await t.test('kubectl delete namespace empties it, refuses new content, then removes it', async (t) => {
    for (let i = 0; i < 3; i++) {
      await client.create(resourcePath(PODS, 'team'), { apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}` }, spec: { containers: [{ name: 'c', image: 'x' }] } });
    }
    await waitFor('pods bound', async () => (await client.list(resourcePath(PODS, 'team'))).items.every((p) => (p.spec as { nodeName?: string }).nodeName), 15_000, 50);
    await client.create(resourcePath(CM, 'team'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'held', finalizers: ['example.com/hold'] } });
    await client.create(resourcePath(resolveKind('secrets')!, 'team'), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { a: 'b' } });
    const r = await kubectl('delete', 'namespace', 'team', '--wait=false');
    t.equal(r.code, 0, r.err);
    type Ns = KubeObject & { status?: { phase?: string; conditions?: Condition[] } };
    const held = await waitFor('the held ConfigMap reported', async () => {
      const ns = await client.get<Ns>(resourcePath(NS, undefined, 'team'));
      const c = ns.status?.conditions?.find((x) => x.type === 'NamespaceFinalizersRemaining');
      return c?.status === 'True' ? ns : undefined;
    }, 20_000, 100);
    t.equal(held.status?.phase, 'Terminating');
    t.match(held.status?.conditions?.find((x) => x.type === 'NamespaceContentRemaining'), { status: 'True', message: /configmaps\. has 1 resource instances/ });
    t.equal((await client.list(resourcePath(PODS, 'team'))).items.length, 0, 'the pods are gone');
    t.notOk(await exists(resourcePath(resolveKind('secrets')!, 'team', 's')), 'the secret is gone');
    const refused = await kubectl('create', 'configmap', 'late', '-n', 'team');
    t.not(refused.code, 0, 'creation refused while terminating');
    t.match(refused.err, /forbidden: unable to create new content in namespace team because it is being terminated/);
    await client.patch(resourcePath(CM, 'team', 'held'), { metadata: { finalizers: null } }, 'application/merge-patch+json');
    const waited = await kubectl('wait', '--for=delete', 'namespace/team', '--timeout=30s');
    t.equal(waited.code, 0, `the namespace went: ${waited.err}`);
    t.notOk(await exists(resourcePath(NS, undefined, 'team')));
  });
});
