// Cluster DNS: the record rules of Kubernetes' DNS specification as table
// tests; the server answering a real resolver (c-ares, node:dns) over UDP
// and TCP, forwarding other names, refusing garbage; and `flotilla dns` as a
// process following Services and EndpointSlices of a real cluster.
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { type ClusterView, type ServiceView, type SliceView, lookup } from '../agents/dns/records.ts';
import { DnsServer } from '../agents/dns/server.ts';
import { startDns } from '../harness/dns.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';

const ZONE = 'cluster.local';

function staticView(services: ServiceView[], slices: SliceView[], namespaces = ['default', 'db']): ClusterView {
  return {
    service: (ns, name) => services.find((s) => s.metadata.namespace === ns && s.metadata.name === name),
    slices: (ns, svc) => slices.filter((s) => s.metadata.namespace === ns && s.metadata.labels?.['kubernetes.io/service-name'] === svc),
    namespaceExists: (ns) => namespaces.includes(ns),
  };
}

const services: ServiceView[] = [
  { metadata: { name: 'web', namespace: 'default' }, spec: { type: 'ClusterIP', clusterIP: '127.1.0.20', ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { port: 81 }] } },
  { metadata: { name: 'pg', namespace: 'db' }, spec: { type: 'ClusterIP', clusterIP: 'None', ports: [{ name: 'sql', port: 5432, protocol: 'TCP' }] } },
  { metadata: { name: 'ext', namespace: 'default' }, spec: { type: 'ExternalName', externalName: 'example.com.' } },
  { metadata: { name: 'pending', namespace: 'default' }, spec: { type: 'ClusterIP', clusterIP: 'None', publishNotReadyAddresses: true } },
];
const slices: SliceView[] = [
  {
    metadata: { name: 'pg-abc', namespace: 'db', labels: { 'kubernetes.io/service-name': 'pg' } }, addressType: 'IPv4',
    ports: [{ name: 'sql', port: 5432, protocol: 'TCP' }],
    endpoints: [
      { addresses: ['127.64.0.5'], hostname: 'pg-0', conditions: { ready: true } },
      { addresses: ['127.64.1.7'], hostname: 'pg-1', conditions: { ready: true } },
      { addresses: ['127.64.1.9'], hostname: 'pg-2', conditions: { ready: false } },
      { addresses: ['127.64.2.3'], conditions: {} },
    ],
  },
  {
    metadata: { name: 'pending-x', namespace: 'default', labels: { 'kubernetes.io/service-name': 'pending' } }, addressType: 'IPv4', ports: [],
    endpoints: [{ addresses: ['127.64.3.3'], conditions: { ready: false } }],
  },
];

t.test('records, as the DNS specification defines them', async (t) => {
  const view = staticView(services, slices);
  const q = (name: string, type = 'A') => lookup(view, ZONE, name, type);
  const cases: [string, string, string, unknown][] = [
    ['web.default.svc.cluster.local', 'A', 'NOERROR', ['127.1.0.20']],
    ['WEB.Default.svc.cluster.local.', 'A', 'NOERROR', ['127.1.0.20']],
    ['web.default.svc.cluster.local', 'AAAA', 'NOERROR', []],
    ['nope.default.svc.cluster.local', 'A', 'NXDOMAIN', []],
    ['web.other.svc.cluster.local', 'A', 'NXDOMAIN', []],
    ['default.svc.cluster.local', 'A', 'NOERROR', []],
    ['other.svc.cluster.local', 'A', 'NXDOMAIN', []],
    ['svc.cluster.local', 'A', 'NOERROR', []],
    ['pg.db.svc.cluster.local', 'A', 'NOERROR', ['127.64.0.5', '127.64.1.7', '127.64.2.3']],
    ['pg-0.pg.db.svc.cluster.local', 'A', 'NOERROR', ['127.64.0.5']],
    ['pg-2.pg.db.svc.cluster.local', 'A', 'NXDOMAIN', []],
    ['127-64-2-3.pg.db.svc.cluster.local', 'A', 'NOERROR', ['127.64.2.3']],
    ['pending.default.svc.cluster.local', 'A', 'NOERROR', ['127.64.3.3']],
    ['pg-0.web.default.svc.cluster.local', 'A', 'NXDOMAIN', []],
    ['127-64-0-9.default.pod.cluster.local', 'A', 'NOERROR', ['127.64.0.9']],
    ['300-1-1-1.default.pod.cluster.local', 'A', 'NXDOMAIN', []],
    ['dns-version.cluster.local', 'TXT', 'NOERROR', ['1.1.0']],
    ['x.y.z.w.v.svc.cluster.local', 'A', 'NXDOMAIN', []],
  ];
  for (const [name, type, rcode, data] of cases) {
    const r = q(name, type);
    t.equal(r.rcode, rcode, `${name} ${type}: ${rcode}`);
    t.same(r.answers.map((a) => a.data), data, `${name} ${type}: ${JSON.stringify(data)}`);
  }
  const ext = q('ext.default.svc.cluster.local');
  t.same(ext.answers, [{ type: 'CNAME', name: 'ext.default.svc.cluster.local', ttl: 5, data: 'example.com' }], 'ExternalName: a CNAME');
  const srv = q('_http._tcp.web.default.svc.cluster.local', 'SRV');
  t.same(srv.answers.map((a) => a.data), [{ priority: 0, weight: 100, port: 80, target: 'web.default.svc.cluster.local' }], 'SRV of a named port');
  t.same(srv.additional.map((a) => a.data), ['127.1.0.20'], 'with the target\'s address');
  t.equal(q('_81._tcp.web.default.svc.cluster.local', 'SRV').rcode, 'NXDOMAIN', 'unnamed ports have no SRV');
  t.equal(q('_http._udp.web.default.svc.cluster.local', 'SRV').rcode, 'NXDOMAIN', 'the protocol must match');
  const hsrv = q('_sql._tcp.pg.db.svc.cluster.local', 'SRV');
  t.same(hsrv.answers.map((a) => (a.data as { target: string }).target), ['pg-0.pg.db.svc.cluster.local', 'pg-1.pg.db.svc.cluster.local', '127-64-2-3.pg.db.svc.cluster.local'], 'headless SRV: one per ready endpoint, by hostname');
  t.same(hsrv.additional.map((a) => a.data), ['127.64.0.5', '127.64.1.7', '127.64.2.3']);
});

/** A query as raw bytes (the resolver hides FORMERR and truncation). */
function rawQuery(port: number, msg: Buffer): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => { s.close(); resolve(undefined); }, 1000);
    s.on('message', (b) => { clearTimeout(timer); s.close(); resolve(b); });
    s.send(msg, port, '127.0.0.1');
  });
}

t.test('the server answers a real resolver, forwards, and refuses garbage', async (t) => {
  // An upstream on loopback that knows one outside name.
  const upstream = new DnsServer({
    zone: 'example.test',
    view: staticView([{ metadata: { name: 'www', namespace: 'example' }, spec: { clusterIP: '127.9.9.9' } }], [], ['example']),
  });
  const upPort = await upstream.listen('127.0.0.1', 0);
  t.teardown(() => upstream.close());
  const counted: string[] = [];
  const big: ServiceView[] = [{ metadata: { name: 'big', namespace: 'default' }, spec: { clusterIP: 'None' } }];
  const bigSlices: SliceView[] = [{
    metadata: { name: 'big-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'big' } }, addressType: 'IPv4',
    endpoints: Array.from({ length: 60 }, (_, i) => ({ addresses: [`127.64.9.${i + 1}`], conditions: { ready: true } })),
  }];
  const server = new DnsServer({
    view: staticView([...services, ...big], [...slices, ...bigSlices]), upstreams: [`127.0.0.1:${upPort}`],
    onAnswer: (source, rcode) => counted.push(`${source}:${rcode}`),
  });
  const port = await server.listen('127.0.0.1', 0);
  t.teardown(() => server.close());
  const r = new Resolver({ timeout: 1000, tries: 1 });
  r.setServers([`127.0.0.1:${port}`]);

  t.same(await r.resolve4('web.default.svc.cluster.local'), ['127.1.0.20'], 'A');
  t.same((await r.resolve4('pg.db.svc.cluster.local')).sort(), ['127.64.0.5', '127.64.1.7', '127.64.2.3'], 'headless A');
  t.same(await r.resolveSrv('_sql._tcp.pg.db.svc.cluster.local').then((x) => x.map((s) => s.name).sort()), ['127-64-2-3.pg.db.svc.cluster.local', 'pg-0.pg.db.svc.cluster.local', 'pg-1.pg.db.svc.cluster.local'], 'SRV');
  t.same(await r.resolveCname('ext.default.svc.cluster.local'), ['example.com'], 'CNAME');
  t.same(await r.resolveTxt('dns-version.cluster.local'), [['1.1.0']], 'TXT');
  await t.rejects(r.resolve4('missing.default.svc.cluster.local'), { code: 'ENOTFOUND' }, 'NXDOMAIN');
  await t.rejects(r.resolve6('web.default.svc.cluster.local'), { code: 'ENODATA' }, 'a name without records of the type');
  t.same(await r.resolve4('www.example.svc.example.test'), ['127.9.9.9'], 'other names are forwarded upstream');
  t.same((await r.resolve4('big.default.svc.cluster.local')).length, 60, 'an answer too large for UDP is truncated and the resolver retries over TCP');

  // Raw bytes: garbage, responses and other opcodes.
  const garbage = await rawQuery(port, Buffer.from('0123456789abcdefghij'));
  t.ok(garbage, 'a message that does not decode gets an answer');
  t.equal(garbage!.readUInt16BE(0), 0x3031, 'with its id');
  t.equal(garbage!.readUInt16BE(2) & 0xf, 1, 'FORMERR');
  t.equal(await rawQuery(port, Buffer.from([1, 2, 3])), undefined, 'shorter than a header: silence');
  const response = dnsPacket.encode({ type: 'response', id: 7, questions: [{ type: 'A', name: 'web.default.svc.cluster.local' }], answers: [] });
  t.equal(await rawQuery(port, response), undefined, 'a response is never answered');
  const tc = await rawQuery(port, dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'big.default.svc.cluster.local' }] }));
  t.ok(tc && (dnsPacket.decode(tc).flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE, 'over UDP the large answer says truncated');

  // TCP, framed.
  const viaTcp = await new Promise<Buffer>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const q = dnsPacket.streamEncode({ type: 'query', id: 11, questions: [{ type: 'A', name: 'web.default.svc.cluster.local' }] });
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        s.end();
        resolve(buf);
      }
    });
    s.on('error', reject);
    s.write(q);
  });
  const decoded = dnsPacket.streamDecode(viaTcp);
  t.same(decoded.answers?.map((a) => (a as { data: string }).data), ['127.1.0.20'], 'TCP');
  t.ok((decoded.flags ?? 0) & dnsPacket.AUTHORITATIVE_ANSWER, 'cluster answers are authoritative');

  // The upstream goes away: SERVFAIL, not a hang.
  await upstream.close();
  await t.rejects(r.resolve4('www.example.svc.example.test'), { code: 'ESERVFAIL' }, 'an upstream that does not answer: SERVFAIL');
  t.ok(counted.includes('cluster:NOERROR') && counted.includes('forward:NOERROR') && counted.includes('invalid:FORMERR'), 'answers are counted by source and rcode');
});

t.test('flotilla dns follows the cluster', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const dns = await startDns({ servers: cluster.urls, nats: nats.url });
  t.teardown(() => dns.stop());
  const r = new Resolver({ timeout: 1000, tries: 1 });
  r.setServers([dns.address]);

  const SVC = resolveKind('services')!;
  const created = await client.create(resourcePath(SVC, 'default'), {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'api' }, spec: { selector: { app: 'api' }, ports: [{ name: 'http', port: 8080 }] },
  }) as { spec: { clusterIP: string } };
  t.match(created.spec.clusterIP, /^127\.1\./, 'the Service got a cluster IP');
  const got = await waitFor('the name to resolve', () => r.resolve4('api.default.svc.cluster.local').catch(() => undefined), 15_000, 100);
  t.same(got, [created.spec.clusterIP], 'A record of the new Service');
  const srv = await r.resolveSrv('_http._tcp.api.default.svc.cluster.local');
  t.same(srv.map((s) => [s.name, s.port]), [['api.default.svc.cluster.local', 8080]], 'SRV');

  await client.create(resourcePath(SVC, 'default'), {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'db' }, spec: { clusterIP: 'None', selector: { app: 'db' }, ports: [{ port: 5432 }] },
  });
  await client.create(resourcePath(resolveKind('endpointslices')!, 'default'), {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'db-1', labels: { 'kubernetes.io/service-name': 'db' } },
    addressType: 'IPv4', ports: [{ port: 5432, protocol: 'TCP' }],
    endpoints: [{ addresses: ['127.64.0.2'], hostname: 'db-0', conditions: { ready: true } }],
  });
  t.same(await waitFor('the headless pod name', () => r.resolve4('db-0.db.default.svc.cluster.local').catch(() => undefined), 15_000, 100), ['127.64.0.2'], 'per-pod name of a headless Service');

  await client.delete(resourcePath(SVC, 'default', 'api'));
  await waitFor('the deleted Service to go', () => r.resolve4('api.default.svc.cluster.local').then(() => false, (e: { code?: string }) => e.code === 'ENOTFOUND'), 15_000, 100);
  t.pass('a deleted Service\'s name is gone (NXDOMAIN)');
  t.match(await dns.metrics(), /flotilla_dns_requests_total\{source="cluster",rcode="NOERROR"\} \d+/, 'metrics');
});
