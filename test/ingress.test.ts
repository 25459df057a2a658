// Ingress: routing rules as table tests; Ingress and IngressClass
// validation through the API; `flotilla ingress` as a process proxying to
// real HTTP servers by host and path, over plain HTTP and TLS with SNI,
// skipping an endpoint that refuses, and writing status.loadBalancer.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { request } from 'undici';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { type IngressView, buildRoutes, hostRank, match, prefixMatches, tlsSecretFor } from '../agents/ingress/routes.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { startIngress } from '../harness/ingress.ts';
import { NatsServers } from '../harness/nats.ts';
import { freePort, tempDir, waitFor } from '../harness/procs.ts';

const be = (service: string, port: number | string) => ({ service: { name: service, port: typeof port === 'number' ? { number: port } : { name: port } } });
const ing = (name: string, created: string, spec: IngressView['spec']): IngressView => ({ metadata: { name, namespace: 'default', creationTimestamp: created }, spec });

t.test('routing rules', async (t) => {
  t.ok(prefixMatches('/foo', '/foo'));
  t.ok(prefixMatches('/foo', '/foo/'));
  t.ok(prefixMatches('/foo', '/foo/bar'));
  t.notOk(prefixMatches('/foo', '/foobar'), 'element-wise, not string prefix');
  t.ok(prefixMatches('/', '/anything'));
  t.equal(hostRank('*.example.com', 'a.example.com'), 1);
  t.equal(hostRank('*.example.com', 'a.b.example.com'), -1, 'a wildcard covers one label');
  t.equal(hostRank('*.example.com', 'example.com'), -1);
  t.equal(hostRank('', 'x'), 0);

  const table = buildRoutes([
    ing('b', '2026-01-02T00:00:00Z', {
      rules: [
        { host: 'shop.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: be('shop', 80) }, { path: '/api/', pathType: 'Prefix', backend: be('api', 'http') }] } },
        { http: { paths: [{ path: '/', pathType: 'Prefix', backend: be('catchall', 80) }] } },
      ],
    }),
    ing('a', '2026-01-01T00:00:00Z', {
      defaultBackend: be('fallback', 80),
      rules: [
        { host: 'shop.example.com', http: { paths: [{ path: '/api', pathType: 'Exact', backend: be('api-exact', 80) }, { path: '/', pathType: 'Prefix', backend: be('older-shop', 80) }] } },
        { host: '*.example.com', http: { paths: [{ path: '/', pathType: 'ImplementationSpecific', backend: be('wild', 80) }] } },
        { host: 'only.example.com', http: { paths: [{ path: '/x', pathType: 'Exact', backend: be('only-x', 80) }] } },
      ],
    }),
  ]);
  const to = (host: string, path: string) => {
    const m = match(table, host, path);
    return 'route' in m && 'service' in m.route.backend ? m.route.backend.service : '404';
  };
  const cases: [string, string, string][] = [
    ['shop.example.com', '/', 'older-shop'], // same path, same type: the older Ingress
    ['SHOP.example.com:8080', '/cart', 'older-shop'],
    ['shop.example.com', '/api', 'api-exact'], // Exact beats Prefix at the same length
    ['shop.example.com', '/api/v1', 'api'], // the longer prefix
    ['shop.example.com', '/apiv1', 'older-shop'],
    ['blog.example.com', '/', 'wild'],
    ['a.b.example.com', '/', 'catchall'],
    ['other.test', '/x', 'catchall'],
    ['only.example.com', '/x', 'only-x'],
    ['only.example.com', '/y', 'fallback'], // the host owns the request: no fallback to wildcard or catch-all paths
  ];
  for (const [host, path, want] of cases) t.equal(to(host, path), want, `${host}${path} → ${want}`);
  t.same(match(buildRoutes([]), 'x', '/'), { notFound: true }, 'nothing: 404');
  const hostsOnly = buildRoutes([ing('h', '2026-01-01T00:00:00Z', { rules: [{ host: 'a.test', http: { paths: [{ path: '/', pathType: 'Prefix', backend: be('a', 80) }] } }] })]);
  t.same(match(hostsOnly, 'b.test', '/'), { notFound: true }, 'a host no rule names: 404');
  const tlsIngs = [ing('t', '2026-01-01T00:00:00Z', { tls: [{ hosts: ['*.example.com'], secretName: 'wild' }, { hosts: ['a.example.com'], secretName: 'a' }] })];
  t.equal(tlsSecretFor(tlsIngs, 'a.example.com'), 'default/a', 'an exact TLS host beats a wildcard');
  t.equal(tlsSecretFor(tlsIngs, 'b.example.com'), 'default/wild');
  t.equal(tlsSecretFor(tlsIngs, 'b.other.com'), undefined);
});

/** An HTTP server that says who it is. */
async function backend(name: string): Promise<{ port: number; close(): Promise<void> }> {
  const s = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': name });
      res.end(JSON.stringify({ name, url: req.url, host: req.headers.host, xff: req.headers['x-forwarded-for'], proto: req.headers['x-forwarded-proto'], body }));
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { port: (s.address() as AddressInfo).port, close: () => new Promise((r) => { s.closeAllConnections(); s.close(() => r()); }) };
}

t.test('flotilla ingress against a real cluster', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const api = new ApiClient(cluster.urls);
  t.teardown(() => api.close());
  const ING = resolveKind('ingresses')!;
  const SVC = resolveKind('services')!;
  const SLICES = resolveKind('endpointslices')!;

  // Validation through the API.
  const refused = async (body: object, re: RegExp, what: string) => {
    const e = await api.create(resourcePath(ING, 'default'), body).then(() => undefined, (x: unknown) => x);
    t.ok(e instanceof ApiClientError && e.code === 422 && re.test(e.message), `${what}: ${(e as Error)?.message}`);
  };
  const meta = { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'bad' } };
  await refused({ ...meta, spec: {} }, /either `defaultBackend` or `rules` must be specified/, 'no rules nor default backend');
  await refused({ ...meta, spec: { rules: [{ http: { paths: [{ path: 'x', pathType: 'Prefix', backend: be('s', 80) }] } }] } }, /spec\.rules\[0\]\.http\.paths\[0\]\.path: Invalid value: "x": must be an absolute path/, 'relative path');
  await refused({ ...meta, spec: { rules: [{ host: '10.0.0.1', http: { paths: [{ path: '/', pathType: 'Prefix', backend: be('s', 80) }] } }] } }, /must be a DNS name, not an IP address/, 'IP host');
  await refused({ ...meta, spec: { defaultBackend: { service: { name: 's', port: {} } } } }, /port name or number is required/, 'backend without a port');
  await refused({ ...meta, spec: { rules: [{ http: { paths: [{ path: '/', pathType: 'Sometimes', backend: be('s', 80) }] } }] } }, /Unsupported value: "Sometimes"/, 'unknown pathType');

  const [web, api1, api2] = await Promise.all([backend('web'), backend('api-1'), backend('api-2')]);
  t.teardown(() => Promise.all([web.close(), api1.close(), api2.close()]));
  const refusing = await freePort(); // nothing listens there
  const service = async (name: string, port: { name?: string; port: number }, targets: { ip: string; port: number }[]) => {
    await api.create(resourcePath(SVC, 'default'), { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { ports: [{ ...port, targetPort: targets[0]?.port ?? 1 }] } });
    await api.create(resourcePath(SLICES, 'default'), {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${name}-1`, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4', ports: [{ name: port.name ?? '', port: targets[0]?.port ?? 1, protocol: 'TCP' }],
      endpoints: targets.map((x) => ({ addresses: [x.ip], conditions: { ready: true } })),
    });
  };
  // One slice per port: endpoints of different ports go in different slices.
  await service('web', { port: 80 }, [{ ip: '127.0.0.1', port: web.port }]);
  await api.create(resourcePath(SVC, 'default'), { apiVersion: 'v1', kind: 'Service', metadata: { name: 'api' }, spec: { ports: [{ name: 'http', port: 8080 }] } });
  for (const [i, p] of [api1.port, api2.port, refusing].entries()) {
    await api.create(resourcePath(SLICES, 'default'), {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `api-${i}`, labels: { 'kubernetes.io/service-name': 'api' } },
      addressType: 'IPv4', ports: [{ name: 'http', port: p, protocol: 'TCP' }], endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    });
  }
  await service('empty', { port: 80 }, []);

  // A TLS certificate for shop.example.com, as a kubernetes.io/tls Secret.
  const dir = tempDir('ingress-tls');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=shop.example.com',
    '-addext', 'subjectAltName=DNS:shop.example.com', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')], { stdio: 'ignore' });
  const crt = readFileSync(join(dir, 'tls.crt'));
  await api.create(resourcePath(resolveKind('secrets')!, 'default'), {
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 'shop-tls' }, type: 'kubernetes.io/tls',
    data: { 'tls.crt': crt.toString('base64'), 'tls.key': readFileSync(join(dir, 'tls.key')).toString('base64') },
  });

  const proxy = await startIngress({ servers: cluster.urls, nats: nats.url, tls: true });
  t.teardown(() => proxy.stop());
  t.ok(await api.get(resourcePath(resolveKind('ingressclasses')!, '', 'flotilla')), 'the controller created its default IngressClass');
  await api.create(resourcePath(ING, 'default'), {
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'shop' },
    spec: {
      tls: [{ hosts: ['shop.example.com'], secretName: 'shop-tls' }],
      rules: [{ host: 'shop.example.com', http: { paths: [
        { path: '/', pathType: 'Prefix', backend: be('web', 80) },
        { path: '/api', pathType: 'Prefix', backend: be('api', 'http') },
        { path: '/empty', pathType: 'Exact', backend: be('empty', 80) },
      ] } }],
    },
  });
  await api.create(resourcePath(ING, 'default'), {
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'other-class' },
    spec: { ingressClassName: 'someone-else', rules: [{ host: 'other.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: be('web', 80) }] } }] },
  });
  const get = async (path: string, host: string, method = 'GET', body?: string) => {
    const r = await request(`http://${proxy.http}${path}`, { method: method as 'GET', headers: { host }, body });
    const text = await r.body.text();
    return { status: r.statusCode, text, json: r.headers['content-type']?.includes('json') ? JSON.parse(text) : undefined };
  };
  const first = await waitFor('the Ingress to be served', async () => {
    const r = await get('/', 'shop.example.com');
    return r.status === 200 ? r : undefined;
  }, 15_000, 100);
  t.equal(first.json.name, 'web', 'host and prefix route to the web backend');
  t.equal(first.json.host, 'shop.example.com', 'the Host header is passed through');
  t.equal(first.json.proto, 'http');
  t.match(first.json.xff, /127\.0\.0\.1/, 'X-Forwarded-For');
  t.equal((await get('/cart?x=1', 'shop.example.com')).json.url, '/cart?x=1', 'path and query kept');

  // /api: three endpoints, one refusing; every GET succeeds and both live backends answer.
  const seen = new Set<string>();
  for (let i = 0; i < 12; i++) {
    const r = await get('/api/items', 'shop.example.com');
    t.equal(r.status, 200, `GET ${i} through a refusing endpoint's rotation`);
    seen.add(r.json?.name);
  }
  t.same([...seen].sort(), ['api-1', 'api-2'], 'balanced over the ready endpoints, the refusing one skipped');
  const posted = await get('/api/items', 'shop.example.com', 'POST', 'hello');
  t.ok(posted.status === 200 ? posted.json.body === 'hello' : posted.status === 502, `a POST is sent once (to a live backend: body arrives; to the refusing one: 502) (${posted.status})`);

  t.equal((await get('/empty', 'shop.example.com')).status, 503, 'a service without endpoints: 503');
  t.match((await get('/empty', 'shop.example.com')).text, /no endpoints available for service "default\/empty"/);
  t.equal((await get('/', 'nobody.example.com')).status, 404, 'no rule: 404');
  t.equal((await get('/', 'other.example.com')).status, 404, 'an Ingress of another class is not served');

  // TLS with SNI.
  const body = await new Promise<string>((resolve, reject) => {
    const [host, port] = proxy.https.split(':');
    const s = tls.connect({ host, port: Number(port), servername: 'shop.example.com', ca: crt }, () => {
      s.write('GET /hello HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n');
    });
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
  t.match(body, /^HTTP\/1\.1 200/, 'HTTPS with the Secret\'s certificate, verified against it');
  t.match(body, /"proto":"https"/);
  const noCert = await new Promise<string>((resolve) => {
    const [host, port] = proxy.https.split(':');
    const s = tls.connect({ host, port: Number(port), servername: 'unknown.example.com', rejectUnauthorized: false }, () => resolve('connected'));
    s.on('error', (e) => resolve(e.message));
  });
  t.not(noCert, 'connected', `no certificate for an unknown server name: the handshake fails (${noCert})`);

  const status = await waitFor('status.loadBalancer', async () => {
    const o = await api.get<{ status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }>(resourcePath(ING, 'default', 'shop'));
    return o.status?.loadBalancer?.ingress?.length ? o.status.loadBalancer.ingress : undefined;
  }, 15_000, 100);
  t.same(status, [{ ip: '127.0.0.1' }], 'status.loadBalancer names the proxy\'s address');
  const other = await api.get<{ status?: { loadBalancer?: { ingress?: unknown[] } } }>(resourcePath(ING, 'default', 'other-class'));
  t.notOk(other.status?.loadBalancer?.ingress?.length, 'an Ingress of another class gets no status from us');
  t.match(await proxy.metrics(), /flotilla_ingress_requests_total\{code="200"\} \d+/, 'requests counted');

  // Changes are followed: delete the rule's Ingress → 404.
  await api.delete(resourcePath(ING, 'default', 'shop'));
  await waitFor('the deleted Ingress to stop routing', async () => (await get('/', 'shop.example.com')).status === 404, 15_000, 100);
  t.pass('a deleted Ingress no longer routes');
});
