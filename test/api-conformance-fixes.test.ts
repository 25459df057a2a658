// Kubernetes behaviours that real clients depend on, checked against 3 real
// servers with the real kubectl, the Python `kubernetes` client and plain HTTP:
// server-side dry run on every mutating verb, boolean query parameters,
// no-op writes, OpenAPI v2 in protobuf, and pods/exec|attach|portforward.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { tempDir } from '../harness/procs.ts';

const hasKubectl = spawnSync('sh', ['-c', 'command -v kubectl'], { stdio: 'ignore' }).status === 0;
const hasPythonClient = spawnSync('/usr/bin/python3', ['-c', 'import kubernetes'], { stdio: 'ignore' }).status === 0;

const CM = '/api/v1/namespaces/default/configmaps';

async function call(base: string, method: string, path: string, body?: unknown, type = 'application/json'): Promise<{ status: number; body: any; text: string }> {
  const r = await request(`${base}${path}`, {
    method: method as 'GET',
    headers: body !== undefined ? { 'content-type': type } : {},
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.body.text();
  let parsed: any;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: r.statusCode, body: parsed, text };
}

/** The events a watch from `rv` delivers within a short timeoutSeconds (the server ends the stream). */
async function watchFrom(base: string, path: string, rv: string, seconds = 2): Promise<any[]> {
  const r = await request(`${base}${path}?watch=true&resourceVersion=${rv}&timeoutSeconds=${seconds}`, { headersTimeout: 30_000, bodyTimeout: 30_000 });
  const text = await r.body.text();
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

t.test('API conformance fixes', async (t) => {
  const c = await FlotillaCluster.start(3);
  t.teardown(() => c.stop());
  const [u1, u2] = c.urls;
  const dir = tempDir('conformance');
  const cache = join(dir, 'kubectl-cache');
  const kubectl = (...args: string[]) => {
    const r = spawnSync('kubectl', ['--kubeconfig', c.kubeconfig, '--cache-dir', cache, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  await t.test('no-op writes keep the resourceVersion and emit no event', async (t) => {
    const created = await call(u1, 'POST', CM, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'noop', labels: { a: 'b' } }, data: { k: 'v' } });
    t.equal(created.status, 201);
    const rv = created.body.metadata.resourceVersion;
    const empty = await call(u2, 'PATCH', `${CM}/noop`, {}, 'application/merge-patch+json');
    t.equal(empty.status, 200);
    t.equal(empty.body.metadata.resourceVersion, rv, 'empty merge patch: same resourceVersion');
    const same = await call(u1, 'PATCH', `${CM}/noop`, { data: { k: 'v' } }, 'application/strategic-merge-patch+json');
    t.equal(same.body.metadata.resourceVersion, rv, 'patch to the same values: same resourceVersion');
    const got = await call(u1, 'GET', `${CM}/noop`);
    const put = await call(u2, 'PUT', `${CM}/noop`, got.body);
    t.equal(put.status, 200);
    t.equal(put.body.metadata.resourceVersion, rv, 'PUT of the unchanged object: same resourceVersion');
    t.same(put.body, got.body, 'answered with the stored object');
    // A real change afterwards: the watch from the creation sees it and nothing before it.
    const changed = await call(u1, 'PATCH', `${CM}/noop`, { data: { k: 'w' } }, 'application/merge-patch+json');
    t.not(changed.body.metadata.resourceVersion, rv, 'a real change gets a new resourceVersion');
    const events = (await watchFrom(u2, CM, rv)).filter((e) => e.object?.metadata?.name === 'noop');
    t.same(events.map((e) => [e.type, e.object.data.k]), [['MODIFIED', 'w']], 'only the real change is a watch event');
  });

  await t.test('boolean query parameters parse like strconv.ParseBool', async (t) => {
    const list = await call(u1, 'GET', `${CM}?limit=1`);
    const rv = list.body.metadata.resourceVersion;
    for (const v of ['True', 'TRUE', 't', 'T', '1', 'true']) {
      const r = await request(`${u1}${CM}?watch=${v}&resourceVersion=${rv}&timeoutSeconds=1`);
      const text = await r.body.text();
      t.equal(r.statusCode, 200);
      t.notMatch(text, /"kind":"ConfigMapList"/, `watch=${v} is a watch, not a list`);
    }
    for (const v of ['False', 'FALSE', 'f', 'F', '0', 'false']) {
      const r = await call(u1, 'GET', `${CM}?watch=${v}`);
      t.equal(r.body?.kind, 'ConfigMapList', `watch=${v} is a list`);
    }
    for (const q of ['watch=yes', 'watch=tRuE', 'watch', 'allowWatchBookmarks=2', 'pretty=nope']) {
      const r = await call(u1, 'GET', `${CM}?${q}`);
      t.equal(r.status, 400, `${q}: 400`);
      t.equal(r.body?.reason, 'BadRequest');
    }
    const force = await call(u1, 'PATCH', `${CM}/noop?force=maybe`, {}, 'application/merge-patch+json');
    t.equal(force.status, 400, 'force=maybe: 400');
  });

  await t.test('the Python kubernetes client: list, create, patch, watch', { skip: hasPythonClient ? false : 'Debian python3-kubernetes is not installed' }, async (t) => {
    const script = file('client.py', `
import json, sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
out = {}
v1.create_namespaced_config_map('default', client.V1ConfigMap(metadata=client.V1ObjectMeta(name='py-cm'), data={'a': '1'}))
lst = v1.list_namespaced_config_map('default')
out['listed'] = sorted(i.metadata.name for i in lst.items)
rv = lst.metadata.resource_version
p = v1.patch_namespaced_config_map('py-cm', 'default', {'data': {'a': '2'}})
out['patched'] = p.data['a']
seen = []
for ev in watch.Watch().stream(v1.list_namespaced_config_map, 'default', resource_version=rv, timeout_seconds=5):
    seen.append([ev['type'], ev['object'].metadata.name, (ev['object'].data or {}).get('a')])
    if ev['object'].metadata.name == 'py-cm':
        break
out['watched'] = seen
print(json.dumps(out))
`);
    const r = spawnSync('/usr/bin/python3', [script, c.kubeconfig], { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 0, `python client: ${r.stderr.slice(-800)}`);
    const out = JSON.parse(r.stdout);
    t.ok(out.listed.includes('py-cm'), 'list shows the created ConfigMap');
    t.equal(out.patched, '2', 'patch');
    t.same(out.watched.at(-1), ['MODIFIED', 'py-cm', '2'], 'the watch (watch=True) sees the change');
  });

  await t.test('server-side dry run never writes', { skip: hasKubectl ? false : 'kubectl is not installed' }, async (t) => {
    const cm1 = file('dry-cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n  namespace: default\ndata:\n  a: "1"\n');
    t.equal(kubectl('apply', '-f', cm1).code, 0, 'apply');
    const before = (await call(u1, 'GET', `${CM}/dry`)).body;
    const unchanged = async (what: string) => {
      const now = (await call(u2, 'GET', `${CM}/dry`)).body;
      t.same(now, before, `${what}: the stored object is unchanged`);
    };
    const cm2 = file('dry-cm2.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n  namespace: default\n  labels:\n    l: x\ndata:\n  a: "2"\n');

    const diff = kubectl('diff', '-f', cm2);
    t.equal(diff.code, 1, `kubectl diff exits 1 when there is a difference: ${diff.err.slice(0, 300)}`);
    t.match(diff.out, /-\s+a: "1"\n\+\s+a: "2"/, 'diff shows the change');
    await unchanged('kubectl diff');
    const ssDiff = kubectl('diff', '--server-side', '--force-conflicts', '-f', cm2);
    t.equal(ssDiff.code, 1, 'kubectl diff --server-side exits 1');
    await unchanged('kubectl diff --server-side');

    let r = kubectl('apply', '--dry-run=server', '-f', cm2);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /configmap\/dry configured \(server dry run\)/);
    await unchanged('apply --dry-run=server');

    r = kubectl('apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', cm2, '-o', 'json');
    t.equal(r.code, 0, r.err);
    t.equal(JSON.parse(r.out).data.a, '2', 'the answer shows what would be stored');
    await unchanged('server-side apply --dry-run=server');

    r = kubectl('label', 'cm', 'dry', 'x=y', '--dry-run=server', '-o', 'json');
    t.equal(r.code, 0, r.err);
    t.equal(JSON.parse(r.out).metadata.labels?.x, 'y', 'label: the answer has the label');
    await unchanged('label --dry-run=server');

    r = kubectl('annotate', 'cm', 'dry', 'x=y', '--dry-run=server');
    t.equal(r.code, 0, r.err);
    await unchanged('annotate --dry-run=server');

    r = kubectl('replace', '--dry-run=server', '-f', cm2);
    t.equal(r.code, 0, r.err);
    await unchanged('replace (PUT) --dry-run=server');

    r = kubectl('patch', 'cm', 'dry', '--type=json', '-p', '[{"op":"add","path":"/data/b","value":"3"}]', '--dry-run=server');
    t.equal(r.code, 0, r.err);
    await unchanged('json patch --dry-run=server');

    r = kubectl('delete', 'cm', 'dry', '--dry-run=server');
    t.equal(r.code, 0, r.err);
    await unchanged('delete --dry-run=server');

    // Validation still runs in a dry run.
    const bad = await call(u1, 'PUT', `${CM}/dry?dryRun=All`, { ...before, metadata: { ...before.metadata, name: 'other' } });
    t.equal(bad.status >= 400, true, 'an invalid update is refused in a dry run too');
    const badValue = await call(u1, 'PATCH', `${CM}/dry?dryRun=Some`, {}, 'application/merge-patch+json');
    t.equal(badValue.status, 422, 'dryRun=Some: unsupported value');

    const dep = file('dry-deploy.yaml', 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dryd\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: dryd}\n  template:\n    metadata:\n      labels: {app: dryd}\n    spec:\n      containers:\n      - name: c\n        image: nginx\n');
    t.equal(kubectl('apply', '-f', dep).code, 0);
    r = kubectl('scale', 'deploy', 'dryd', '--replicas=5', '--dry-run=server');
    t.equal(r.code, 0, r.err);
    t.equal((await call(u2, 'GET', '/apis/apps/v1/namespaces/default/deployments/dryd')).body.spec.replicas, 1, 'scale --dry-run=server: replicas unchanged');
  });

  await t.test('a kind the server does not have: "no matches for kind"', { skip: hasKubectl ? false : 'kubectl is not installed' }, async (t) => {
    const frob = file('frob.yaml', 'apiVersion: example.com/v1\nkind: Frobnicator\nmetadata:\n  name: f1\n');
    const r = kubectl('apply', '-f', frob);
    t.equal(r.code, 1);
    t.match(r.err, /resource mapping not found for name: "f1"[\s\S]*no matches for kind "Frobnicator" in version "example.com\/v1"/);
    t.notMatch(r.err, /proto: cannot parse/);
    const pb = await request(`${u1}/openapi/v2`, { headers: { accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' } });
    t.equal(pb.statusCode, 200);
    t.equal(pb.headers['content-type'], 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf', 'protobuf when asked for protobuf');
    await pb.body.dump();
    const js = await call(u1, 'GET', '/openapi/v2');
    t.equal(js.body.swagger, '2.0', 'JSON otherwise');
  });

  await t.test('pods/exec of an unscheduled pod, attach, portforward: clear errors', { skip: hasKubectl ? false : 'kubectl is not installed' }, async (t) => {
    t.equal(kubectl('run', 'p1', '--image=nginx', '--restart=Never').code, 0);
    // exec is proxied to the pod's node agent (test/agent.test.ts); a pod on no node has none.
    let r = kubectl('exec', 'p1', '--', 'ls');
    t.equal(r.code, 1);
    t.match(r.err, /Error from server \(BadRequest\): pod p1 does not have a host assigned/);
    t.notMatch(r.err, /NotFound/);
    r = kubectl('attach', 'p1');
    t.match(r.err, /BadRequest\): pod p1 does not have a host assigned/, 'attach goes to the node agent too');
    // port-forward only tries a running pod.
    const st = await call(u1, 'PATCH', '/api/v1/namespaces/default/pods/p1/status', { status: { phase: 'Running' } }, 'application/merge-patch+json');
    t.equal(st.status, 200);
    r = kubectl('port-forward', 'pod/p1', '0:80', '--pod-running-timeout=5s');
    t.equal(r.code, 1);
    t.match(r.err, /pod p1 does not have a host assigned/, 'so does port-forward');
    r = kubectl('exec', 'nope', '--', 'ls');
    t.match(r.err, /NotFound\): pods "nope" not found/, 'a pod that does not exist is still NotFound');
    const raw = await call(u2, 'POST', '/api/v1/namespaces/default/pods/p1/exec?command=ls&stdout=true');
    t.equal(raw.status, 400, 'exec without an upgrade');
    t.match(raw.body.message, /exec needs an upgraded connection/);
  });
});
