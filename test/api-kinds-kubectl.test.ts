// The real kubectl against a minimal in-process server that serves discovery,
// the generated OpenAPI documents and an in-memory store using the kind
// definitions (defaulting, validation). This checks that kubectl accepts the
// documents: client-side apply computes its strategic merge patch from the v3
// schemas (merge keys), `explain` renders them, and field validation is left
// to the server because PATCH declares fieldValidation.

import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KINDS, apiVersionOf, kindByResource, validateObject } from '../api/kinds/index.ts';
import { openApiV2, openApiV3Document, openApiV3Index } from '../api/schema/openapi.ts';
import { validateSchema } from '../api/schema/validate.ts';
import { hasKubectl, inCI, kubectlMissing } from '../harness/kubectl.ts';

function kubectlVersion(): string | undefined {
  try {
    return execFileSync('kubectl', ['version', '--client', '-o', 'json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
}

const version = kubectlVersion();
if (!version) {
  // Missing: fails in CI, a loud skip elsewhere. Installed but not running: a failure.
  const missing = kubectlMissing(t);
  if (hasKubectl) t.fail('kubectl is installed but `kubectl version --client` failed');
  else if (!inCI) t.plan(0, missing);
} else {
  run();
}

type J = Record<string, any>;

function run() {
  const store = new Map<string, J>();
  const requests: { method: string; url: string; type: string; body: string }[] = [];

  const status = (code: number, reason: string, message: string, details?: J) =>
    ({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...(details ? { details } : {}) });

  const server = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const url = new URL(req.url ?? '/', 'http://localhost');
    requests.push({ method: req.method ?? '', url: req.url ?? '', type: String(req.headers['content-type'] ?? ''), body });
    const send = (code: number, obj: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    const p = url.pathname;
    if (p === '/version') return send(200, { major: '1', minor: '32', gitVersion: 'v1.32.0' });
    if (p === '/api') return send(200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
    if (p === '/apis') {
      const groups = [...new Set(KINDS.filter((k) => k.group).map((k) => k.group))].map((g) => {
        const versions = [...new Set(KINDS.filter((k) => k.group === g).map((k) => k.version))].map((v) => ({ groupVersion: `${g}/${v}`, version: v }));
        return { name: g, versions, preferredVersion: versions[0] };
      });
      return send(200, { kind: 'APIGroupList', apiVersion: 'v1', groups });
    }
    if (p === '/openapi/v3') return send(200, openApiV3Index());
    if (p.startsWith('/openapi/v3/')) {
      const doc = openApiV3Document(p);
      return doc ? send(200, doc) : send(404, status(404, 'NotFound', 'no such document'));
    }
    if (p === '/openapi/v2') return send(200, openApiV2());
    const parts = p.split('/').filter(Boolean);
    const [group, ver, rest] = parts[0] === 'api' ? ['', parts[1], parts.slice(2)] : [parts[1], parts[2], parts.slice(3)];
    if (!rest.length) {
      const resources = KINDS.filter((k) => k.group === group && k.version === ver).map((k) => ({
        name: k.plural, singularName: k.singular, namespaced: k.namespaced, kind: k.kind,
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'], shortNames: k.shortNames, categories: k.categories,
      }));
      return resources.length ? send(200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${ver}` : ver, resources }) : send(404, status(404, 'NotFound', 'not found'));
    }
    let namespace = '';
    let r = rest;
    if (r[0] === 'namespaces' && r.length > 2) {
      namespace = r[1];
      r = r.slice(2);
    }
    const kind = kindByResource(group, ver, r[0]);
    if (!kind) return send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const key = (name: string) => `${kind.plural}/${namespace}/${name}`;
    if (req.method === 'GET' && r[1]) {
      const o = store.get(key(r[1]));
      return o ? send(200, o) : send(404, status(404, 'NotFound', `${kind.plural}${kind.group ? `.${kind.group}` : ''} "${r[1]}" not found`, { name: r[1], group: kind.group, kind: kind.plural }));
    }
    if (req.method === 'POST') {
      const o = JSON.parse(body);
      const schemaCauses = validateSchema(kind.schema, o);
      const unknown = schemaCauses.filter((c) => c.reason === 'FieldValueUnknown');
      if (unknown.length && url.searchParams.get('fieldValidation') === 'Strict') {
        return send(400, status(400, 'BadRequest', `${kind.kind} in version "${kind.version}" cannot be handled as a ${kind.kind}: strict decoding error: ${unknown.map((c) => c.message).join(', ')}`));
      }
      o.metadata = { ...o.metadata, uid: `uid-${store.size}`, resourceVersion: '1', creationTimestamp: new Date().toISOString() };
      if (kind.namespaced) o.metadata.namespace = namespace;
      kind.default(o);
      const causes = validateObject(kind, o);
      if (causes.length) {
        const name = o.metadata.name;
        return send(422, status(422, 'Invalid', `${kind.kind} "${name}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`, { name, group: kind.group, kind: kind.kind, causes }));
      }
      store.set(key(o.metadata.name), o);
      return send(201, o);
    }
    if (req.method === 'PATCH' && r[1]) {
      const o = store.get(key(r[1]));
      return o ? send(200, o) : send(404, status(404, 'NotFound', 'not found'));
    }
    send(405, status(405, 'MethodNotAllowed', 'not supported here'));
  });

  const dir = mkdtempSync(join(tmpdir(), 'flotilla-kubectl-'));

  t.before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    writeFileSync(join(dir, 'kubeconfig'), [
      'apiVersion: v1', 'kind: Config',
      'clusters: [{name: fake, cluster: {server: "http://127.0.0.1:' + port + '"}}]',
      'users: [{name: u, user: {token: test}}]',
      'contexts: [{name: fake, context: {cluster: fake, user: u, namespace: default}}]',
      'current-context: fake', '',
    ].join('\n'));
  });

  t.teardown(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = execFile('kubectl', [...args, '--cache-dir', join(dir, 'cache')], {
        env: { PATH: process.env.PATH, HOME: dir, KUBECONFIG: join(dir, 'kubeconfig') }, timeout: 60_000,
      }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      if (input !== undefined) child.stdin?.end(input);
    });
  }

  const manifest = (replicas: number, memory: string) => `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  replicas: ${replicas}
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
        resources:
          limits:
            memory: ${memory}
      - name: sidecar
        image: busybox
        command: ["sleep", "infinity"]
---
apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  selector:
    app: nginx
  ports:
  - port: 80
    targetPort: 80
`;

  t.test('kubectl apply creates, then patches with merge keys from the v3 schemas', async (t) => {
    const first = await kubectl(['apply', '-f', '-'], manifest(2, '128Mi'));
    t.equal(first.code, 0, first.stderr);
    t.equal(first.stdout, 'deployment.apps/nginx created\nservice/nginx created\n');
    const posts = requests.filter((r) => r.method === 'POST');
    t.equal(posts.length, 2);
    t.ok(posts.every((r) => r.url.includes('fieldValidation=Strict')), 'kubectl leaves field validation to the server');
    t.ok(requests.some((r) => r.url.startsWith('/openapi/v3/apis/apps/v1?hash=')));

    requests.length = 0;
    const second = await kubectl(['apply', '-f', '-'], manifest(3, '256Mi'));
    t.equal(second.code, 0, second.stderr);
    t.equal(second.stderr, '', 'no warning: the patch was computed from the OpenAPI v3 schema');
    t.equal(second.stdout, 'deployment.apps/nginx configured\nservice/nginx unchanged\n');
    const patch = requests.find((r) => r.method === 'PATCH');
    t.equal(patch?.type, 'application/strategic-merge-patch+json');
    const body = JSON.parse(patch!.body);
    t.equal(body.spec.replicas, 3);
    t.same(body.spec.template.spec['$setElementOrder/containers'], [{ name: 'nginx' }, { name: 'sidecar' }]);
    t.same(body.spec.template.spec.containers, [{ name: 'nginx', resources: { limits: { memory: '256Mi' } } }]);
    t.notOk(requests.some((r) => r.url.startsWith('/openapi/v2')), 'OpenAPI v2 was not needed');
  });

  t.test('kubectl reports the server-side validation errors', async (t) => {
    const unknown = await kubectl(['apply', '-f', '-'], manifest(1, '1Gi').replace('  replicas: 1', '  replicas: 1\n  replicaz: 2').replace(/name: nginx/g, 'name: typo'));
    t.equal(unknown.code, 1);
    t.match(unknown.stderr, /strict decoding error: unknown field "spec.replicaz"/);
    const mismatch = await kubectl(['create', '-f', '-'], manifest(1, '1Gi').replace(/name: nginx\n  labels/, 'name: other\n  labels').replace('      labels:\n        app: nginx', '      labels:\n        app: web'));
    t.equal(mismatch.code, 1);
    t.match(mismatch.stderr, /The Deployment "other" is invalid: spec.template.metadata.labels: Invalid value: \{"app":"web"\}: `selector` does not match template `labels`/);
  });

  t.test('kubectl explain renders every kind from the v3 documents', async (t) => {
    const ports = await kubectl(['explain', 'deployment.spec.template.spec.containers.ports']);
    t.equal(ports.code, 0, ports.stderr);
    t.match(ports.stdout, /KIND:\s+Deployment/);
    t.match(ports.stdout, /containerPort\s+<integer> -required-/);
    t.match(ports.stdout, /enum: SCTP, TCP, UDP/);
    const svc = await kubectl(['explain', 'svc.spec.ports.targetPort']);
    t.match(svc.stdout, /FIELD: targetPort <IntOrString>/);
    const meta = await kubectl(['explain', 'pods.metadata']);
    t.match(meta.stdout, /Standard object's metadata/);
    for (const k of KINDS) {
      const out = await kubectl(['explain', k.plural, '--api-version', apiVersionOf(k)]);
      t.equal(out.code, 0, `${k.plural}: ${out.stderr}`);
      t.match(out.stdout, new RegExp(`KIND:\\s+${k.kind}\\n`), k.kind);
    }
  });
}
