// The client verbs end to end: `node bin/flotilla.js …` as a child process
// against three real servers, checking what a user sees (stdout, stderr,
// exit code) and what the cluster holds afterwards.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { FLOTILLA_BIN, ROOT, freePort, tempDir, waitFor } from '../harness/procs.ts';

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** Runs the CLI in `cwd` (a directory without .flotilla/ unless a test makes one). */
function run(args: string[], opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...opts.env };
    if (!opts.env?.FLOTILLA_SERVER) delete env.FLOTILLA_SERVER;
    const child = spawn(process.execPath, [FLOTILLA_BIN, ...args], { cwd: opts.cwd ?? ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`flotilla ${args.join(' ')} did not finish in time; stdout: ${out} stderr: ${err}`));
    }, opts.timeoutMs ?? 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
    child.stdin.end(opts.input ?? '');
  });
}

const APP = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
    tier: frontend
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
`;

t.test('flotilla client verbs against a 3-server cluster', async (t) => {
  const cluster = await FlotillaCluster.start(3);
  t.teardown(() => cluster.stop());
  const server = cluster.urls.join(',');
  const work = tempDir('cli');
  const cli = (...args: string[]) => run([...args, '--server', server], { cwd: work });
  const ok = async (args: string[], what = args.join(' ')): Promise<string> => {
    const r = await cli(...args);
    t.equal(r.code, 0, `${what} exits 0${r.code ? `: ${r.err}` : ''}`);
    return r.out;
  };
  const file = (name: string, text: string) => {
    const p = join(work, name);
    writeFileSync(p, text);
    return p;
  };
  const app = file('app.yaml', APP);

  await t.test('apply creates, then reports unchanged, then configured', async (t) => {
    t.equal(await ok(['apply', '-f', app]), 'deployment.apps/web created\nservice/web created\n');
    t.equal(await ok(['apply', '-f', app]), 'deployment.apps/web unchanged\nservice/web unchanged\n', 'a defaulted live object is still "unchanged"');
    // Change the replicas and drop a label: the label is deleted, the rest kept.
    const v2 = file('app-v2.yaml', APP.replace('replicas: 2', 'replicas: 3').replace('    tier: frontend\n', ''));
    t.equal(await ok(['apply', '-f', v2]), 'deployment.apps/web configured\nservice/web unchanged\n');
    const d = JSON.parse(await ok(['get', 'deployment', 'web', '-o', 'json']));
    t.equal(d.spec.replicas, 3);
    t.same(d.metadata.labels, { app: 'web' }, 'the label removed from the manifest is gone');
    t.ok(d.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'], 'the last-applied configuration is recorded');
    t.equal(await ok(['apply', '-f', v2]), 'deployment.apps/web unchanged\nservice/web unchanged\n');
    t.equal(await ok(['apply', '-f', v2, '-o', 'name']), 'deployment.apps/web\nservice/web\n');
  });

  await t.test('apply from a directory and from stdin; kind: List; -n', async (t) => {
    const dir = join(work, 'manifests');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-a\ndata:\n  k: v\n');
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm-b' } }] }));
    writeFileSync(join(dir, 'README.md'), '# not a manifest');
    t.equal(await ok(['apply', '-f', dir]), 'configmap/cm-a created\nconfigmap/cm-b created\n');
    const r = await run(['apply', '-f', '-', '-n', 'kube-system', '--server', server], {
      cwd: work, input: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-stdin\n',
    });
    t.equal(r.code, 0, r.err);
    t.equal(r.out, 'configmap/from-stdin created\n');
    t.match(await ok(['get', 'cm', 'from-stdin', '-n', 'kube-system', '-o', 'name']), 'configmap/from-stdin');
    const clash = await run(['apply', '-f', '-', '-n', 'default', '--server', server], {
      cwd: work, input: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: kube-system\n',
    });
    t.equal(clash.code, 1);
    t.match(clash.err, /the namespace from the provided object "kube-system" does not match the namespace "default"/);
  });

  await t.test('apply --server-side', async (t) => {
    const ss = file('ss.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: "1"\n');
    t.equal(await ok(['apply', '--server-side', '-f', ss]), 'configmap/ssa serverside-applied\n');
    writeFileSync(ss, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  b: "2"\n');
    t.equal(await ok(['apply', '--server-side', '-f', ss]), 'configmap/ssa serverside-applied\n');
    t.same(JSON.parse(await ok(['get', 'cm', 'ssa', '-o', 'json'])).data, { b: '2' }, 'the field no longer applied was removed');
  });

  await t.test('get: tables like kubectl', async (t) => {
    const table = await ok(['get', 'deployments']);
    const lines = table.trimEnd().split('\n');
    t.match(lines[0], /^NAME {3,}READY {3,}UP-TO-DATE {3}AVAILABLE {3}AGE$/, 'header, 3-space gutters');
    t.match(lines[1], /^web {3,}\d\/3 {3,}\d+ {3,}\d+ {3,}\S+$/);
    t.equal(lines[0].indexOf('READY'), lines[1].search(/\d\/3/), 'columns aligned');
    t.match(await ok(['get', 'deploy', '-o', 'wide']), /CONTAINERS\s+IMAGES\s+SELECTOR\n.*web\s+nginx:1\.27\s+app=web/);
    t.notMatch(table, /IMAGES/, 'wide columns only with -o wide');
    t.match(await ok(['get', 'svc', 'web']), /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\nweb\s+ClusterIP\s+/);
    t.match(await ok(['get', 'deploy/web', 'svc/web']), /deployment\.apps\/web[\s\S]*\n\nNAME[\s\S]*service\/web/, 'several kinds: kind/name, blank line between');
    const all = await ok(['get', 'configmaps', '-A']);
    t.match(all, /^NAMESPACE\s+NAME\s+DATA\s+AGE\n/);
    t.match(all, /\nkube-system\s+from-stdin\s+0\s+/);
    t.match(all, /\ndefault\s+cm-a\s+1\s+/);
    t.match(await ok(['get', 'namespaces']), /default\s+Active/, 'cluster-scoped kinds');
    t.equal(await ok(['get', 'cm', '-l', 'nothing=here']), '');
    const none = await cli('get', 'pods', '-n', 'empty');
    t.equal(none.code, 0);
    t.equal(none.err, 'No resources found in empty namespace.\n');
    t.equal(await ok(['get', 'cm', 'cm-a', 'cm-b', '-o', 'name']), 'configmap/cm-a\nconfigmap/cm-b\n');
    t.match(await ok(['get', 'cm', '--field-selector', 'metadata.name=cm-b']), /^NAME\s+DATA\s+AGE\ncm-b\s/);
  });

  await t.test('get -o yaml / json', async (t) => {
    const svc = YAML.parse(await ok(['get', 'svc', 'web', '-o', 'yaml']));
    t.equal(svc.kind, 'Service');
    t.equal(svc.apiVersion, 'v1');
    t.equal(svc.spec.ports[0].port, 80);
    const list = YAML.parse(await ok(['get', 'deploy', '-o', 'yaml']));
    t.equal(list.kind, 'List');
    t.same(list.items.map((i: { kind: string; metadata: { name: string } }) => `${i.kind}/${i.metadata.name}`), ['Deployment/web']);
    const j = JSON.parse(await ok(['get', 'configmaps', '-o', 'json', '-l', 'x=y']));
    t.same(j, { apiVersion: 'v1', items: [], kind: 'List', metadata: { resourceVersion: '' } }, 'an empty List');
  });

  await t.test('scale through the scale subresource', async (t) => {
    t.equal(await ok(['scale', 'deploy', 'web', '--replicas', '5']), 'deployment.apps/web scaled\n');
    t.equal(JSON.parse(await ok(['get', 'deploy', 'web', '-o', 'json'])).spec.replicas, 5);
    t.equal(await ok(['scale', 'deployment.apps/web', '--replicas=1', '--current-replicas=5']), 'deployment.apps/web scaled\n');
    const pre = await cli('scale', 'deploy', 'web', '--replicas', '4', '--current-replicas', '9');
    t.equal(pre.code, 1);
    t.match(pre.err, /Expected replicas to be 9, was 1/);
    const cm = await cli('scale', 'configmap', 'cm-a', '--replicas', '2');
    t.equal(cm.code, 1);
    t.match(cm.err, /cannot be scaled/);
    const missing = await cli('scale', 'deploy', 'nope', '--replicas', '2');
    t.equal(missing.code, 1);
    t.match(missing.err, /^Error from server \(NotFound\): .*"nope" not found/);
  });

  await t.test('get -w prints the table, then each change', async (t) => {
    const child = spawn(process.execPath, [FLOTILLA_BIN, 'get', 'configmaps', '-w', '--server', server], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await waitFor('the initial table', () => /^NAME\s+DATA\s+AGE\n/.test(out) && out.includes('cm-a'), 30_000);
    await ok(['apply', '-f', file('later.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: later\ndata: {a: b, c: d}\n')]);
    await waitFor('the new object as a row', () => /\nlater\s+2\s+\S+\n/.test(out), 30_000);
    await ok(['delete', 'cm', 'later']);
    await waitFor('the deletion as a row', () => (out.match(/\nlater\s+2/g) ?? []).length >= 2, 30_000);
    t.equal((out.match(/^NAME/gm) ?? []).length, 1, 'the header once');
  });

  await t.test('delete by name and with -f, waiting until gone', async (t) => {
    t.equal(await ok(['delete', 'svc', 'web']), 'service "web" deleted\n');
    const gone = await cli('get', 'svc', 'web');
    t.equal(gone.code, 1);
    t.equal(gone.err, 'Error from server (NotFound): services "web" not found\n');
    const r = await cli('delete', '-f', app);
    t.equal(r.code, 1, 'one of the objects was already gone');
    t.equal(r.out, 'deployment.apps "web" deleted\n');
    t.equal(r.err, 'Error from server (NotFound): services "web" not found\n');
    t.equal(await ok(['delete', '-f', app, '--ignore-not-found']), '');
    t.equal(await ok(['delete', 'cm', 'cm-a', 'cm-b', '--wait=false']), 'configmap "cm-a" deleted\nconfigmap "cm-b" deleted\n');
    t.equal(await ok(['delete', 'cm', '-l', 'nothing=here']), '');
  });

  await t.test('delete waits for finalizers, and gives up after --timeout', async (t) => {
    const held = file('held.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n');
    await ok(['apply', '-f', held]);
    const timedOut = await cli('delete', 'cm', 'held', '--timeout', '1s');
    t.equal(timedOut.code, 1);
    t.equal(timedOut.out, 'configmap "held" deleted\n');
    t.equal(timedOut.err, 'error: timed out waiting for the condition on configmaps/held\n');
    t.ok(JSON.parse(await ok(['get', 'cm', 'held', '-o', 'json'])).metadata.deletionTimestamp, 'still there, being deleted');
    // A waiting delete returns as soon as the last finalizer goes.
    const waiting = cli('delete', 'cm', 'held');
    await new Promise((r) => setTimeout(r, 1500));
    const released = await run(['apply', '-f', '-', '--server', server], { cwd: work, input: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n' });
    t.equal(released.code, 0, released.err);
    const done = await waiting;
    t.equal(done.code, 0, done.err);
    t.equal(done.out, 'configmap "held" deleted\n');
    t.equal((await cli('get', 'cm', 'held')).code, 1, 'gone');
  });

  await t.test('errors: kubectl messages, exit code 1', async (t) => {
    const nf = await cli('get', 'pod', 'nope');
    t.equal(nf.code, 1);
    t.equal(nf.out, '');
    t.equal(nf.err, 'Error from server (NotFound): pods "nope" not found\n');
    const kind = await cli('get', 'widgets');
    t.equal(kind.code, 1);
    t.equal(kind.err, 'error: the server doesn\'t have a resource type "widgets"\n');
    const flag = await cli('get', 'pods', '--bogus');
    t.equal(flag.code, 1);
    t.match(flag.err, /^error: unknown flag: --bogus\nSee 'flotilla get --help' for usage\.\n$/);
    const bad = file('bad.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [\n');
    const parse = await cli('apply', '-f', bad);
    t.equal(parse.code, 1);
    t.match(parse.err, new RegExp(`^error: error parsing ${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: line \\d+, column \\d+: `));
    const invalid = await cli('apply', '-f', file('invalid.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\n'));
    t.equal(invalid.code, 1);
    t.match(invalid.err, /^Error from server \(Invalid\): error when creating ".*invalid\.yaml": ConfigMap "Not_Valid" is invalid: metadata\.name/);
    const unknownKind = await cli('apply', '-f', file('widget.yaml', 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n'));
    t.equal(unknownKind.code, 1);
    t.match(unknownKind.err, /no matches for kind "Widget" in version "example\.com\/v1"/);
    const output = await cli('get', 'pods', '-o', 'xml');
    t.equal(output.code, 1);
    t.match(output.err, /unable to match a printer suitable for the output format "xml"/);
    const help = await cli('get', '--help');
    t.equal(help.code, 0);
    t.match(help.out, /^Display one or many resources\./);
  });

  await t.test('server selection: failover past a dead server, $FLOTILLA_SERVER, .flotilla/cluster.json', async (t) => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const r = await run(['get', 'ns', 'default', '-o', 'name', '--server', `${dead},${server}`], { cwd: work });
    t.equal(r.code, 0, r.err);
    t.equal(r.out, 'namespace/default\n');
    const env = await run(['get', 'ns', 'default', '-o', 'name'], { cwd: work, env: { FLOTILLA_SERVER: server } });
    t.equal(env.out, 'namespace/default\n');
    const dir = tempDir('cli-cwd');
    mkdirSync(join(dir, '.flotilla'));
    writeFileSync(join(dir, '.flotilla', 'cluster.json'), JSON.stringify({ servers: cluster.members.map((m) => ({ id: m.id, api: m.api, peer: m.peer })), nats: 'nats://127.0.0.1:4222' }));
    const file = await run(['get', 'ns', 'default', '-o', 'name'], { cwd: dir });
    t.equal(file.code, 0, file.err);
    t.equal(file.out, 'namespace/default\n');
    const nothing = await run(['get', 'pods'], { cwd: tempDir('cli-none') });
    t.equal(nothing.code, 1);
    t.match(nothing.err, /^error: no Flotilla server configured: point the client at a cluster with --server/);
    const down = await run(['get', 'pods', '--server', dead, '--request-timeout', '2s'], { cwd: work });
    t.equal(down.code, 1);
    t.match(down.err, /^Unable to connect to the server: unable to reach a Flotilla server/);
  });

  await t.test('cluster status', async (t) => {
    const status = await ok(['cluster', 'status']);
    const lines = status.trimEnd().split('\n');
    t.match(lines[0], /^ID\s+PEER\s+API\s+VOTER\s+ROLE\s+TERM\s+COMMIT\s+APPLIED$/);
    t.equal(lines.length, 4, 'three members');
    t.equal(lines.filter((l) => /\sleader\s/.test(l)).length, 1, 'one leader');
    t.equal(lines.filter((l) => /\sfollower\s/.test(l)).length, 2, 'two followers');
    for (const m of cluster.members) t.match(status, new RegExp(`\\n${m.id}\\s+${m.peer.replace(/\./g, '\\.')}\\s+http://${m.api.replace(/\./g, '\\.')}\\s+true\\s`));
    const js = JSON.parse(await ok(['cluster', 'status', '-o', 'json']));
    t.equal(js.members.length, 3);
    t.ok(js.members.every((m: { status?: { appliedIndex: number } }) => m.status && m.status.appliedIndex > 0));
    const usage = await cli('cluster', 'add-member', '--id', 's5');
    t.equal(usage.code, 1);
    t.match(usage.err, /add-member needs --id ID and --peer HOST:PORT/);
    const sub = await cli('cluster', 'frobnicate');
    t.equal(sub.code, 1);
    t.match(sub.err, /unknown cluster command "frobnicate"/);
  });

  await t.test('the CLI rides out the loss of the leader', async (t) => {
    const leader = await cluster.leader();
    await cluster.kill(leader);
    t.equal(await ok(['apply', '-f', file('after.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after-failover\n')]), 'configmap/after-failover created\n');
    t.equal(await ok(['get', 'cm', 'after-failover', '-o', 'name']), 'configmap/after-failover\n');
    const st = await ok(['cluster', 'status']);
    t.match(st, new RegExp(`\\n${leader}\\s.*\\sunreachable\\s`), 'the killed member shows as unreachable');
    t.equal(st.split('\n').filter((l) => /\sleader\s/.test(l)).length, 1, 'a new leader');
    cluster.startMember(leader);
    await cluster.waitReady();
  });

  await t.test('cluster add-member and remove-member', async (t) => {
    const s4 = await cluster.addServer('s4');
    // The admin token of any member, read from its data directory.
    t.equal(await ok(['cluster', 'add-member', '--id', 's4', '--peer', s4.peer, '--timeout', '90s', '--data', cluster.members[0].dataDir]), 'member "s4" added (voter)\n');
    await waitFor('s4 in the status', async () => {
      const r = await cli('cluster', 'status');
      return /\ns4\s+\S+\s+\S+\s+true\s+follower\s/.test(r.out);
    }, 30_000, 500);
    t.equal(await ok(['cluster', 'remove-member', '--id', 's4', '--data', cluster.members[1].dataDir]), 'member "s4" removed\n');
    t.notMatch(await ok(['cluster', 'status']), /\ns4\s/);
  });
});
