// The informer's second source: LIST + WATCH through the API with a field
// selector (the node agent's view: only the pods bound to its node), against
// a real server and nats-server. The cache holds exactly what a filtered
// LIST says through creates/updates/deletes; stop() then start() resumes from
// the last resourceVersion, and when the server's watch history no longer
// reaches back that far (410 Gone) it re-lists and reconciles.
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { Informer, type Pod, keyOf, silentLogger } from '../agents/informer/index.ts';
import { kindByName } from '../api/kinds/index.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';

const PODS = kindByName('pods')!;
const CM = kindByName('configmaps')!;

const pod = (name: string, nodeName: string) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'w' } },
  spec: { nodeName, containers: [{ name: 'c', image: 'busybox', command: ['sleep', '1000'] }] },
});

t.test('informer with the watch source and a field selector', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  // A small watch history so that a resumed watch can be made to fall off its end (410).
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url, '--watch-history-bytes', '64Ki'] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const path = resourcePath(PODS, 'default');

  t.throws(() => new Informer({ client: c, nats: nats.url, kind: PODS, fieldSelector: 'spec.nodeName=n1' }), /field selector needs the watch source/);

  await c.create(path, pod('a1', 'n1'));
  await c.create(path, pod('b1', 'n2'));
  const inf = new Informer<Pod>({ client: c, kind: PODS, source: 'watch', fieldSelector: 'spec.nodeName=n1', logger: silentLogger });
  const seen: string[] = [];
  inf.addEventHandler({
    onAdd: (o) => seen.push(`add ${o.metadata.name}`),
    onUpdate: (o, n) => o.metadata.resourceVersion !== n.metadata.resourceVersion && seen.push(`update ${n.metadata.name}`),
    onDelete: (o) => seen.push(`delete ${o.metadata.name}`),
  });
  t.teardown(() => inf.stop());
  await inf.start();
  t.same(inf.keys(), ['default/a1'], 'the LIST holds only the pods of node n1');

  await c.create(path, pod('a2', 'n1'));
  await c.create(path, pod('b2', 'n2'));
  const upd = await c.patch<Pod>(`${path}/a1`, { metadata: { labels: { app: 'x' } } }, 'application/merge-patch+json');
  await inf.waitForResourceVersion(upd.metadata.resourceVersion!, 10_000);
  t.same(inf.keys().sort(), ['default/a1', 'default/a2'], 'the watch adds only n1 pods');
  t.equal(inf.get('default', 'a1')?.metadata.labels?.app, 'x', 'an update reaches the cache');
  await c.delete(`${path}/a2`, { gracePeriodSeconds: 0 });
  await waitFor('a2 gone from the cache', () => !inf.get('default', 'a2'), 10_000);
  t.same(seen, ['add a1', 'add a2', 'update a1', 'delete a2'], 'handlers saw each change once, in order');
  t.equal(inf.stats.relists, 0);

  // Stopped: the pod set changes and the history moves past the informer's resourceVersion.
  await inf.stop();
  await c.create(path, pod('a3', 'n1'));
  await c.delete(`${path}/a1`, { gracePeriodSeconds: 0 });
  const filler = 'x'.repeat(8_000);
  for (let i = 0; i < 16; i++) await c.create(resourcePath(CM, 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `fill-${i}` }, data: { x: filler } });
  await inf.start();
  await waitFor('the re-list after 410', () => inf.stats.relists >= 1, 15_000);
  await waitFor('the cache to converge', () => inf.keys().join() === 'default/a3', 15_000);
  const fresh = await c.list<Pod>(path, { fieldSelector: 'spec.nodeName=n1' });
  t.same(inf.list().map(keyOf), fresh.items.map(keyOf), 'the cache equals a fresh filtered LIST');
  t.same(seen.slice(4).sort(), ['add a3', 'delete a1'], 'the re-list delivered the missed add and delete');
});
