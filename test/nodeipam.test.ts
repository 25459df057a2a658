// Node IPAM: the CIDR set's facts, and the controller against a server:
// unique pod CIDRs across many nodes, kept across a controller restart,
// released on delete, CIDRNotAvailable when full, podCIDR immutable.
import t from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { newControllerContext, stopControllerContext } from '../agents/controllers/context.ts';
import { parseCidr } from '../api/ipv4.ts';
import { CidrSet } from '../agents/controllers/nodeipam/cidr-set.ts';
import { NodeIpamController } from '../agents/controllers/nodeipam/controller.ts';
import type { KubeObject, Node } from '../agents/informer/types.ts';
import { kindByName } from '../api/kinds/index.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';

const NODES = kindByName('nodes')!;
const EVENTS = kindByName('events')!;

t.test('CidrSet', async (t) => {
  const s = new CidrSet('127.64.0.0/22', 24);
  t.equal(s.size, 4);
  t.equal(s.allocateNext(), '127.64.0.0/24');
  t.ok(s.occupy('127.64.2.0/24'), 'occupy an existing one');
  t.notOk(s.occupy('127.64.2.0/24'), 'occupied twice: false');
  t.equal(s.allocateNext(), '127.64.1.0/24');
  t.equal(s.allocateNext(), '127.64.3.0/24', 'skips the occupied one');
  t.throws(() => s.allocateNext(), /no free \/24 left: the cluster CIDR 127.64.0.0\/22 is fully allocated/);
  s.release('127.64.1.0/24');
  t.equal(s.allocateNext(), '127.64.1.0/24', 'a released CIDR is reused');
  t.throws(() => s.occupy('127.65.0.0/24'), /not inside the cluster CIDR/);
  t.throws(() => s.occupy('127.64.0.0/25'), /not a \/24/);
  t.throws(() => new CidrSet('127.64.0.0/12', 8), /between/);
  t.throws(() => new CidrSet('127.64.0.0/12', 30), /at most 16 bits/);
  t.throws(() => new CidrSet('127.64.0/12', 24), /invalid IPv4 CIDR/);
  t.same(parseCidr('127.64.1.7/12'), parseCidr('127.64.0.0/12'), 'host bits are masked');
  const big = new CidrSet('127.64.0.0/12', 24);
  t.equal(big.size, 4096);
  const seen = new Set(Array.from({ length: 4096 }, () => big.allocateNext()));
  t.equal(seen.size, 4096, 'every subnet once');
});

t.test('node IPAM controller', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const createNode = (name: string, spec: Record<string, unknown> = {}) => c.create(resourcePath(NODES), { apiVersion: 'v1', kind: 'Node', metadata: { name }, spec });
  const allNodes = async () => (await c.list<Node>(resourcePath(NODES))).items;
  const cidrOf = (n: Node) => (n.spec as { podCIDR?: string }).podCIDR;
  const start = (config: Record<string, unknown> = {}) => {
    const ctx = newControllerContext({ client: c, nats: nats.url, config });
    const abort = new AbortController();
    const ctl = new NodeIpamController(ctx);
    const run = ctl.run(abort.signal);
    const stop = async () => {
      abort.abort();
      await run;
      await stopControllerContext(ctx);
    };
    t.teardown(stop);
    return stop;
  };
  const allAllocated = (n: number) => waitFor(`${n} nodes with pod CIDRs`, async () => {
    const ns = await allNodes();
    return ns.length === n && ns.every(cidrOf) ? ns : undefined;
  }, 30_000, 100);
  const unique = (ns: Node[]) => new Set(ns.map(cidrOf)).size === ns.length;

  // A node that already has the first CIDR before the controller starts.
  await createNode('pre', { podCIDR: '127.64.0.0/24', podCIDRs: ['127.64.0.0/24'] });
  for (let i = 0; i < 40; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => createNode(`n-${i + j}`)));
  let stop = start();
  let ns = await allAllocated(41);
  t.ok(unique(ns), '41 nodes, 41 different CIDRs');
  t.ok(ns.every((n) => /^127\.(6[4-9]|7\d)\.\d+\.0\/24$/.test(cidrOf(n)!)), 'all /24s inside 127.64.0.0/12');
  t.ok(ns.every((n) => JSON.stringify((n.spec as { podCIDRs?: string[] }).podCIDRs) === JSON.stringify([cidrOf(n)])), 'podCIDRs = [podCIDR]');
  t.equal(cidrOf(ns.find((n) => n.metadata.name === 'pre')!), '127.64.0.0/24', 'an existing CIDR is kept and not handed out again');

  // Restart: new nodes while no controller runs, then a fresh controller.
  await stop();
  await Promise.all(Array.from({ length: 10 }, (_, j) => createNode(`m-${j}`)));
  stop = start();
  ns = await allAllocated(51);
  t.ok(unique(ns), 'after a restart: 51 nodes, 51 different CIDRs');

  const err = await c.patch(resourcePath(NODES, '', 'n-0'), { spec: { podCIDR: '127.79.0.0/24', podCIDRs: ['127.79.0.0/24'] } }, 'application/merge-patch+json').catch((e) => e);
  t.ok(err instanceof ApiClientError && err.code === 422 && /may not change podCIDR/.test(err.message), 'the server refuses to change a pod CIDR');
  const err2 = await c.patch(resourcePath(NODES, '', 'n-0'), { spec: { podCIDRs: ['127.79.0.0/24'] } }, 'application/merge-patch+json').catch((e) => e);
  t.ok(err2 instanceof ApiClientError && err2.code === 422, 'nor podCIDRs alone');
  await stop();

  // A tiny range (4 subnets, 127.64.0.0/22) that existing nodes already fill: full, then a delete frees one.
  stop = start({ clusterCIDR: '127.64.0.0/22', nodeCIDRMaskSize: 24 });
  await createNode('late');
  await waitFor('CIDRNotAvailable event', async () => (await c.list<KubeObject & { reason?: string; message?: string }>(resourcePath(EVENTS, 'default'), { fieldSelector: 'involvedObject.name=late' })).items
    .some((e) => e.reason === 'CIDRNotAvailable' && e.message === 'Node late status is now: CIDRNotAvailable'), 10_000, 100);
  t.pass('a full range: CIDRNotAvailable');
  const holder = (await allNodes()).find((n) => cidrOf(n) === '127.64.2.0/24')!;
  await c.delete(resourcePath(NODES, '', holder.metadata.name));
  const late = await waitFor('late gets the released CIDR', async () => {
    const n = await c.get<Node>(resourcePath(NODES, '', 'late'));
    return cidrOf(n) ? n : undefined;
  }, 15_000, 100);
  t.equal(cidrOf(late), '127.64.2.0/24', 'the deleted node\'s CIDR is released and reused');
  t.throws(() => new NodeIpamController(newControllerContext({ client: c, nats: nats.url, config: { clusterCIDR: '10.0.0.0/16' } })), /must lie inside 127.0.0.0\/8/);
});
