// The node's service proxy: what it listens on (table tests), and two
// `flotilla proxy` processes on one machine: NodePort on each node address,
// the cluster IP served by exactly one of them and taken over when it dies,
// connections balanced over the ready endpoints with a refusing one skipped,
// endpoint changes followed, LoadBalancer addresses written.
import net from 'node:net';
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { loadBalancerAddresses } from '../agents/proxy/cluster-ips.ts';
import { endpointsFor, listenersFor } from '../agents/proxy/table.ts';
import { ConsumerProcess } from '../harness/consumer.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { freePort, waitFor } from '../harness/procs.ts';

t.test('listeners and endpoints', async (t) => {
  const services = [
    { metadata: { name: 'web', namespace: 'default' }, spec: { type: 'NodePort', clusterIP: '127.1.0.20', ports: [{ name: 'http', port: 80, nodePort: 30080 }, { name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 }] } },
    { metadata: { name: 'lb', namespace: 'default' }, spec: { type: 'LoadBalancer', clusterIP: '127.1.0.21', ports: [{ port: 8080, nodePort: 30081 }] } },
    { metadata: { name: 'headless', namespace: 'default' }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } },
    { metadata: { name: 'ext', namespace: 'default' }, spec: { type: 'ExternalName', ports: [{ port: 80 }] } },
  ];
  const keys = (serve: boolean) => listenersFor(services, { address: '127.0.0.11', serveClusterIPs: serve }).map((l) => `${l.kind} ${l.key} ${l.backend}`);
  t.same(keys(true), [
    'clusterIP 127.1.0.20:80 default/web:http', 'nodePort 127.0.0.11:30080 default/web:http',
    'clusterIP 127.1.0.21:8080 default/lb:', 'nodePort 127.0.0.11:30081 default/lb:', 'loadBalancer 127.0.0.11:8080 default/lb:',
  ], 'TCP ports only; headless and ExternalName have no listener');
  t.same(keys(false).filter((k) => k.startsWith('clusterIP')), [], 'cluster IPs only where this proxy serves them');
  const eps = endpointsFor(services, (_ns, svc) => (svc === 'web' ? [
    { addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: [
      { addresses: ['127.64.0.2'], conditions: { ready: true } }, { addresses: ['127.64.0.3'], conditions: { ready: false } }, { addresses: ['127.64.0.4'] },
    ] },
    { addressType: 'IPv6', ports: [{ name: 'http', port: 8080 }], endpoints: [{ addresses: ['::1'] }] },
    { addressType: 'IPv4', ports: [{ name: 'other', port: 9090 }], endpoints: [{ addresses: ['127.64.0.9'] }] },
  ] : []));
  t.same(eps.get('default/web:http'), [{ ip: '127.64.0.2', port: 8080 }, { ip: '127.64.0.4', port: 8080 }], 'ready (or unset) IPv4 endpoints of the same-named port');
  t.same(eps.get('default/lb:'), []);
  t.same(loadBalancerAddresses([
    { status: { addresses: [{ type: 'InternalIP', address: '127.0.0.12' }], conditions: [{ type: 'Ready', status: 'True' }] } },
    { status: { addresses: [{ type: 'InternalIP', address: '127.0.0.11' }], conditions: [{ type: 'Ready', status: 'True' }] } },
    { status: { addresses: [{ type: 'InternalIP', address: '127.0.0.13' }], conditions: [{ type: 'Ready', status: 'Unknown' }] } },
  ]), ['127.0.0.11', '127.0.0.12'], 'LoadBalancer addresses: the Ready nodes');
});

/** A TCP server that answers each connection with its name and closes. */
async function namedServer(name: string): Promise<{ port: number; close(): void }> {
  const s = net.createServer((c) => c.end(`${name}\n`));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { port: (s.address() as net.AddressInfo).port, close: () => s.close() };
}

function ask(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, host);
    let out = '';
    c.on('data', (d) => (out += d));
    c.on('end', () => resolve(out.trim()));
    c.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
    c.on('close', () => resolve(out.trim() || 'closed'));
  });
}

t.test('two flotilla proxy processes on one machine', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const api = new ApiClient(cluster.urls);
  t.teardown(() => api.close());
  const SVC = resolveKind('services')!;
  const SLICES = resolveKind('endpointslices')!;
  const NODES = resolveKind('nodes')!;

  const [a, b] = [await namedServer('a'), await namedServer('b')];
  t.teardown(() => { a.close(); b.close(); });
  const dead = await freePort();
  const svc = await api.create<{ spec: { clusterIP: string; ports: { nodePort: number }[] } }>(resourcePath(SVC, 'default'), {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo' }, spec: { type: 'NodePort', ports: [{ port: 7000 }] },
  });
  const lb = await api.create<{ spec: { ports: { port: number }[] } }>(resourcePath(SVC, 'default'), {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo-lb' }, spec: { type: 'LoadBalancer', ports: [{ port: await freePort() }] },
  });
  const slice = (name: string, svcName: string, ports: number[]) => ports.map((port, i) => ({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${name}-${i}`, labels: { 'kubernetes.io/service-name': svcName } },
    addressType: 'IPv4', ports: [{ name: '', port, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
  }));
  for (const s of [...slice('echo', 'echo', [a.port, b.port, dead]), ...slice('echo-lb', 'echo-lb', [a.port])]) await api.create(resourcePath(SLICES, 'default'), s);
  for (const [name, ip] of [['n1', '127.0.0.21'], ['n2', '127.0.0.22']]) {
    await api.create(resourcePath(NODES), { apiVersion: 'v1', kind: 'Node', metadata: { name } });
    await api.patch(resourcePath(NODES, '', name, 'status'), { status: { addresses: [{ type: 'InternalIP', address: ip }], conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] } }, 'application/merge-patch+json');
  }

  const lease = `flotilla-proxy-test-${process.pid}`;
  const start = (address: string) => ConsumerProcess.start({
    command: 'proxy', servers: cluster.urls, nats: nats.url,
    args: () => ['--address', address, '--node', address, '--cluster-ip-lease', lease, '--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '500ms'],
  });
  const p1 = await start('127.0.0.21');
  t.teardown(() => p1.stop('SIGKILL'));
  const p2 = await start('127.0.0.22');
  t.teardown(() => p2.stop('SIGKILL'));

  const nodePort = svc.spec.ports[0]!.nodePort;
  const answers = new Set<string>();
  const answered = (r: string) => r === 'a' || r === 'b';
  await waitFor('the node ports to answer', async () => answered(await ask('127.0.0.21', nodePort)) && answered(await ask('127.0.0.22', nodePort)), 15_000, 100);
  for (let i = 0; i < 9; i++) {
    for (const host of ['127.0.0.21', '127.0.0.22']) {
      const r = await ask(host, nodePort);
      t.ok(r === 'a' || r === 'b', `${host}:${nodePort} → ${r}`);
      answers.add(r);
    }
  }
  t.same([...answers].sort(), ['a', 'b'], 'balanced over both endpoints; the refusing one is skipped');

  // Exactly one serves the cluster IP.
  const holder = await waitFor('one proxy to serve the cluster IPs', async () => {
    const [h1, h2] = [await p1.health(), await p2.health()];
    if (h1?.clusterIPs === h2?.clusterIPs) return undefined;
    return h1?.clusterIPs ? p1 : p2;
  }, 15_000, 100);
  const other = holder === p1 ? p2 : p1;
  const cip = svc.spec.clusterIP;
  t.match(await waitFor('the cluster IP to answer', async () => {
    const r = await ask(cip, 7000);
    return r === 'a' || r === 'b' ? r : undefined;
  }, 10_000, 100), /^[ab]$/, `${cip}:7000 answers`);
  t.notOk((await other.health())?.clusterIPs, 'the other proxy does not serve cluster IPs');

  // Endpoint changes are followed: only b remains.
  await api.delete(resourcePath(SLICES, 'default', 'echo-0'));
  await waitFor('a to leave the rotation', async () => {
    for (let i = 0; i < 4; i++) if ((await ask('127.0.0.21', nodePort)) !== 'b') return false;
    return true;
  }, 10_000, 50);
  t.pass('a deleted endpoint leaves the rotation');

  // LoadBalancer: the nodes' addresses in status, its port served on each node address.
  const status = await waitFor('LoadBalancer status', async () => {
    const s = await api.get<{ status?: { loadBalancer?: { ingress?: { ip: string }[] } } }>(resourcePath(SVC, 'default', 'echo-lb'));
    return s.status?.loadBalancer?.ingress?.length === 2 ? s.status.loadBalancer.ingress : undefined;
  }, 15_000, 100);
  t.same(status, [{ ip: '127.0.0.21' }, { ip: '127.0.0.22' }], 'status.loadBalancer lists the Ready nodes');
  t.equal(await waitFor('the load balancer port', async () => ((await ask('127.0.0.22', lb.spec.ports[0]!.port)) === 'a' ? 'a' : undefined), 10_000, 100), 'a', 'the service port on a node address');

  // The holder dies: the other takes the cluster IPs over once the Lease expires.
  await holder.stop('SIGKILL');
  await waitFor('the other proxy to take the cluster IPs over', async () => (await other.health())?.clusterIPs === true, 15_000, 100);
  t.equal(await waitFor('the cluster IP to answer again', async () => ((await ask(cip, 7000)) === 'b' ? 'b' : undefined), 10_000, 100), 'b', 'the cluster IP is served again');
  t.match(await other.metrics(), /flotilla_proxy_connections_total\{result="proxied"\} \d+/, 'connections counted');
});
