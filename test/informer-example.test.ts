// The example controller (examples/controller/) as users run it: a separate
// process against three servers and nats-server, converging each namespace's
// "summary" ConfigMap as ConfigMaps come and go.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import type { ConfigMap } from '../agents/informer/index.ts';
import { kindByName } from '../api/kinds/index.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { ROOT, startProcess, waitFor } from '../harness/procs.ts';

const CM = kindByName('configmaps')!;

t.test('configmap-summary example controller', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(3, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  await c.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  // Existing before the controller starts: picked up by its initial LIST.
  await c.create(resourcePath(CM, 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'early' } });
  const ctl = startProcess(process.execPath, [
    `--import=${import.meta.resolve('tsx')}`, join(ROOT, 'examples', 'controller', 'main.ts'),
    '--server', cluster.urls.join(','), '--nats', nats.url, '--workers', '3',
  ], { logFile: join(cluster.dir, 'controller.log') });
  t.teardown(() => ctl.kill('SIGKILL'));
  /** The controller's JSON log lines (pino). */
  const logLines = (): Record<string, unknown>[] => readFileSync(ctl.logFile, 'utf8').split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });

  const summary = async (ns: string) => {
    try {
      return await c.get<ConfigMap>(`${resourcePath(CM, ns)}/summary`);
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return undefined;
      throw e;
    }
  };
  const expect = (ns: string, names: string[] | undefined) => waitFor(`summary of ${ns} = ${names?.join(',') ?? '(none)'}`, async () => {
    const s = await summary(ns);
    if (!names) return s === undefined;
    return s?.data?.names === names.join(',') && s.data?.count === String(names.length);
  }, 15_000, 100);

  await expect('default', ['early']);
  t.pass('the summary of an existing ConfigMap is created');
  const created = [];
  for (let i = 0; i < 12; i++) created.push(c.create(resourcePath(CM, i % 2 ? 'shop' : 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${String(i).padStart(2, '0')}` } }));
  await Promise.all(created);
  await expect('default', ['cm-00', 'cm-02', 'cm-04', 'cm-06', 'cm-08', 'cm-10', 'early']);
  await expect('shop', ['cm-01', 'cm-03', 'cm-05', 'cm-07', 'cm-09', 'cm-11']);
  t.pass('summaries follow a burst of creates in two namespaces');
  const s = await summary('shop');
  t.equal(s?.metadata.labels?.['app.kubernetes.io/managed-by'], 'configmap-summary');

  // Someone edits the summary by hand: the controller puts it back.
  await c.patch(`${resourcePath(CM, 'shop')}/summary`, { data: { count: '99' } }, 'application/merge-patch+json');
  await expect('shop', ['cm-01', 'cm-03', 'cm-05', 'cm-07', 'cm-09', 'cm-11']);
  t.pass('a hand edit of the summary is reverted');

  await Promise.all(['cm-01', 'cm-03', 'cm-05', 'cm-07', 'cm-09', 'cm-11'].map((n) => c.delete(`${resourcePath(CM, 'shop')}/${n}`)));
  await expect('shop', undefined);
  t.pass('the summary goes when the namespace has no ConfigMap left');

  // A ConfigMap named "summary" that the controller does not own is left alone.
  await c.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'mine' } });
  await c.create(resourcePath(CM, 'mine'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'summary' }, data: { mine: 'yes' } });
  const other = await c.create<ConfigMap>(resourcePath(CM, 'mine'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'other' } });
  // The controller reconciled "mine" and saw the summary was not its own.
  const skips = () => logLines().filter((l) => l.namespace === 'mine' && /not managed by this controller/.test(String(l.msg))).length;
  await waitFor('the controller to skip namespace mine', () => skips() > 0, 15_000, 100);
  // That skip may have come from the first event in "mine", before "other" was
  // in the cache. A change made after "other" was created is reconciled only
  // once the informer has applied everything before it: wait for that skip.
  await c.patch(`${resourcePath(CM, 'mine')}/other`, { metadata: { labels: { touched: 'yes' } } }, 'application/merge-patch+json');
  const skipsBefore = skips();
  await waitFor('the controller to reconcile namespace mine again', () => skips() > skipsBefore, 15_000, 100);

  // Stopping drains the work queue: every namespace enqueued before SIGTERM is
  // reconciled before the process exits. Its informer had applied "other" by
  // then (its stats say so), so "mine" was reconciled with both objects in
  // the cache; after the exit nothing can change the summary any more.
  ctl.child.kill('SIGTERM');
  t.equal(await ctl.exited, 0, 'stops cleanly on SIGTERM');
  const stopping = logLines().find((l) => l.msg === 'stopping') as { stats?: { lastIndex?: number } } | undefined;
  t.ok((stopping?.stats?.lastIndex ?? 0) >= Number(other.metadata.resourceVersion), `the controller's cache had reached "other" (${other.metadata.resourceVersion}) when it stopped (at ${stopping?.stats?.lastIndex})`);
  t.same((await summary('mine'))?.data, { mine: 'yes' }, 'someone else\'s "summary" is not clobbered');
  t.notOk(logLines().some((l) => l.namespace === 'mine' && /^(created|updated|deleted) the summary/.test(String(l.msg))), 'the controller never wrote a summary in namespace mine');
});
