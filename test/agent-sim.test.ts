// The simulated runtime: hollow nodes in one agent process, with real Node
// objects, Leases and pod status transitions (Pending → Running and Ready,
// or Failed at the failure rate), deletions confirmed; one shared informer.
import t from 'tap';
import { request } from 'undici';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { NodeIpamController } from '../agents/controllers/nodeipam/controller.ts';
import type { Lease, Node, Pod } from '../agents/informer/types.ts';
import { kindByName } from '../api/kinds/index.ts';
import { AgentProcess } from '../harness/agent.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const PODS = kindByName('pods')!;
const octet = 30 + Math.floor(Math.random() * 200);
const N = 20;

t.test('hollow nodes', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const ipam = await runControllers(c, nats.url, [(ctx) => new NodeIpamController(ctx)], { clusterCIDR: `127.${100 + (octet % 100)}.0.0/16` });
  t.teardown(() => ipam.stop());
  const prefix = `hollow-${octet}-`;
  const sim = await AgentProcess.start({
    servers: cluster.urls, name: `sim-${octet}`, address: `127.0.${octet}.1`,
    args: ['--runtime', 'sim', '--count', String(N), '--name-prefix', prefix, '--start-latency', '100ms'],
  });
  t.teardown(() => sim.stop());
  const failing = await AgentProcess.start({
    servers: cluster.urls, name: `simfail-${octet}`, address: `127.0.${octet}.101`,
    args: ['--runtime', 'sim', '--count', '1', '--name-prefix', `failing-${octet}-`, '--failure-rate', '1', '--start-latency', '100ms'],
  });
  t.teardown(() => failing.stop());

  const nodes = (await c.list<Node>(resourcePath(kindByName('nodes')!))).items.filter((n) => n.metadata.name.startsWith(prefix));
  t.equal(nodes.length, N, `${N} Node objects`);
  t.ok(nodes.every((n) => n.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True'), 'all Ready');
  t.same(new Set(nodes.map((n) => n.status?.addresses?.[0]?.address)).size, N, 'each with its own address');
  await waitFor('every Lease', async () => {
    const leases = (await c.list<Lease>(resourcePath(kindByName('leases')!, 'kube-node-lease'))).items.filter((l) => l.metadata.name.startsWith(prefix));
    return leases.length === N;
  }, 20_000);
  t.pass('a Lease per hollow node');

  const path = resourcePath(PODS, 'default');
  await Promise.all(Array.from({ length: 2 * N }, (_, i) =>
    c.create(path, { apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}` }, spec: { nodeName: `${prefix}${i % N}`, containers: [{ name: 'c', image: 'nginx' }] } })));
  await c.create(path, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'doomed' }, spec: { nodeName: `failing-${octet}-0`, containers: [{ name: 'c', image: 'nginx' }] } });
  const pods = await waitFor('every pod Running and Ready', async () => {
    const l = (await c.list<Pod>(path)).items.filter((p) => p.metadata.name.startsWith('p'));
    return l.length === 2 * N && l.every((p) => p.status?.phase === 'Running' && p.status.conditions?.find((x) => x.type === 'Ready')?.status === 'True') ? l : undefined;
  }, 30_000, 200);
  t.equal(new Set(pods.map((p) => p.status?.podIP)).size, 2 * N, 'each pod has its own IP');
  t.ok(pods.every((p) => (p.status?.containerStatuses?.[0] as Record<string, unknown> | undefined)?.ready === true));
  const doomed = await waitFor('the failing node fails its pod', async () => {
    const p = await c.get<Pod>(`${path}/doomed`);
    return p.status?.phase === 'Failed' ? p : undefined;
  }, 20_000);
  t.match(doomed.status?.containerStatuses?.[0], { state: { terminated: { exitCode: 1, reason: 'Error' } } });

  const health = (await (await request(`${sim.endpoint}/healthz`)).body.json()) as Record<string, number>;
  t.match(health, { nodes: N, informers: 1, pods: 2 * N }, 'one informer holds the pods of all its nodes, and only those');

  await Promise.all(Array.from({ length: 2 * N }, (_, i) => c.delete(`${path}/p${i}`)));
  await waitFor('deletions confirmed by the hollow nodes', async () => {
    const l = (await c.list<Pod>(path)).items.filter((p) => p.metadata.name.startsWith('p'));
    return l.length === 0;
  }, 30_000, 200);
  t.pass('every deleted pod was removed');
  await c.delete(`${path}/doomed`).catch((e) => { if (!(e instanceof ApiClientError)) throw e; });
});
