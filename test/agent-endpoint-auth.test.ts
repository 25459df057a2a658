// Who reaches a pod's logs, exec, attach and port-forward.
//
// Through the API: exec/attach/portforward arrive as HTTP upgrades, which
// bypass the ordinary request path; they must be authenticated and
// authorized (as `create` on the subresource, whatever the method) before
// anything is looked up, and the caller's credentials are never passed on to
// the node agent.
//
// At the node agent: with --tls-cert-file/--client-ca-file its endpoints take
// only the API server's client certificate (--kubelet-client-certificate), so
// someone who can reach the agent's port cannot read logs or run commands.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { type TLSSocket, connect as connectTls, createServer as createTlsServer } from 'node:tls';
import t from 'tap';
import { Agent, request } from 'undici';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import type { Pod } from '../agents/informer/types.ts';
import { kindByName } from '../api/kinds/index.ts';
import { AgentProcess } from '../harness/agent.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { FLOTILLA_BIN, ROOT, tempDir, waitFor } from '../harness/procs.ts';

const PODS = kindByName('pods')!;
const NODES = kindByName('nodes')!;
const skip = kubectlMissing(t);

const octet = 30 + Math.floor(Math.random() * 200);
const ADDRESS = `127.0.${octet}.41`;
const NODE = `secure-${octet}`;
// A second "node" whose agent is the test itself: it records what the API server sends it.
const FAKE_ADDRESS = `127.0.${octet}.42`;
const FAKE_NODE = `fake-${octet}`;

function certs(dir: string, ...args: string[]): void {
  const r = spawnSync(process.execPath, [FLOTILLA_BIN, 'certs', '--dir', dir, ...args], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`flotilla certs: ${r.stderr}`);
}

/** Sends an HTTP upgrade request on `socket` and resolves with everything answered until the connection closes. */
function upgradeHead(socket: import('node:net').Socket | TLSSocket, path: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    socket.setEncoding('latin1');
    // Refusals close the connection after their Status body.
    const timer = setTimeout(() => socket.destroy(), 10_000);
    socket.on('data', (d: string) => { got += d; });
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    const lines = [`GET ${path} HTTP/1.1`, 'Host: x', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol: v5.channel.k8s.io', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
}

const work = tempDir('agent-endpoint-auth');
const pki = join(work, 'pki');
const foreign = join(work, 'foreign');
certs(pki, '--server-ip', '127.0.0.1', '--client', 'admin/system:masters', '--client', 'kube-apiserver-kubelet-client', '--client', 'mallory',
  '--node', `${NODE}=${ADDRESS}`, '--node', `${FAKE_NODE}=${FAKE_ADDRESS}`);
certs(foreign, '--client', 'kube-apiserver-kubelet-client');
const file = (dir: string, name: string) => join(dir, name);
const kubeletClientArgs = ['--kubelet-client-certificate', file(pki, 'kube-apiserver-kubelet-client.crt'), '--kubelet-client-key', file(pki, 'kube-apiserver-kubelet-client.key'),
  '--kubelet-certificate-authority', file(pki, 'ca.crt')];

/** The message of the Status body of a refused upgrade. */
function statusMessage(response: string): string {
  try {
    return (JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as { message: string }).message;
  } catch {
    return `(no Status in ${JSON.stringify(response)})`;
  }
}

t.test('pod upgrades through the API: authorized first, credentials not passed on', { timeout: 120_000 }, async (t) => {
  const tokenFile = join(work, 'tokens.csv');
  writeFileSync(tokenFile, ['tok-admin-0123456789,admin,1,"system:masters"', 'tok-viewer-0123456789,viewer,2', 'tok-editor-0123456789,editor,3'].join('\n'), { mode: 0o600 });

  const cluster = await FlotillaCluster.start(1, {
    tls: { pkiDir: pki },
    args: ['--authorization-mode', 'RBAC', '--token-auth-file', tokenFile, ...kubeletClientArgs],
    adminToken: 'tok-admin-0123456789',
  });
  t.teardown(() => cluster.stop());
  const url = cluster.urls[0];
  const apiPort = Number(new URL(url).port);
  const ca = readFileSync(file(pki, 'ca.crt'));
  const adminTls = { ca, cert: readFileSync(file(pki, 'admin.crt')), key: readFileSync(file(pki, 'admin.key')) };
  const admin = new Agent({ connect: adminTls });
  t.teardown(() => admin.close());
  const api = async <T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> => {
    const r = await request(`${url}${path}`, { method, dispatcher: admin, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.body.text();
    if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${text}`);
    return JSON.parse(text) as T;
  };

  await waitFor('the default roles', async () => {
    try {
      await api('GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/edit');
      return true;
    } catch {
      return false;
    }
  }, 30_000);
  await api('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings', {
    metadata: { name: 'viewer-view' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'User', name: 'viewer', apiGroup: 'rbac.authorization.k8s.io' }],
  });
  // Reads pods/exec, pods/attach and pods/portforward (as edit's read rules do) but may not create them.
  await api('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
    metadata: { name: 'exec-reader' }, rules: [{ apiGroups: [''], resources: ['pods', 'pods/exec', 'pods/attach', 'pods/portforward', 'pods/log'], verbs: ['get', 'list', 'watch'] }],
  });
  await api('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings', {
    metadata: { name: 'viewer-exec-reader' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'exec-reader' }, subjects: [{ kind: 'User', name: 'viewer', apiGroup: 'rbac.authorization.k8s.io' }],
  });
  await api('POST', '/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings', {
    metadata: { name: 'editor-edit' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' }, subjects: [{ kind: 'User', name: 'editor', apiGroup: 'rbac.authorization.k8s.io' }],
  });

  await t.test('upgrades are authenticated and authorized before anything is looked up', async (t) => {
    // Anonymous: 401/403 for a pod that does not even exist (no existence leak).
    const anon = await upgradeHead(connectTls({ host: '127.0.0.1', port: apiPort, ca }), '/api/v1/namespaces/default/pods/nope/exec?command=true&stdout=1');
    t.match(anon, /^HTTP\/1\.1 40[13] /, `anonymous exec is refused: ${anon.split('\r\n')[0]}`);
    const bad = await upgradeHead(connectTls({ host: '127.0.0.1', port: apiPort, ca }), '/api/v1/namespaces/default/pods/nope/exec?command=true&stdout=1', { Authorization: 'Bearer not-a-token' });
    t.match(bad, /^HTTP\/1\.1 401 /, 'an invalid token is 401');
    for (const sub of ['exec', 'attach', 'portforward']) {
      const r = await upgradeHead(connectTls({ host: '127.0.0.1', port: apiPort, ca }), `/api/v1/namespaces/default/pods/nope/${sub}?command=true&stdout=1`, { Authorization: 'Bearer tok-viewer-0123456789' });
      t.match(r, /^HTTP\/1\.1 403 /, `${sub} with only get on pods/${sub} is forbidden`);
      t.equal(statusMessage(r), `pods "nope" is forbidden: User "viewer" cannot create resource "pods/${sub}" in API group "" in the namespace "default"`, 'with Kubernetes\' message');
    }
    // Allowed: then the pod is looked up.
    const r = await upgradeHead(connectTls({ host: '127.0.0.1', port: apiPort, ca }), '/api/v1/namespaces/default/pods/nope/exec?command=true&stdout=1', { Authorization: 'Bearer tok-editor-0123456789' });
    t.match(r, /^HTTP\/1\.1 404 /, 'an editor gets as far as the missing pod');
  });

  await t.test('the caller\'s credentials are not passed on to the agent', async (t) => {
    // A "node" whose agent endpoint is this TLS listener: it records the request head the API server sends.
    const heads: string[] = [];
    const peers: (string | undefined)[] = [];
    const fake = createTlsServer({ cert: readFileSync(file(pki, `system-node-${FAKE_NODE}.crt`)), key: readFileSync(file(pki, `system-node-${FAKE_NODE}.key`)), ca, requestCert: true }, (s) => {
      peers.push((s.getPeerCertificate().subject?.CN as string | undefined));
      let got = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => {
        got += d;
        if (got.includes('\r\n\r\n')) {
          heads.push(got);
          s.end('HTTP/1.1 418 Teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        }
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => fake.listen(0, FAKE_ADDRESS, r));
    t.teardown(() => fake.close());
    const port = (fake.address() as { port: number }).port;
    const node = await api<{ metadata: { resourceVersion: string } }>('POST', '/api/v1/nodes', { metadata: { name: FAKE_NODE } });
    await api('PUT', `/api/v1/nodes/${FAKE_NODE}/status`, {
      metadata: { name: FAKE_NODE, resourceVersion: node.metadata.resourceVersion },
      status: { addresses: [{ type: 'InternalIP', address: FAKE_ADDRESS }], daemonEndpoints: { kubeletEndpoint: { Port: port } } },
    });
    await api('POST', '/api/v1/namespaces/default/pods', { metadata: { name: 'on-fake' }, spec: { nodeName: FAKE_NODE, automountServiceAccountToken: false, containers: [{ name: 'c', image: 'x', command: ['true'] }] } });
    const r = await upgradeHead(connectTls({ host: '127.0.0.1', port: apiPort, ca }), '/api/v1/namespaces/default/pods/on-fake/exec?command=true&stdout=1',
      { Authorization: 'Bearer tok-editor-0123456789', Cookie: 'session=secret-cookie' });
    t.match(r, /^HTTP\/1\.1 418 /, 'the API server proxied the upgrade to the agent');
    t.equal(heads.length, 1, 'one request reached the agent');
    t.match(heads[0], /^GET \/exec\/default\/on-fake\/c\?/, 'at the agent\'s exec path');
    t.notMatch(heads[0], /tok-editor|authorization|secret-cookie/i, 'without the caller\'s token or cookie');
    t.same(peers, ['kube-apiserver-kubelet-client'], 'the API server presented its own client certificate');
  });

});

t.test('the agent\'s endpoints take only the API server\'s certificate', { skip, timeout: 120_000 }, async (t) => {
  // A plain-HTTP API (everyone allowed) that reaches agents over TLS with its client certificate.
  const cluster = await FlotillaCluster.start(1, { args: kubeletClientArgs });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const agent = await AgentProcess.start({
    servers: cluster.urls, name: NODE, address: ADDRESS,
    args: ['--tls-cert-file', file(pki, `system-node-${NODE}.crt`), '--tls-private-key-file', file(pki, `system-node-${NODE}.key`), '--client-ca-file', file(pki, 'ca.crt'),
      '--pod-cidr', `127.${100 + (octet % 100)}.${octet}.0/24`],
  });
  t.teardown(() => agent.stop());
  t.match(agent.endpoint, /^https:/);
  await c.create(resourcePath(PODS, 'default'), {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' },
    spec: { nodeName: NODE, automountServiceAccountToken: false, terminationGracePeriodSeconds: 2, containers: [{ name: 'c', image: 'sh', command: ['sh', '-c', 'echo hello-from-pod; exec sleep 600'] }] },
  });
  await waitFor('web running', async () => (await c.get<Pod>(`${resourcePath(PODS, 'default')}/web`)).status?.phase === 'Running', 30_000, 200);

  // Through the API server, with the real kubectl: it presents its certificate and the agent serves it.
  const kubectl = (...args: string[]) => spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, ...args], { encoding: 'utf8', timeout: 30_000 });
  const logs = await waitFor('kubectl logs', async () => {
    const r = kubectl('logs', 'web');
    return r.status === 0 && r.stdout.includes('hello-from-pod') ? r.stdout : undefined;
  }, 15_000, 200);
  t.match(logs, 'hello-from-pod', 'kubectl logs through the API server');
  const exec = kubectl('exec', 'web', '--', 'echo', 'via-exec');
  t.equal(exec.status, 0, `kubectl exec: ${exec.stderr}`);
  t.equal(exec.stdout, 'via-exec\n', 'kubectl exec through the API server');

  // Straight to the agent's port.
  const base = agent.endpoint;
  const get = async (path: string, tls: { cert?: Buffer; key?: Buffer }) => {
    const d = new Agent({ connect: { ca: readFileSync(file(pki, 'ca.crt')), ...tls } });
    try {
      const r = await request(`${base}${path}`, { dispatcher: d });
      return { code: r.statusCode, body: await r.body.text() };
    } finally {
      await d.close();
    }
  };
  const pair = (dir: string, name: string) => ({ cert: readFileSync(file(dir, `${name}.crt`)), key: readFileSync(file(dir, `${name}.key`)) });
  const logPath = '/containerLogs/default/web/c';
  const none = await get(logPath, {});
  t.equal(none.code, 401, 'no client certificate: 401');
  t.equal(JSON.parse(none.body).message, 'a client certificate is required');
  const mallory = await get(logPath, pair(pki, 'mallory'));
  t.equal(mallory.code, 403, 'a certificate of the cluster CA for another user: 403');
  t.equal(JSON.parse(mallory.body).message, 'user "mallory" may not use the node agent\'s endpoints');
  const otherNode = await get(logPath, pair(pki, `system-node-${FAKE_NODE}`));
  t.equal(otherNode.code, 403, 'another node\'s identity: 403');
  const forged = await get(logPath, pair(foreign, 'kube-apiserver-kubelet-client'));
  t.equal(forged.code, 401, 'the right name from another CA: 401');
  t.notMatch(`${none.body}${mallory.body}${forged.body}`, 'hello-from-pod', 'no log line reached a refused caller');
  const apiserver = await get(logPath, pair(pki, 'kube-apiserver-kubelet-client'));
  t.equal(apiserver.code, 200, 'the API server\'s certificate reads the log');
  t.match(apiserver.body, 'hello-from-pod');
  const health = await get('/healthz', {});
  t.equal(health.code, 200, '/healthz answers without a certificate');

  // exec straight to the agent without a certificate: refused before any process starts.
  const ca = readFileSync(file(pki, 'ca.crt'));
  const port = Number(new URL(base).port);
  const head = await upgradeHead(connectTls({ host: ADDRESS, port, ca }), '/exec/default/web/c?command=true&stdout=1');
  t.match(head, /^HTTP\/1\.1 401 Unauthorized/, `exec without a certificate: ${head.split('\r\n')[0]}`);
  // Plain HTTP to the TLS port gets no HTTP answer.
  const plain = await upgradeHead(connectTcp({ host: ADDRESS, port }), '/exec/default/web/c?command=true').catch((e: Error) => e.message);
  t.notMatch(plain, /^HTTP\/1\.1 [12]/, 'plain HTTP is not served');
});
