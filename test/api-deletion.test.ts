// Server-side deletion semantics the garbage collector and the namespace
// controller build on: propagationPolicy (body, query, orphanDependents,
// per-kind defaults) turned into the orphan/foregroundDeletion finalizers;
// Namespace termination (Terminating, the "kubernetes" spec finalizer,
// namespaces/finalize, creation refused while terminating); what kubectl's
// --cascade sends.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { ApiClient, ApiClientError } from '../agents/client/api.ts';
import { FINALIZER_FOREGROUND, FINALIZER_ORPHAN, finalizersForDelete, orphansByDefault, policyOf } from '../apiserver/deletion.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { tempDir } from '../harness/procs.ts';

t.test('finalizersForDelete: the table of Kubernetes\' deletionFinalizersForGarbageCollection', async (t) => {
  const cases: [string, string[] | undefined, Parameters<typeof finalizersForDelete>[1], string[]][] = [
    ['no request keeps what is there', ['x'], undefined, ['x']],
    ['Background on a plain object', undefined, { policy: 'Background' }, []],
    ['Foreground adds foregroundDeletion', ['x'], { policy: 'Foreground' }, ['x', FINALIZER_FOREGROUND]],
    ['Orphan adds orphan', undefined, { policy: 'Orphan' }, [FINALIZER_ORPHAN]],
    ['Orphan replaces foregroundDeletion', [FINALIZER_FOREGROUND, 'x'], { policy: 'Orphan' }, ['x', FINALIZER_ORPHAN]],
    ['Background removes both', [FINALIZER_ORPHAN, FINALIZER_FOREGROUND], { policy: 'Background' }, []],
    ['no policy keeps foregroundDeletion', [FINALIZER_FOREGROUND], {}, [FINALIZER_FOREGROUND]],
    ['no policy, kind defaults to orphan', undefined, { defaultOrphan: true }, [FINALIZER_ORPHAN]],
    ['explicit Background beats the kind default', undefined, { policy: 'Background', defaultOrphan: true }, []],
    ['orphan is not duplicated', [FINALIZER_ORPHAN], { policy: 'Orphan' }, [FINALIZER_ORPHAN]],
  ];
  for (const [what, cur, gc, want] of cases) t.same(finalizersForDelete(cur, gc), want, what);
});

t.test('policyOf and per-kind defaults', async (t) => {
  t.equal(policyOf('Foreground', undefined), 'Foreground');
  t.equal(policyOf(undefined, true), 'Orphan');
  t.equal(policyOf(undefined, false), 'Background');
  t.equal(policyOf(undefined, undefined), undefined);
  t.throws(() => policyOf('Sideways', undefined), /Unsupported value: "Sideways"/);
  t.throws(() => policyOf('Orphan', true), /cannot be both set/);
  t.ok(orphansByDefault('batch', 'v1', 'jobs'), 'batch/v1 Jobs orphan by default');
  t.ok(orphansByDefault('', 'v1', 'replicationcontrollers'), 'core/v1 ReplicationControllers orphan by default');
  t.notOk(orphansByDefault('apps', 'v1', 'replicasets'), 'apps/v1 kinds delete dependents by default');
});

t.test('DELETE with a propagation policy, and Namespace termination, on a server', async (t) => {
  const cluster = await FlotillaCluster.start(1);
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const cm = (name: string, ns = 'default') => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns } });
  const cmPath = (ns = 'default', name?: string) => `/api/v1/namespaces/${ns}/configmaps${name ? `/${name}` : ''}`;
  type Obj = { metadata: { finalizers?: string[]; deletionTimestamp?: string; uid?: string }; status?: { phase?: string }; spec?: { finalizers?: string[] } };
  const reason = async (p: Promise<unknown>) => p.then(() => 'ok', (e) => (e instanceof ApiClientError ? `${e.code} ${e.reason}` : String(e)));

  await c.create(cmPath(), cm('fg'));
  const fg = await c.delete<Obj>(cmPath('default', 'fg'), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground' });
  t.same(fg.metadata.finalizers, [FINALIZER_FOREGROUND], 'Foreground (body): foregroundDeletion finalizer');
  t.ok(fg.metadata.deletionTimestamp, 'and a deletionTimestamp');
  const bg = await c.delete<Obj>(cmPath('default', 'fg'), undefined, { propagationPolicy: 'Background' });
  t.notOk(bg.metadata.finalizers, 'a second DELETE with Background (query) drops the finalizer');
  t.equal(await reason(c.get(cmPath('default', 'fg'))), '404 NotFound', 'and the object goes');

  await c.create(cmPath(), cm('or'));
  const or = await c.delete<Obj>(cmPath('default', 'or'), { orphanDependents: true });
  t.same(or.metadata.finalizers, [FINALIZER_ORPHAN], 'orphanDependents=true: orphan finalizer');
  t.equal(await reason(c.delete(cmPath('default', 'or'), { propagationPolicy: 'Nope' })), '422 Invalid', 'an unknown policy is refused');
  await c.patch(cmPath('default', 'or'), { metadata: { finalizers: null } }, 'application/merge-patch+json');
  t.equal(await reason(c.get(cmPath('default', 'or'))), '404 NotFound', 'removing the last finalizer deletes it');

  const job = await c.create<Obj>('/apis/batch/v1/namespaces/default/jobs', {
    apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'x' }] } } },
  });
  const jd = await c.delete<Obj>('/apis/batch/v1/namespaces/default/jobs/j');
  t.same(jd.metadata.finalizers, [FINALIZER_ORPHAN], 'a batch/v1 Job deleted without a policy orphans (Kubernetes\' default)');
  t.equal(jd.metadata.uid, job.metadata.uid);

  // Graceful deletion and finalizers: the node's grace-0 DELETE is kept while a finalizer holds the pod.
  type PodObj = Obj & { metadata: { deletionGracePeriodSeconds?: number } };
  const podPath = (name: string) => `/api/v1/namespaces/default/pods/${name}`;
  const mkPod = (name: string, finalizers?: string[]) => c.create('/api/v1/namespaces/default/pods', {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, ...(finalizers ? { finalizers } : {}) }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'x' }] },
  });
  await mkPod('held', ['example.com/hold']);
  t.equal((await c.delete<PodObj>(podPath('held'))).metadata.deletionGracePeriodSeconds, 30, 'a bound pod is deleted gracefully');
  t.equal((await c.delete<PodObj>(podPath('held'), { gracePeriodSeconds: 0 })).metadata.deletionGracePeriodSeconds, 0, 'the node\'s grace-0 DELETE shortens it; the finalizer keeps it');
  await c.patch(podPath('held'), { metadata: { finalizers: null } }, 'application/merge-patch+json');
  t.equal(await reason(c.get(podPath('held'))), '404 NotFound', 'it goes with its finalizer');
  await mkPod('graceful');
  await c.delete(podPath('graceful'));
  await c.patch(`${podPath('graceful')}/status`, { status: { phase: 'Running' } }, 'application/merge-patch+json');
  t.ok(await c.get(podPath('graceful')), 'a status write during the grace period does not delete the pod');
  await c.delete(podPath('graceful'), { gracePeriodSeconds: 0 });
  t.equal(await reason(c.get(podPath('graceful'))), '404 NotFound', 'the confirming DELETE does');

  // Namespaces.
  const ns = await c.create<Obj>('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'doomed' } });
  t.same(ns.spec?.finalizers, ['kubernetes'], 'a new namespace carries the kubernetes finalizer');
  t.equal(ns.status?.phase, 'Active');
  await c.update('/api/v1/namespaces/doomed', { ...ns, spec: { finalizers: [] }, metadata: { ...ns.metadata, labels: { a: 'b' } } });
  t.same((await c.get<Obj>('/api/v1/namespaces/doomed')).spec?.finalizers, ['kubernetes'], 'an update of the namespace cannot drop spec.finalizers');
  await c.create(cmPath('doomed'), cm('inside', 'doomed'));
  const term = await c.delete<Obj>('/api/v1/namespaces/doomed');
  t.equal(term.status?.phase, 'Terminating', 'DELETE makes it Terminating');
  t.ok(term.metadata.deletionTimestamp);
  const refused = await c.create(cmPath('doomed'), cm('late', 'doomed')).catch((e: unknown) => e);
  t.ok(refused instanceof ApiClientError && refused.code === 403, 'creation in a terminating namespace is Forbidden');
  t.match((refused as Error).message, /unable to create new content in namespace doomed because it is being terminated/);
  t.ok(await c.get('/api/v1/namespaces/doomed'), 'it stays while the finalizer is there');
  await c.update('/api/v1/namespaces/doomed/finalize', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'doomed' }, spec: { finalizers: [] } });
  t.equal(await reason(c.get('/api/v1/namespaces/doomed')), '404 NotFound', 'namespaces/finalize removing the last finalizer removes it');
  t.equal(await reason(c.delete('/api/v1/namespaces/default')), '403 Forbidden', 'default may not be deleted');
  t.equal(await reason(c.delete('/api/v1/namespaces')), '405 MethodNotAllowed', 'namespaces have no collection delete');
  const sys = await c.get<Obj>('/api/v1/namespaces/kube-system');
  t.same(sys.spec?.finalizers, ['kubernetes'], 'system namespaces carry the finalizer too');

  const noKubectl = kubectlMissing(t);
  if (noKubectl) return;
  const cache = tempDir('kubectl-cache');
  const kubectl = (...args: string[]) => spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, '--cache-dir', cache, ...args], { encoding: 'utf8', timeout: 60_000 });
  for (const [cascade, fin] of [['foreground', [FINALIZER_FOREGROUND]], ['orphan', [FINALIZER_ORPHAN]]] as const) {
    await c.create(cmPath(), cm(`k-${cascade}`));
    const r = kubectl('delete', 'configmap', `k-${cascade}`, `--cascade=${cascade}`, '--wait=false');
    t.equal(r.status, 0, `kubectl delete --cascade=${cascade}: ${r.stderr}`);
    t.same((await c.get<Obj>(cmPath('default', `k-${cascade}`))).metadata.finalizers, fin, `--cascade=${cascade} leaves ${fin.join()}`);
  }
});
