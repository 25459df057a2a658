// Pods resolve Service names through the cluster DNS: the node agent writes
// each pod's /etc/resolv.conf (cluster DNS, Kubernetes' search path,
// ndots:5) and /etc/hosts and bind-mounts them in the pod's mount
// namespace, so an ordinary program (glibc's getent) resolves "web" and
// "web.default". Table tests of the files for every dnsPolicy.
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { NodeIpamController } from '../agents/controllers/nodeipam/controller.ts';
import { RootCAPublisher } from '../agents/controllers/serviceaccount/rootca.ts';
import { hostsFile, resolvConf } from '../agents/agent/runtime/dns-config.ts';
import { AgentProcess } from '../harness/agent.ts';
import { ConsumerProcess } from '../harness/consumer.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const DNS = { server: '127.0.0.10', domain: 'cluster.local' };
const pod = (spec: Record<string, unknown> = {}) => ({ metadata: { name: 'p', namespace: 'shop' }, spec });

t.test('resolv.conf and hosts for each dnsPolicy', async (t) => {
  t.equal(resolvConf(pod(), DNS), 'nameserver 127.0.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n', 'ClusterFirst (the default)');
  t.equal(resolvConf(pod({ dnsPolicy: 'Default' }), DNS), undefined, 'Default: the node\'s own');
  t.equal(resolvConf(pod({ hostNetwork: true }), DNS), undefined, 'ClusterFirst with hostNetwork behaves as Default');
  t.match(resolvConf(pod({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' }), DNS), /^nameserver 127\.0\.0\.10\n/);
  t.equal(resolvConf(pod({ dnsPolicy: 'None', dnsConfig: { nameservers: ['127.0.0.99'], searches: ['x.test'], options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }] } }), DNS),
    'nameserver 127.0.0.99\nsearch x.test\noptions ndots:2 edns0\n', 'None: dnsConfig only');
  t.equal(resolvConf(pod({ dnsConfig: { searches: ['extra.test'], options: [{ name: 'ndots', value: '1' }] } }), DNS),
    'nameserver 127.0.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local extra.test\noptions ndots:1\n', 'dnsConfig merged into ClusterFirst');
  t.equal(resolvConf(pod(), undefined), undefined, 'no cluster DNS configured: the node\'s own');
  const hosts = hostsFile(pod({ hostname: 'db-0', subdomain: 'db', hostAliases: [{ ip: '127.0.0.5', hostnames: ['foo.local', 'bar.local'] }] }), '127.64.0.7', DNS);
  t.match(hosts, /127\.64\.0\.7\tdb-0\.db\.shop\.svc\.cluster\.local\tdb-0\n/, 'the pod\'s FQDN and hostname at its IP');
  t.match(hosts, /127\.0\.0\.5\tfoo\.local\tbar\.local\n/, 'hostAliases');
});

t.test('a pod resolves Service names through the cluster DNS', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const api = new ApiClient(cluster.urls);
  t.teardown(() => api.close());
  const octet = 30 + Math.floor(Math.random() * 200);
  const ipam = await runControllers(api, nats.url, [(ctx) => new NodeIpamController(ctx), (ctx) => new RootCAPublisher(ctx)], { clusterCIDR: `127.${100 + (octet % 100)}.0.0/16` });
  t.teardown(() => ipam.stop());
  // Port 53 (resolv.conf names no port) on an address of this test's own.
  const dnsAddress = `127.0.53.${octet}`;
  const dns = await ConsumerProcess.start({ command: 'dns', servers: cluster.urls, nats: nats.url, args: () => ['--listen', `${dnsAddress}:53`, '--upstream', 'none'] });
  t.teardown(() => dns.stop());
  const agent = await AgentProcess.start({ servers: cluster.urls, name: 'dns-node', address: `127.0.54.${octet}`, nats: nats.url, args: ['--cluster-dns', dnsAddress, '--service-proxy', 'false'] });
  t.teardown(() => agent.stop());

  const svc = await api.create<{ spec: { clusterIP: string } }>(resourcePath(resolveKind('services')!, 'default'), {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] },
  });
  await api.create(resourcePath(resolveKind('pods')!, 'default'), {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'asker' },
    spec: {
      nodeName: 'dns-node', restartPolicy: 'Never', hostAliases: [{ ip: '127.0.0.77', hostnames: ['alias.local'] }],
      containers: [{ name: 'ask', image: 'busybox', command: ['/bin/sh', '-c', 'cat /etc/resolv.conf; getent hosts web; getent hosts web.default; getent hosts alias.local; getent hosts asker'] }],
    },
  });
  const phase = await waitFor('the pod to finish', async () => {
    const p = await api.get<{ status?: { phase?: string } }>(resourcePath(resolveKind('pods')!, 'default', 'asker'));
    return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p.status.phase : undefined;
  }, 60_000, 200);
  const logs = (await api.raw('GET', `${resourcePath(resolveKind('pods')!, 'default', 'asker')}/log`)).text;
  t.equal(phase, 'Succeeded', `the pod ran (${logs})`);
  t.match(logs, new RegExp(`nameserver ${dnsAddress.replace(/\./g, '\\.')}\\nsearch default\\.svc\\.cluster\\.local svc\\.cluster\\.local cluster\\.local\\noptions ndots:5`), 'its resolv.conf names the cluster DNS');
  const ip = svc.spec.clusterIP.replace(/\./g, '\\.');
  t.match(logs, new RegExp(`${ip}\\s+web\\.default\\.svc\\.cluster\\.local[\\s\\S]*${ip}\\s+web\\.default\\.svc\\.cluster\\.local`), '"web" and "web.default" resolve to the Service\'s cluster IP');
  t.match(logs, /127\.0\.0\.77\s+alias\.local/, 'hostAliases in /etc/hosts');
  t.match(logs, /127\.\d+\.\d+\.\d+\s+asker/, 'the pod\'s own name in /etc/hosts');
});
