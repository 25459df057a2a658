// The chaos orchestrator workload keeps a burst Deployment whose delete failed
// and deletes it at the next burst-delete, so a fault at the wrong moment never
// leaves a Deployment behind that the run then blames on the cluster.
import t from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import type { Deployment } from '../agents/informer/types.ts';
import { ORCH_NAMESPACE, OrchestratorWorkload } from '../chaos/orchestrator-workload.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { Rng } from '../harness/rng.ts';

const DEPLOYMENTS = resolveKind('deployments')!;

t.test('a burst whose delete failed is deleted by the next burst-delete', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  // A short deadline: with the only server down, a call fails in about a second, not 30.
  const work = new OrchestratorWorkload(cluster.urls, new Rng(1), { deadlineMs: 1000 });
  t.teardown(() => work.close());
  await work.setup();
  await work.act('burst');
  t.same(work.pendingBursts, ['burst-1'], 'one burst Deployment');
  const exists = async (name: string) => {
    try {
      const d = await client.get<Deployment>(resourcePath(DEPLOYMENTS, ORCH_NAMESPACE, name));
      return !d.metadata.deletionTimestamp;
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return false;
      throw e;
    }
  };
  t.ok(await exists('burst-1'));

  const [id] = cluster.alive().map((m) => m.id);
  await cluster.kill(id!);
  await t.rejects(work.act('burst-delete'), 'the delete fails while the server is down');
  t.same(work.pendingBursts, ['burst-1'], 'and the burst is still in line');
  cluster.startMember(id!);
  await cluster.waitReady();
  t.ok(await exists('burst-1'), 'not deleted by the failed call');

  await work.act('burst-delete');
  t.same(work.pendingBursts, [], 'deleted at the next burst-delete');
  t.notOk(await exists('burst-1'), 'the Deployment is gone (or being deleted)');
  await work.act('burst-delete');
  t.same(work.pendingBursts, [], 'nothing left to delete');
});
