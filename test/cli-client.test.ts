// The client library on its own: config resolution, path helpers, the
// three-way merge patch, and ApiClient's failover, errors, pagination and
// watch streaming against small fake servers on loopback.
import t from 'tap';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import {
  ApiClient, ApiClientError, ApiConnectionError, type WatchEvent, encodeQuery, resourcePath,
} from '../agents/client/api.ts';
import { ConfigError, loadClientConfig, normalizeServerUrl, parseServerList } from '../agents/client/config.ts';
import { contains, threeWayMergePatch } from '../agents/client/merge-patch.ts';
import { createCA, issue } from '../agents/pki/pki.ts';
import { freePort } from '../harness/procs.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => unknown;

/** A loopback HTTP server running `handler`; closed at teardown. */
async function fake(tt: { teardown(fn: () => unknown): void }, handler: Handler): Promise<{ url: string; server: Server; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    hits.push(`${req.method} ${req.url}`);
    await handler(req, res, Buffer.concat(chunks).toString());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  tt.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, server, hits };
}

function json(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

const status = (code: number, reason: string, message: string) => ({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', code, reason, message });

const deployments = { group: 'apps', version: 'v1', plural: 'deployments', namespaced: true };
const pods = { group: '', version: 'v1', plural: 'pods', namespaced: true };
const nodes = { group: '', version: 'v1', plural: 'nodes', namespaced: false };

t.test('config: --server, then $FLOTILLA_SERVER, then .flotilla/cluster.json, else a clear error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-cfg-'));
  t.same(loadClientConfig({ server: 'http://a:1/, b:2', env: {}, cwd: dir }).servers, ['http://a:1', 'http://b:2']);
  t.equal(loadClientConfig({ server: 'a:1', env: {}, cwd: dir }).source, '--server');
  const fromEnv = loadClientConfig({ env: { FLOTILLA_SERVER: 'https://x:443,x:7' }, cwd: dir });
  t.same(fromEnv.servers, ['https://x', 'http://x:7']);
  t.equal(fromEnv.source, '$FLOTILLA_SERVER');
  const none = (() => {
    try {
      loadClientConfig({ env: {}, cwd: dir });
    } catch (e) {
      return e as Error;
    }
  })();
  t.ok(none instanceof ConfigError, 'no cluster anywhere: a ConfigError');
  t.match(none?.message, /--server.*FLOTILLA_SERVER.*cluster\.json/, 'saying how to point at a cluster');

  mkdirSync(join(dir, '.flotilla'));
  writeFileSync(join(dir, '.flotilla', 'cluster.json'), JSON.stringify({
    servers: [{ id: 's1', api: '127.0.0.1:7101', peer: '127.0.0.1:7201' }, { id: 's2', api: 'http://127.0.0.1:7102/' }],
    nats: 'nats://127.0.0.1:4222',
  }));
  const fromFile = loadClientConfig({ env: {}, cwd: dir });
  t.same(fromFile.servers, ['http://127.0.0.1:7101', 'http://127.0.0.1:7102']);
  t.equal(fromFile.nats, 'nats://127.0.0.1:4222');
  t.match(fromFile.source, /cluster\.json$/);
  // An explicit --server may be another cluster: the file's NATS is not mixed in.
  t.equal(loadClientConfig({ server: 'a:1', env: {}, cwd: dir }).nats, undefined);
  t.equal(loadClientConfig({ server: 'a:1', env: { FLOTILLA_NATS: 'nats://n:1' }, cwd: dir }).nats, 'nats://n:1');

  writeFileSync(join(dir, '.flotilla', 'cluster.json'), '{ not json');
  t.throws(() => loadClientConfig({ env: {}, cwd: dir }), /not valid cluster\.json/);
  writeFileSync(join(dir, '.flotilla', 'cluster.json'), '{"servers": []}');
  t.throws(() => loadClientConfig({ env: {}, cwd: dir }), /lists no servers/);

  t.equal(normalizeServerUrl('localhost:8080'), 'http://localhost:8080');
  t.throws(() => normalizeServerUrl('ftp://x'), /only http and https/);
  t.throws(() => loadClientConfig({ server: ' , ', env: {}, cwd: dir }), /--server is empty/);
  t.same(parseServerList('a:1,a:1'), ['http://a:1']);
});

t.test('config: credentials from --kubeconfig, then $KUBECONFIG, then the kubeconfig cluster.json names', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-cfg-'));
  const kc = (name: string, server: string, token: string) => {
    writeFileSync(join(dir, `${name}.crt`), `CA of ${name}`);
    writeFileSync(join(dir, name), [
      'apiVersion: v1', 'kind: Config', 'current-context: c', `clusters: [{name: c, cluster: {server: "${server}", certificate-authority: ${name}.crt}}]`,
      'contexts: [{name: c, context: {cluster: c, user: u}}]', `users: [{name: u, user: {token: ${token}}}]`, '',
    ].join('\n'));
    return join(dir, name);
  };
  const a = kc('a.kubeconfig', 'https://a.example:6443', 'ta');
  const b = kc('b.kubeconfig', 'https://b.example:6443', 'tb');
  // --kubeconfig without --server: the kubeconfig's server, as kubectl.
  const byFlag = loadClientConfig({ kubeconfig: a, env: { KUBECONFIG: b }, cwd: dir });
  t.same(byFlag.servers, ['https://a.example:6443']);
  t.same(byFlag.credentials, { ca: 'CA of a.kubeconfig', token: 'ta' }, 'its CA and token');
  // --server chooses the servers; the credentials still come from the kubeconfig.
  const both = loadClientConfig({ server: 'https://s1:1,https://s2:2', kubeconfig: a, env: {}, cwd: dir });
  t.same(both.servers, ['https://s1:1', 'https://s2:2']);
  t.equal(both.credentials?.token, 'ta');
  t.equal(loadClientConfig({ server: 'https://s1:1', env: { KUBECONFIG: `/nonexistent:${b}` }, cwd: dir }).credentials?.token, 'tb', '$KUBECONFIG: its first existing file');
  t.equal(loadClientConfig({ server: 'http://s1:1', env: {}, cwd: dir }).credentials, undefined, 'no kubeconfig anywhere: no credentials');
  mkdirSync(join(dir, '.flotilla'));
  writeFileSync(join(dir, '.flotilla', 'cluster.json'), JSON.stringify({ servers: [{ id: 's1', api: 'https://127.0.0.1:7101' }], kubeconfig: b }));
  const fromFile = loadClientConfig({ env: {}, cwd: dir });
  t.same(fromFile.servers, ['https://127.0.0.1:7101'], 'cluster.json names the servers');
  t.equal(fromFile.credentials?.token, 'tb', 'and the kubeconfig');
  t.equal(fromFile.kubeconfig, b);
  t.throws(() => loadClientConfig({ kubeconfig: join(dir, 'missing'), env: {}, cwd: dir }), ConfigError, 'a kubeconfig that cannot be read is a ConfigError');
});

t.test('resourcePath: core vs named groups, namespaced vs cluster-scoped, subresources', async (t) => {
  t.equal(resourcePath(pods, 'default'), '/api/v1/namespaces/default/pods');
  t.equal(resourcePath(pods, 'default', 'web-1', 'log'), '/api/v1/namespaces/default/pods/web-1/log');
  t.equal(resourcePath(pods), '/api/v1/pods', 'no namespace: across all namespaces');
  t.equal(resourcePath(deployments, 'prod', 'web', 'scale'), '/apis/apps/v1/namespaces/prod/deployments/web/scale');
  t.equal(resourcePath(nodes, 'default', 'n1'), '/api/v1/nodes/n1', 'cluster-scoped kinds ignore the namespace');
  t.equal(resourcePath(pods, 'a b', 'x/y'), '/api/v1/namespaces/a%20b/pods/x%2Fy');
  t.throws(() => resourcePath(pods, 'default', undefined, 'status'));
  t.equal(encodeQuery({ a: 1, b: undefined, c: ['x', 'y'], d: true }), '?a=1&c=x&c=y&d=true');
});

t.test('three-way merge patch: like kubectl client-side apply', async (t) => {
  const last = { metadata: { labels: { app: 'web', tier: 'fe' } }, spec: { replicas: 2, paused: false, template: { spec: { containers: [{ name: 'c', image: 'v1' }] } } } };
  const live = {
    metadata: { labels: { app: 'web', tier: 'fe', added: 'by-someone' }, uid: 'u1' },
    spec: { replicas: 2, paused: false, strategy: { type: 'RollingUpdate' }, template: { spec: { containers: [{ name: 'c', image: 'v1', imagePullPolicy: 'IfNotPresent' }] } } },
    status: { replicas: 2 },
  };
  t.same(threeWayMergePatch(last, last, live), {}, 'same manifest, defaulted live object: nothing to do');
  t.same(
    threeWayMergePatch(last, { metadata: { labels: { app: 'web' } }, spec: { replicas: 3, template: last.spec.template } }, live),
    { metadata: { labels: { tier: null } }, spec: { replicas: 3, paused: null } },
    'removed fields are deleted, changed ones set, others\' fields kept',
  );
  const v2 = { ...last, spec: { ...last.spec, template: { spec: { containers: [{ name: 'c', image: 'v2' }] } } } };
  t.same(threeWayMergePatch(last, v2, live), { spec: { template: { spec: { containers: [{ name: 'c', image: 'v2' }] } } } }, 'lists are replaced whole when they change');
  t.same(threeWayMergePatch(undefined, last, live), {}, 'without a last-applied configuration nothing is deleted');
  t.same(threeWayMergePatch(last, { ...last, spec: { ...last.spec, replicas: undefined } }, { ...live, spec: { ...live.spec, replicas: 5 } }), { spec: { replicas: null } });
  t.same(threeWayMergePatch({ a: 1 }, {}, {}), {}, 'deleting what is already gone is a no-op');
  t.same(threeWayMergePatch({}, { a: null }, { a: 1 }), { a: null }, 'an explicit null unsets');
  t.same(threeWayMergePatch({}, { a: {} }, {}), {}, 'empty and unset are the same');
  t.ok(contains({ a: [{ x: 1, y: 2 }] }, { a: [{ x: 1 }] }));
  t.notOk(contains({ a: [{ x: 1 }, { x: 2 }] }, { a: [{ x: 1 }] }), 'lists must have the same length');
});

t.test('ApiClient fails over: connection refused and 503 move on, Retry-After is honoured', async (t) => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  let unavailable = 0;
  const busy = await fake(t, (_req, res) => {
    unavailable++;
    json(res, 503, status(503, 'ServiceUnavailable', 'no leader'), { 'retry-after': '1' });
  });
  const good = await fake(t, (req, res) => json(res, 200, { kind: 'Pod', metadata: { name: 'p' }, path: req.url }));
  const c = new ApiClient([dead, busy.url, good.url], { deadlineMs: 5000 });
  t.teardown(() => c.close());
  for (let i = 0; i < 5; i++) {
    const p = await c.get<{ path: string }>('/api/v1/namespaces/default/pods/p', { resourceVersion: '0' });
    t.equal(p.path, '/api/v1/namespaces/default/pods/p?resourceVersion=0');
  }
  t.ok(unavailable <= 1, 'sticks to the server that answered');

  // Every server unavailable: waits at least Retry-After between rounds, then gives up with the Status.
  const c2 = new ApiClient([dead, busy.url], { deadlineMs: 1500 });
  t.teardown(() => c2.close());
  const before = unavailable;
  const started = Date.now();
  const err = await c2.get('/api/v1/pods').catch((e: unknown) => e);
  t.ok(err instanceof ApiClientError, 'the last 503 is raised');
  t.equal((err as ApiClientError).code, 503);
  t.equal((err as ApiClientError).reason, 'ServiceUnavailable');
  t.ok(Date.now() - started >= 1000, 'retried until the deadline');
  t.ok(unavailable - before <= 3, `Retry-After spaced the attempts (${unavailable - before})`);

  const c3 = new ApiClient([dead], { deadlineMs: 400 });
  t.teardown(() => c3.close());
  const err3 = await c3.get('/api/v1/pods').catch((e: unknown) => e);
  t.ok(err3 instanceof ApiConnectionError, 'nothing reachable: a connection error naming the servers');
  t.match((err3 as Error).message, /unable to reach a Flotilla server/);
});

t.test('ApiClient: a POST that may have been delivered is not replayed', async (t) => {
  const posts: string[] = [];
  const drops = await fake(t, (req, res) => {
    posts.push(req.url!);
    res.socket?.destroy();
  });
  const other = await fake(t, (_req, res) => json(res, 201, { kind: 'ConfigMap' }));
  const c = new ApiClient([drops.url, other.url], { deadlineMs: 3000 });
  // Force the first attempt onto the dropping server.
  (c as unknown as { preferred: number }).preferred = 0;
  t.teardown(() => c.close());
  const err = await c.create('/api/v1/namespaces/default/configmaps', { kind: 'ConfigMap' }).catch((e: unknown) => e);
  t.ok(err instanceof ApiConnectionError, 'the broken POST is reported, not retried elsewhere');
  t.equal(other.hits.length, 0);
  (c as unknown as { preferred: number }).preferred = 0;
  const got = await c.get('/api/v1/namespaces/default/configmaps/x').catch((e: unknown) => e);
  t.notOk(got instanceof Error, 'a GET is retried on another server');
});

t.test('ApiClient: non-2xx answers carry the Kubernetes Status', async (t) => {
  const s = await fake(t, (req, res) => {
    if (req.url?.includes('missing')) return json(res, 404, { ...status(404, 'NotFound', 'pods "missing" not found'), details: { name: 'missing', kind: 'pods' } });
    if (req.url?.includes('plain')) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      return res.end('boom');
    }
    res.writeHead(200, { 'content-type': 'application/json', warning: '299 - "unknown field \\"spec.foo\\""' });
    res.end('{"kind":"Pod"}');
  });
  const warnings: string[] = [];
  const c = new ApiClient([s.url], { onWarning: (w) => warnings.push(w) });
  t.teardown(() => c.close());
  const e = await c.get('/api/v1/namespaces/default/pods/missing').catch((x: unknown) => x) as ApiClientError;
  t.ok(e instanceof ApiClientError);
  t.equal(e.code, 404);
  t.equal(e.reason, 'NotFound');
  t.equal(e.message, 'pods "missing" not found');
  t.same(e.details, { name: 'missing', kind: 'pods' });
  const e2 = await c.get('/plain').catch((x: unknown) => x) as ApiClientError;
  t.equal(e2.reason, 'InternalError');
  t.match(e2.message, /boom/);
  await c.get('/ok');
  t.same(warnings, ['unknown field "spec.foo"']);
  const raw = await c.raw('GET', '/api/v1/namespaces/default/pods/missing');
  t.equal(raw.status, 404, 'raw() hands back any status');
});

t.test('ApiClient: list and table follow continue tokens; table asks for meta.k8s.io Table', async (t) => {
  const s = await fake(t, (req, res) => {
    const u = new URL(req.url!, 'http://x');
    const page = Number(u.searchParams.get('continue') ?? '0');
    const more = page < 2 ? String(page + 1) : undefined;
    if (/as=Table;v=v1;g=meta\.k8s\.io/.test(req.headers.accept ?? '')) {
      return json(res, 200, { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: '9', continue: more }, columnDefinitions: [{ name: 'Name', type: 'string', format: 'name', priority: 0 }], rows: [{ cells: [`p${page}`] }] });
    }
    json(res, 200, { kind: 'PodList', metadata: { resourceVersion: '9', continue: more }, items: [{ metadata: { name: `p${page}` } }] });
  });
  const c = new ApiClient([s.url]);
  t.teardown(() => c.close());
  const l = await c.list('/api/v1/pods', { limit: 1 });
  t.same(l.items.map((i) => i.metadata?.name), ['p0', 'p1', 'p2']);
  t.same(l.metadata, { resourceVersion: '9' });
  const tb = await c.table('/api/v1/pods', { limit: 1 });
  t.same(tb.rows.map((r) => r.cells[0]), ['p0', 'p1', 'p2']);
});

t.test('ApiClient.watch: NDJSON split anywhere, ends on close, ERROR events reject', async (t) => {
  const s = await fake(t, async (req, res) => {
    const u = new URL(req.url!, 'http://x');
    t.equal(u.searchParams.get('watch'), 'true');
    res.writeHead(200, { 'content-type': 'application/json' });
    if (u.searchParams.get('resourceVersion') === 'old') {
      res.write(`${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', 'too old resource version') })}\n`);
      return res.end();
    }
    const text = [
      { type: 'ADDED', object: { metadata: { name: 'a', resourceVersion: '5' }, note: 'ünïcödé' } },
      { type: 'MODIFIED', object: { metadata: { name: 'a', resourceVersion: '6' } } },
      { type: 'DELETED', object: { metadata: { name: 'a', resourceVersion: '7' } } },
    ].map((e) => JSON.stringify(e)).join('\n');
    // Byte-sized pieces split lines and even multi-byte characters.
    const bytes = Buffer.from(text);
    for (let i = 0; i < bytes.length; i += 7) {
      res.write(bytes.subarray(i, i + 7));
      await new Promise((r) => setImmediate(r));
    }
    res.end(); // the last event has no trailing newline
  });
  const c = new ApiClient([s.url]);
  t.teardown(() => c.close());
  const got: WatchEvent[] = [];
  await c.watch('/api/v1/namespaces/default/pods', { resourceVersion: '4' }, (e) => {
    got.push(e);
  });
  t.same(got.map((e) => `${e.type}:${e.object.metadata?.resourceVersion}`), ['ADDED:5', 'MODIFIED:6', 'DELETED:7']);
  t.equal(got[0].object.note, 'ünïcödé');
  const err = await c.watch('/api/v1/pods', { resourceVersion: 'old' }, () => {}).catch((e: unknown) => e) as ApiClientError;
  t.ok(err instanceof ApiClientError);
  t.equal(err.code, 410);
  t.equal(err.reason, 'Expired');
});

t.test('ApiClient.watch stops when its signal aborts', async (t) => {
  const s = await fake(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } })}\n`);
    // …and never ends.
  });
  const c = new ApiClient([s.url]);
  t.teardown(() => c.close());
  const ac = new AbortController();
  let n = 0;
  await c.watch('/api/v1/pods', {}, () => {
    n++;
    ac.abort();
  }, ac.signal);
  t.equal(n, 1);
});

t.test('ApiClient over HTTPS: trusts the given CA, presents the client certificate, sends the token only over https', async (t) => {
  const ca = await createCA('test-ca');
  const serving = await issue(ca, { commonName: 'server', ips: ['127.0.0.1'], usages: ['server'] });
  const client = await issue(ca, { commonName: 'alice', organizations: ['team'], usages: ['client'] });
  const seen: { user?: string; authorization?: string }[] = [];
  const server = createHttpsServer({ cert: serving.cert, key: serving.key, ca: ca.cert, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    seen.push({ user: (req.socket as TLSSocket).authorized ? String(peer.subject?.CN) : undefined, authorization: req.headers.authorization });
    json(res, 200, { kind: 'Namespace', metadata: { name: 'x' } });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  const url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;

  const c = new ApiClient([url], { credentials: { ca: ca.cert, cert: client.cert, key: client.key, token: 'tok' }, deadlineMs: 3000 });
  await c.get('/api/v1/namespaces/x');
  await c.close();
  t.same(seen.pop(), { user: 'alice', authorization: 'Bearer tok' }, 'the server sees the client certificate and the token');

  const untrusting = new ApiClient([url], { deadlineMs: 1000, backoffMs: 50 });
  await t.rejects(untrusting.get('/api/v1/namespaces/x'), ApiConnectionError, 'without the CA the server certificate is not trusted');
  await untrusting.close();

  const plain = await fake(t, (req, res) => json(res, 200, { authorization: req.headers.authorization ?? null }));
  const overHttp = new ApiClient([plain.url], { credentials: { token: 'tok' } });
  t.same(await overHttp.get('/x'), { authorization: null }, 'the token is never sent over plain HTTP');
  await overHttp.close();
});
