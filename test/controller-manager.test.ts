// `flotilla controllers` as a highly available process: of two replicas one
// leads through the Lease; killed with SIGKILL, the standby takes over once
// the Lease expires; stopped cleanly, the leader releases the Lease and the
// standby takes over at once; both say in /healthz and /metrics whether they lead.
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { ControllerManager } from '../harness/controllers.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';

const LEASES = resolveKind('leases')!;
// Short durations keep the test quick; the relations are client-go's (15/10/2).
const LE = ['--leader-elect-lease-duration', '3s', '--leader-elect-renew-deadline', '2s', '--leader-elect-retry-period', '500ms'];

t.test('two controller managers: one leads, the other takes over', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const start = (id: string) => ControllerManager.start({ servers: cluster.urls, nats: nats.url, id, args: LE });
  const a = await start('cm-a');
  t.teardown(() => a.stop('SIGKILL'));
  const b = await start('cm-b');
  t.teardown(() => b.stop('SIGKILL'));

  const holder = async () => ((await client.get(resourcePath(LEASES, 'kube-system', 'flotilla-controller-manager'))) as { spec?: { holderIdentity?: string } }).spec?.holderIdentity;
  await waitFor('a leader', async () => (await a.leading()) || (await b.leading()), 15_000, 100);
  const [leader, standby] = (await a.leading()) ? [a, b] : [b, a];
  t.notOk(await standby.leading(), 'only one leads');
  t.equal(await holder(), leader.o.id, 'the Lease names the leader');
  t.match(await leader.metrics(), /flotilla_controllers_leading 1/);
  t.match(await standby.metrics(), /flotilla_controllers_leading 0/);
  t.match(await leader.metrics(), /leader_election_master_status\{[^}]*\} 1/);

  // kill -9: no release; the standby waits for the Lease to expire (3 s).
  const killedAt = Date.now();
  await leader.stop('SIGKILL');
  await waitFor('the standby to lead', () => standby.leading(), 15_000, 50);
  const gap = Date.now() - killedAt;
  t.ok(gap >= 2000, `the standby waited for the Lease to expire (${gap} ms)`);
  t.ok(gap <= 3000 + 2000 + 1500, `and took over within lease duration + 2 s (+ polling) (${gap} ms)`);
  t.equal(await holder(), standby.o.id);

  // The killed replica comes back as a standby; a clean stop of the leader hands over at once.
  await leader.restart();
  await waitFor('the restarted replica to sync', async () => (await leader.health())?.synced === true, 15_000, 100);
  t.notOk(await leader.leading(), 'the restarted replica is a standby');
  const stoppedAt = Date.now();
  await standby.stop('SIGTERM');
  await waitFor('the restarted replica to lead', () => leader.leading(), 15_000, 50);
  const handover = Date.now() - stoppedAt;
  t.ok(handover < 2000, `a clean stop releases the Lease: taken over in ${handover} ms (< lease duration 3 s)`);
});
