// The informer and the stream's limits: with a tiny EVENTS stream (40
// messages) the point an informer would resume from gets removed; the
// informer must notice and re-list rather than carry on with a hole, while an
// informer that keeps up never re-lists.
import { StorageType, nanos } from 'nats';
import t, { type Test } from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { type ConfigMap, Informer, connectNats, keyOf, silentLogger } from '../agents/informer/index.ts';
import { kindByName } from '../api/kinds/index.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';

const CM = kindByName('configmaps')!;
const MAX_MSGS = 40;

const snap = (objs: ConfigMap[]) => objs.map((o) => [keyOf(o), o.metadata.resourceVersion]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));

t.test('informer re-lists when its start point was removed by the stream\'s limits', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const nc = await connectNats(nats.url, 'retention-test');
  t.teardown(() => nc.close());
  const jsm = await nc.jetstreamManager();
  // Created before the servers: the publisher adopts an existing stream and only sets its age, size and duplicate window.
  await jsm.streams.add({ name: 'EVENTS', subjects: ['events.>'], storage: StorageType.File, max_msgs: MAX_MSGS, duplicate_window: nanos(60_000) });
  const cluster = await FlotillaCluster.start(3, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const path = resourcePath(CM, 'default');
  const list = async () => snap((await c.list<ConfigMap>(path)).items);
  const converge = async (inf: Informer<ConfigMap>) => {
    let want: unknown[] = [];
    await waitFor('convergence', async () => {
      want = await list();
      return JSON.stringify(want) === JSON.stringify(snap(inf.list()));
    }, 15_000, 100).catch(() => {});
    return want;
  };
  let k = 0;
  const converged = async (t: Test, inf: Informer<ConfigMap>, what = 'cache equals a fresh LIST') => {
    const want = await converge(inf);
    t.same(snap(inf.list()), want, what);
  };
  const writes = async (n: number, tag: string) => {
    for (let j = 0; j < n; j++) {
      const i = k++;
      const name = `cm-${i % 15}`;
      const r = Math.floor(i / 15) % 3; // every name: create, update, delete, in turn
      const ignore = (e: unknown) => {
        if (!(e instanceof ApiClientError)) throw e;
      };
      if (r === 0) await c.create(path, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { tag } }).catch(ignore);
      else if (r === 1) await c.patch(`${path}/${name}`, { data: { tag, i: String(i) } }, 'application/merge-patch+json').catch(ignore);
      else await c.delete(`${path}/${name}`).catch(ignore);
    }
  };

  const keeper = new Informer<ConfigMap>({ client: c, nats: nc, kind: CM, namespace: 'default', logger: silentLogger });
  const sleeper = new Informer<ConfigMap>({ client: c, nats: nc, kind: CM, namespace: 'default', logger: silentLogger });
  t.teardown(() => Promise.all([keeper.stop(), sleeper.stop()]));
  const seen = new Map<string, string>();
  const problems: string[] = [];
  sleeper.addEventHandler({
    onAdd: (o) => void seen.set(keyOf(o), o.metadata.resourceVersion!),
    onUpdate: (old, o) => {
      if (!seen.has(keyOf(old))) problems.push(`update of unknown ${keyOf(old)}`);
      seen.set(keyOf(o), o.metadata.resourceVersion!);
    },
    onDelete: (o) => {
      if (!seen.delete(keyOf(o))) problems.push(`delete of unknown ${keyOf(o)}`);
    },
  });
  await Promise.all([keeper.start(), sleeper.start()]);
  await writes(30, 'a');
  await converged(t, sleeper, 'both follow while the stream holds everything');
  await sleeper.stop();
  const stoppedAt = sleeper.stats.lastIndex;

  await t.test('writes wrap the stream while one informer is stopped', async (t) => {
    await writes(3 * MAX_MSGS, 'b');
    const info = await jsm.streams.info('EVENTS');
    t.equal(info.state.messages, MAX_MSGS, 'the stream holds only its last 40 messages');
    t.ok(info.state.first_seq > sleeper.stats.streamSeq + 1, `its first sequence (${info.state.first_seq}) is past the stopped informer's position (${sleeper.stats.streamSeq})`);
    await converged(t, keeper, 'the informer that kept up converged');
    t.equal(keeper.stats.relists, 0, 'and never needed to re-list');
  });

  await t.test('the stopped informer notices on restart and re-lists', async (t) => {
    await sleeper.start();
    await converged(t, sleeper);
    t.equal(sleeper.stats.relists, 1, 'one re-list');
    t.equal(sleeper.stats.lists, 2, 'the first LIST and the re-list');
    t.ok(sleeper.stats.lastIndex > stoppedAt);
    t.same(problems, [], 'the re-list reached the handlers as adds, updates and deletes');
    t.same([...seen].sort((a, b) => (a[0] < b[0] ? -1 : 1)), snap(sleeper.list()), 'handlers saw exactly what the cache holds');
    await writes(10, 'c');
    await converged(t, sleeper, 'and it follows the stream again afterwards');
    t.equal(sleeper.stats.relists, 1);
  });

  await t.test('a purge after the stopped informer\'s position also forces a re-list; a purge of what it read does not', async (t) => {
    await sleeper.stop();
    await converge(keeper);
    await jsm.streams.purge('EVENTS');
    await sleeper.start();
    await writes(6, 'd');
    await converged(t, sleeper);
    t.equal(sleeper.stats.relists, 1, 'nothing it had not read was purged: no re-list');
    await sleeper.stop();
    await writes(6, 'e');
    await waitFor('events published', async () => (await jsm.streams.info('EVENTS')).state.messages > 0, 10_000);
    await jsm.streams.purge('EVENTS');
    await sleeper.start();
    await converged(t, sleeper, 'cache equals a fresh LIST');
    t.equal(sleeper.stats.relists, 2, 'events it had not read were purged: re-listed');
    await converged(t, keeper);
    t.equal(keeper.stats.relists, 0, 'the informer that kept up never re-listed');
  });
});
