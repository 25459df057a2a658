// HTTPS and client-certificate authentication with the real kubectl:
// `flotilla certs` makes the CA, the serving certificate and users'
// certificates; a server started with --tls-cert-file/--tls-private-key-file
// and --client-ca-file under RBAC knows each user by its certificate (CN =
// user, O = groups), refuses a certificate of another CA, and does not speak
// plain HTTP on its TLS port.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { kubeconfigYaml } from '../agents/client/kubeconfig.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing, runKubectl } from '../harness/kubectl.ts';
import { FLOTILLA_BIN, ROOT, tempDir } from '../harness/procs.ts';

function flotilla(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [FLOTILLA_BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

const skip = kubectlMissing(t);

t.test('TLS and x509 client certificates with kubectl', { skip }, async (t) => {
  const work = tempDir('tls-auth');
  const pki = join(work, 'pki');
  const other = join(work, 'other-pki');
  const cache = join(work, 'kube-cache');

  const made = await flotilla(['certs', '--dir', pki, '--server-ip', '127.0.0.1', '--client', 'admin/system:masters', '--client', 'alice', '--client', 'bob/dev-team,qa']);
  t.equal(made.code, 0, `flotilla certs: ${made.err}`);
  for (const f of ['ca', 'apiserver', 'admin', 'alice', 'bob']) {
    t.equal(statSync(join(pki, `${f}.key`)).mode & 0o777, 0o600, `${f}.key is 0600`);
    t.ok(statSync(join(pki, `${f}.crt`)).isFile(), `${f}.crt written`);
  }
  const caBefore = readFileSync(join(pki, 'ca.crt'), 'utf8');
  t.equal((await flotilla(['certs', '--dir', other, '--client', 'admin/system:masters'])).code, 0, 'a second, unrelated CA');

  mkdirSync(join(work, 'cluster'));
  const cluster = await FlotillaCluster.start(1, { dir: join(work, 'cluster'), tls: { pkiDir: pki }, args: ['--authorization-mode', 'RBAC'] });
  t.teardown(() => cluster.stop());
  const url = cluster.urls[0];
  t.match(url, /^https:\/\//, 'the harness talks https');

  // Run again with the API's address: nothing is replaced, and each user gets a kubeconfig.
  const again = await flotilla(['certs', '--dir', pki, '--client', 'alice', '--client', 'bob/dev-team,qa', '--api-url', url]);
  t.equal(again.code, 0, `flotilla certs again: ${again.err}`);
  t.match(again.out, /kept\s+\S+ca\.crt/, 'the CA is kept');
  t.equal(readFileSync(join(pki, 'ca.crt'), 'utf8'), caBefore, 'ca.crt unchanged');
  const changed = await flotilla(['certs', '--dir', pki, '--client', 'alice/system:masters']);
  t.not(changed.code, 0, 'asking for other groups on an existing certificate is refused');
  t.match(changed.err, /alice\.crt exists but its groups are \[\], not \[system:masters\]/);

  await t.test('the admin certificate (system:masters) can do everything', async (t) => {
    const kc = cluster.kubeconfig;
    const c = await runKubectl(kc, cache, ['create', 'configmap', 'tls-cm', '--from-literal=k=v']);
    t.equal(c.code, 0, `create: ${c.err}`);
    const g = await runKubectl(kc, cache, ['get', 'configmap', 'tls-cm', '-o', 'json']);
    t.equal(g.code, 0, `get: ${g.err}`);
    t.equal(JSON.parse(g.out).data.k, 'v');
    const who = await runKubectl(kc, cache, ['auth', 'whoami', '-o', 'json']);
    t.equal(who.code, 0, who.err);
    t.same(JSON.parse(who.out).status.userInfo, { username: 'admin', groups: ['system:masters', 'system:authenticated'] });
  });

  await t.test('a certificate without rights is known but forbidden', async (t) => {
    const kc = join(pki, 'alice.kubeconfig');
    const r = await runKubectl(kc, cache, ['get', 'pods', '-n', 'default']);
    t.not(r.code, 0);
    t.match(r.err, 'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"');
    const d = await runKubectl(kc, cache, ['delete', 'configmap', 'tls-cm']);
    t.not(d.code, 0);
    t.match(d.err, 'configmaps "tls-cm" is forbidden: User "alice" cannot delete resource "configmaps" in API group "" in the namespace "default"');
  });

  await t.test('kubectl auth whoami shows CN and O', async (t) => {
    const r = await runKubectl(join(pki, 'bob.kubeconfig'), cache, ['auth', 'whoami', '-o', 'json']);
    t.equal(r.code, 0, r.err);
    t.same(JSON.parse(r.out).status.userInfo, { username: 'bob', groups: ['dev-team', 'qa', 'system:authenticated'] });
  });

  await t.test('a certificate from another CA is refused', async (t) => {
    const ca = readFileSync(join(pki, 'ca.crt'));
    const foreign = new Agent({ connect: { ca, cert: readFileSync(join(other, 'admin.crt')), key: readFileSync(join(other, 'admin.key')) } });
    t.teardown(() => foreign.close());
    const r = await request(`${url}/api/v1/namespaces/default/configmaps/tls-cm`, { dispatcher: foreign });
    t.equal(r.statusCode, 401, 'Unauthorized, not anonymous and not admin');
    t.match(await r.body.json(), { kind: 'Status', reason: 'Unauthorized', code: 401 });

    // kubectl with the other CA's admin pair: Go does not even offer a certificate
    // the server's CA list does not name, so it is anonymous, and RBAC refuses that.
    const kc = join(work, 'foreign.kubeconfig');
    writeFileSync(kc, kubeconfigYaml({ server: url, ca: join(pki, 'ca.crt'), cert: join(other, 'admin.crt'), key: join(other, 'admin.key'), user: 'admin' }));
    const k = await runKubectl(kc, cache, ['get', 'configmap', 'tls-cm']);
    t.not(k.code, 0);
    t.match(k.err, /Forbidden|Unauthorized/);
    t.notMatch(k.out, 'tls-cm');

    // And a server certificate of another CA is not trusted by kubectl.
    const wrongCa = join(work, 'wrong-ca.kubeconfig');
    writeFileSync(wrongCa, kubeconfigYaml({ server: url, ca: join(other, 'ca.crt'), cert: join(pki, 'admin.crt'), key: join(pki, 'admin.key'), user: 'admin' }));
    const w = await runKubectl(wrongCa, cache, ['get', 'configmap', 'tls-cm']);
    t.not(w.code, 0);
    t.match(w.err, /certificate signed by unknown authority|x509/);
  });

  await t.test('no certificate: still served (asked for, not required), as anonymous', async (t) => {
    const anon = new Agent({ connect: { ca: readFileSync(join(pki, 'ca.crt')) } });
    t.teardown(() => anon.close());
    const h = await request(`${url}/healthz`, { dispatcher: anon });
    t.equal(h.statusCode, 200);
    t.equal(await h.body.text(), 'ok');
    const r = await request(`${url}/api/v1/namespaces/default/configmaps`, { dispatcher: anon });
    t.equal(r.statusCode, 403);
    t.match((await r.body.json() as { message: string }).message, 'User "system:anonymous" cannot list resource "configmaps"');
  });

  await t.test('plain HTTP to the TLS port fails', async (t) => {
    const plain = url.replace(/^https:/, 'http:');
    await t.rejects(request(`${plain}/healthz`, { headersTimeout: 10_000 }), 'no HTTP answer on the TLS port');
    const kc = join(work, 'plain.kubeconfig');
    writeFileSync(kc, ['apiVersion: v1', 'kind: Config', 'current-context: c', 'clusters:', '- name: c', '  cluster:', `    server: ${plain}`,
      'contexts:', '- name: c', '  context:', '    cluster: c', '    user: u', 'users:', '- name: u', '  user: {}', ''].join('\n'));
    const k = await runKubectl(kc, cache, ['get', 'configmaps', '--request-timeout', '10s']);
    t.not(k.code, 0);
  });
});
