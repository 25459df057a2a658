// Scheduler failover: the leading `flotilla scheduler` is killed with
// SIGKILL in the middle of a burst; the standby takes the Lease once it
// expires, catches its cache up with the log and places the rest. Every pod
// ends bound exactly once (its node never changes: the server refuses a
// second binding) and no node is over-committed at any event.
import t from 'tap';
import { ApiClient, type ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { Informer } from '../agents/informer/informer.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { SchedulerProcess } from '../harness/scheduler.ts';
import { createPods, overCommitWatch } from './support/scheduling.ts';

const LEASES = resolveKind('leases')!;
// Short enough for a quick takeover, long enough that a loaded machine does not lose the Lease by itself.
const LE = ['--leader-elect-lease-duration', '6s', '--leader-elect-renew-deadline', '4s', '--leader-elect-retry-period', '1s'];
const ALLOC = { cpu: '20', memory: '64Gi', pods: '110', 'ephemeral-storage': '10Gi' };
const TOTAL = 2000;
const PER_NODE = TOTAL / 20;

t.test('the leader killed during a burst: the standby finishes, every pod bound once, none over-committed', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  // 20 nodes × 20 cpu: 200m pods → 100 per node = 2,000 slots for 2,000 pods: every node ends exactly full.
  const nodes = new FakeNodes({ client, nats: nats.url, count: 20, allocatable: ALLOC, bind: false });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const pods = new Informer<Pod>({ client, nats: nats.url, kind: resolveKind('pods')!, name: 'test-pods' });
  const watch = overCommitWatch(pods, ALLOC);
  await pods.start();
  t.teardown(() => pods.stop());

  const a = await SchedulerProcess.start({ servers: cluster.urls, nats: nats.url, id: 'sched-a', args: LE });
  t.teardown(() => a.stop('SIGKILL'));
  const b = await SchedulerProcess.start({ servers: cluster.urls, nats: nats.url, id: 'sched-b', args: LE });
  t.teardown(() => b.stop('SIGKILL'));
  await waitFor('a leader', async () => (await a.leading()) || (await b.leading()), 30_000, 100);
  const [leader, standby] = (await a.leading()) ? [a, b] : [b, a];
  // As `flotilla up` does, a replica that exits (a leader that could not renew in time on a
  // loaded machine exits on purpose) is restarted as a standby; the killed one stays down.
  const unsupervise = standby.supervise();
  t.teardown(unsupervise);

  const objs: KubeObject[] = Array.from({ length: TOTAL }, (_, i) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: `p-${i}`, namespace: 'default' },
    spec: { containers: [{ name: 'c', image: 'busybox', resources: { requests: { cpu: '200m', memory: '64Mi' } } }] },
  }));
  const creating = createPods(client, objs);
  const bound = () => pods.list().filter((p) => p.spec?.nodeName).length;
  await waitFor('some pods bound by the first leader', () => bound() >= 200, 60_000, 20);
  await leader.stop('SIGKILL');
  const atKill = bound();
  t.ok(atKill < TOTAL, `killed with ${atKill}/${TOTAL} bound`);
  await creating;
  await waitFor('the standby to lead', () => standby.leading(), 60_000, 100);
  const lease = await client.get<{ spec?: { holderIdentity?: string } }>(resourcePath(LEASES, 'kube-system', 'kube-scheduler'));
  t.equal(lease.spec?.holderIdentity, standby.id, 'the Lease names the new leader');
  await waitFor('every pod bound', () => bound() === TOTAL, 120_000, 100);

  const perNode = new Map<string, number>();
  for (const p of pods.list()) perNode.set(p.spec!.nodeName!, (perNode.get(p.spec!.nodeName!) ?? 0) + 1);
  t.same([...perNode.values()], Array(20).fill(PER_NODE), `every node exactly full (${PER_NODE} × 200m = 20 cpu)`);
  t.equal(watch.boundTo.size, TOTAL, 'every pod seen bound');
  t.same(watch.violations, [], 'no over-commit at any event and no pod bound twice');
  // The server, not the scheduler, is what makes "bound once" hold: a second binding is refused.
  const victim = pods.list()[0]!;
  const other = [...perNode.keys()].find((n) => n !== victim.spec!.nodeName)!;
  const err = await client.create(`${resourcePath(resolveKind('pods')!, 'default', victim.metadata.name)}/binding`, {
    apiVersion: 'v1', kind: 'Binding', metadata: { name: victim.metadata.name }, target: { kind: 'Node', name: other },
  }).then(() => undefined, (e: ApiClientError) => e);
  t.equal(err?.code, 409, 'a second binding of a bound pod is refused with 409 Conflict');
  t.match(err?.message, /already assigned to node/, 'and says the pod is already assigned');
  const after = await client.get<Pod>(resourcePath(resolveKind('pods')!, 'default', victim.metadata.name));
  t.equal(after.spec?.nodeName, victim.spec!.nodeName, 'the pod stays on its node');
  const h = await standby.health();
  t.comment(`the new leader bound ${h?.scheduled} pods (${h?.bindFailures} bindings refused as already made, ${h?.bindUnknown} of unknown outcome)`);
});
