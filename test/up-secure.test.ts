// `flotilla up` as it comes by default: HTTPS with a client certificate per
// component and Node,RBAC authorization. Through the real kubectl and the
// kubeconfigs up wrote: the admin may do everything; a client without
// credentials (or with a certificate of another CA) is refused everything but
// the health and version endpoints; each component's own identity is refused
// what its role does not give it; and the cluster still orchestrates (a
// Deployment's pods run on the nodes, `kubectl logs` reaches them through the
// agent). The flotilla CLI verbs work against it through cluster.json.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { connect as connectTcp } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { Agent, request } from 'undici';
import { createCA, issue } from '../agents/pki/pki.ts';
import { KUBERNETES_SERVICE_IP } from '../bin/up-pki.ts';
import { kubectlMissing, runKubectl } from '../harness/kubectl.ts';
import { FLOTILLA_BIN, ROOT, freePort, runFlotilla, waitFor } from '../harness/procs.ts';

// $KUBECONFIG of the caller must not pick the identity: cluster.json's kubeconfig does.
const flotilla = (cwd: string, args: string[]) => runFlotilla(cwd, args, { ...process.env, KUBECONFIG: '' });

t.test('flotilla up (secure by default): identities, refusals, and a cluster that still orchestrates', async (t) => {
  if (kubectlMissing(t)) return;
  const cwd = mkdtempSync(join(tmpdir(), 'flotilla-up-secure-'));
  t.teardown(() => {
    // The pods' service-account volumes are tmpfs mounts that outlive the agents (they stop their containers, not their mounts).
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const at = line.split(' ')[1];
      if (at?.startsWith(`${cwd}/`)) spawnSync('umount', ['-l', at]);
    }
    rmSync(cwd, { recursive: true, force: true });
  });
  const base = 20_000 + ((await freePort()) % 20_000);
  // Two real node agents (127.0.0.11 and .12): pods run as processes, so logs come from a real agent.
  const args = ['up', '--base-port', String(base), '--servers', '1', '--nats', '1', '--controllers', '1', '--schedulers', '1',
    '--dns', 'none', '--ingress', 'none', '--nodes', '2'];
  let up: ChildProcess | undefined;
  let out = '';
  up = spawn(process.execPath, [FLOTILLA_BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  up.stdout!.on('data', (d) => (out += d));
  up.stderr!.on('data', (d) => (out += d));
  t.teardown(async () => {
    if (up && up.exitCode === null) up.kill('SIGTERM');
    await flotilla(cwd, ['down']);
  });
  await waitFor('up prints its summary', () => out.includes('Flotilla is up') || up!.exitCode !== null, 120_000, 200);
  t.match(out, /Flotilla is up/, 'the cluster came up');
  const pki = join(cwd, '.flotilla', 'pki');
  const api = `https://127.0.0.1:${base}`;
  const cache = join(cwd, 'kube-cache');
  const as = (kubeconfig: string) => (...a: string[]) => runKubectl(kubeconfig, cache, a);
  const admin = as(join(cwd, '.flotilla', 'kubeconfig'));
  const scheduler = as(join(pki, 'system-kube-scheduler.kubeconfig'));
  const controllers = as(join(pki, 'system-kube-controller-manager.kubeconfig'));
  const node1 = as(join(pki, 'system-node-node-1.kubeconfig'));

  // Files: every private key is its owner's only.
  for (const f of ['ca.key', 'admin.key', 'apiserver-s1.key', 'system-node-node-1.key', 'system-kube-scheduler.key']) {
    t.equal(statSync(join(pki, f)).mode & 0o777, 0o600, `${f} is 0600`);
  }
  t.match(readFileSync(join(cwd, '.flotilla', 'kubeconfig'), 'utf8'), /certificate-authority: .*ca\.crt/, 'the admin kubeconfig names the CA (no insecure-skip-tls-verify)');

  // The admin (system:masters) may do everything.
  const canI = await admin('auth', 'can-i', '*', '*', '--all-namespaces');
  t.equal(canI.out.trim(), 'yes', `admin can do everything: ${canI.err}`);
  t.equal((await admin('create', 'secret', 'generic', 'topsecret', '--from-literal=k=v')).code, 0, 'admin creates a Secret');

  // No credentials: refused, except what system:public-info-viewer gives everyone.
  const anyone = new Agent({ connect: { rejectUnauthorized: false } });
  t.teardown(() => anyone.close());
  const status = async (path: string, dispatcher = anyone) => {
    const r = await request(`${api}${path}`, { dispatcher });
    await r.body.dump();
    return r.statusCode;
  };
  for (const p of ['/api/v1/secrets', '/api/v1/namespaces/default/pods', '/api', '/apis', '/openapi/v2', '/metrics']) {
    t.ok([401, 403].includes(await status(p)), `anonymous ${p} is refused`);
  }
  for (const p of ['/healthz', '/livez', '/readyz', '/version']) t.equal(await status(p), 200, `anonymous ${p} answers`);
  const plain = await request(`http://127.0.0.1:${base}/api/v1/secrets`, { headersTimeout: 5000 }).then(async (r) => { await r.body.dump(); return r.statusCode; }, () => 0);
  t.not(plain, 200, 'plain HTTP to the API address gets no Secrets');
  // A certificate from another CA proves nothing.
  const otherCA = await createCA('someone-else');
  const forged = await issue(otherCA, { commonName: 'flotilla-admin', organizations: ['system:masters'], usages: ['client'] });
  const forger = new Agent({ connect: { rejectUnauthorized: false, cert: forged.cert, key: forged.key } });
  t.teardown(() => forger.close());
  t.ok([401, 403].includes(await status('/api/v1/secrets', forger)), 'a client certificate of another CA is refused');

  // Each component is refused what its role does not give it.
  const sDel = await scheduler('delete', 'secret', 'topsecret');
  t.not(sDel.code, 0, 'the scheduler cannot delete a Secret');
  t.match(sDel.err, /secrets "topsecret" is forbidden: User "system:kube-scheduler" cannot delete resource "secrets"/);
  t.equal((await scheduler('get', 'pods', '-A')).code, 0, 'but lists pods');
  const cEsc = await controllers('create', 'clusterrolebinding', 'grab', '--clusterrole=cluster-admin', '--user=me');
  t.not(cEsc.code, 0, 'the controller manager cannot bind cluster-admin');
  t.match(cEsc.err, /forbidden: User "system:kube-controller-manager" cannot create resource "clusterrolebindings"/);
  t.equal((await controllers('get', 'secrets', '-A')).code, 0, 'but lists Secrets (its serviceaccount and token controllers do)');
  const nOther = await node1('label', 'node', 'node-2', 'stolen=yes');
  t.not(nOther.code, 0, 'node-1 cannot change node-2');
  t.match(nOther.err, /nodes "node-2" is forbidden: User "system:node:node-1" cannot patch resource "nodes"/);
  t.equal((await node1('label', 'node', 'node-1', 'mine=yes')).code, 0, 'but labels its own Node');
  const nSecret = await node1('get', 'secret', 'topsecret');
  t.not(nSecret.code, 0, 'node-1 cannot read a Secret none of its pods uses');
  t.match(nSecret.err, /forbidden: User "system:node:node-1" cannot get resource "secrets"/);
  // The DNS server does not run here (it needs port 53), but its identity is made all the same.
  const dns = as(join(pki, 'system-flotilla-dns.kubeconfig'));
  const dCreate = await dns('create', 'configmap', 'from-dns');
  t.not(dCreate.code, 0, 'the DNS server cannot create a ConfigMap');
  t.match(dCreate.err, /forbidden: User "system:flotilla-dns" cannot create resource "configmaps"/);
  t.equal((await dns('get', 'services', '-A')).code, 0, 'but lists Services');

  // The serving certificate covers the in-cluster kubernetes Service's ClusterIP (bin/up-pki.ts assumes which one it gets).
  const kubeIP = await waitFor('the kubernetes Service', async () => (await admin('get', 'service', 'kubernetes', '-o', 'jsonpath={.spec.clusterIP}')).out.trim() || undefined, 30_000, 500);
  t.equal(kubeIP, KUBERNETES_SERVICE_IP, 'the kubernetes Service has the address up-pki.ts puts in the SANs');
  const san = new X509Certificate(readFileSync(join(pki, 'apiserver-s1.crt'))).subjectAltName ?? '';
  t.match(san, `IP Address:${kubeIP}`, 'and the serving certificate covers it');

  // The cluster orchestrates: a Deployment's pods run on the nodes; logs come through the agent.
  const create = await admin('create', 'deployment', 'hello', '--image=busybox', '--replicas=2', '--', 'sh', '-c', 'while true; do echo hello-from-pod; sleep 1; done');
  t.equal(create.code, 0, create.err);
  const running = await waitFor('two running pods', async () => {
    const r = await admin('get', 'pods', '-l', 'app=hello', '-o', 'jsonpath={range .items[*]}{.status.phase}/{.spec.nodeName} {end}');
    const pods = r.out.trim().split(/\s+/).filter((p) => p.startsWith('Running/'));
    return pods.length === 2 ? pods : undefined;
  }, 90_000, 500);
  t.ok(running.every((p) => /Running\/node-[12]$/.test(p)), `pods run on the nodes: ${running.join(' ')}`);
  const logs = await waitFor('kubectl logs', async () => {
    const r = await admin('logs', 'deployment/hello');
    return r.out.includes('hello-from-pod') ? r : undefined;
  }, 30_000, 500);
  t.match(logs.out, /hello-from-pod/, 'kubectl logs reaches the pod through the agent');

  // A pod using the JavaScript client's in-cluster config (its ServiceAccount token and ca.crt, KUBERNETES_SERVICE_HOST:
  // the kubernetes Service's cluster IP, routed by the node proxy to a server) lists pods, once RBAC lets its account.
  t.equal((await admin('create', 'rolebinding', 'default-sa-view', '--clusterrole=view', '--serviceaccount=default:default')).code, 0, 'bind view to default/default');
  const clientModule = pathToFileURL(join(ROOT, 'node_modules', '@kubernetes', 'client-node', 'dist', 'index.js')).href;
  const script = `const k8s = await import(${JSON.stringify(clientModule)}); const kc = new k8s.KubeConfig(); kc.loadFromCluster();`
    + ` const r = await kc.makeApiClient(k8s.CoreV1Api).listNamespacedPod({ namespace: 'default' });`
    + ' console.log("in-cluster server " + kc.getCurrentCluster().server + " pods " + r.items.map((p) => p.metadata.name).join(","));';
  const manifest0 = join(cwd, 'in-cluster.json');
  writeFileSync(manifest0, JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'in-cluster' }, spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'node', command: ['node', '--input-type=module', '-e', script] }] } }));
  t.equal((await admin('apply', '-f', manifest0)).code, 0, 'the in-cluster client pod is created');
  const phase = await waitFor('the in-cluster client pod finished', async () => {
    const r = await admin('get', 'pod', 'in-cluster', '-o', 'jsonpath={.status.phase}');
    return r.out === 'Succeeded' || r.out === 'Failed' ? r.out : undefined;
  }, 60_000, 500);
  const inCluster = await admin('logs', 'in-cluster');
  t.equal(phase, 'Succeeded', `the in-cluster client ran: ${inCluster.out}${inCluster.err}`);
  t.match(inCluster.out, new RegExp(`in-cluster server https://${KUBERNETES_SERVICE_IP.replace(/\./g, '\\.')}:443 pods .*hello-`), 'it reached the API through the kubernetes Service and listed the pods');
  // …which the servers reach over TLS with their own identity: without it, the agent's endpoint refuses.
  const clusterFile = JSON.parse(readFileSync(join(cwd, '.flotilla', 'cluster.json'), 'utf8')) as { agents: { name: string; endpoint?: string }[]; servers: { peer: string }[] };
  const agentEndpoint = clusterFile.agents.find((a) => a.name === 'node-1')!.endpoint!;
  t.match(agentEndpoint, /^https:\/\//, 'the agent serves HTTPS');
  const direct = await request(`${agentEndpoint}/containerLogs/default/x/c`, { dispatcher: anyone });
  t.equal(direct.statusCode, 401, 'the agent\'s endpoint refuses a caller without the servers\' certificate');
  await direct.body.dump();
  const asAdmin = new Agent({ connect: { ca: readFileSync(join(pki, 'ca.crt')), cert: readFileSync(join(pki, 'admin.crt')), key: readFileSync(join(pki, 'admin.key')) } });
  t.teardown(() => asAdmin.close());
  // Raft peers talk mutual TLS: a connection without a member certificate is refused and counted.
  const [peerHost, peerPort] = clusterFile.servers[0].peer.split(':');
  await new Promise<void>((resolve) => {
    const s = connectTcp({ host: peerHost, port: Number(peerPort) }, () => s.write(Buffer.from([0, 0, 0, 4, 1, 2, 3, 4])));
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.setTimeout(5000, () => s.destroy());
  });
  const refusedPeers = await waitFor('the plain peer connection counted', async () => {
    const r = await request(`${api}/metrics`, { dispatcher: asAdmin });
    const m = /^raft_transport_refused_connections\{reason="tls-handshake"\} (\d+)/m.exec(await r.body.text());
    return m && Number(m[1]) > 0 ? Number(m[1]) : undefined;
  }, 10_000, 200);
  t.ok(refusedPeers > 0, 'a plain TCP connection to the peer port is refused (raft_transport_refused_connections{reason="tls-handshake"})');

  // The flotilla CLI, through cluster.json's kubeconfig.
  const get = await flotilla(cwd, ['get', 'pods', '-l', 'app=hello']);
  t.equal(get.code, 0, get.err);
  t.match(get.out, /hello-/, 'flotilla get pods');
  const manifest = join(cwd, 'cm.yaml');
  writeFileSync(manifest, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: "1"\n');
  const apply = await flotilla(cwd, ['apply', '-f', manifest]);
  t.equal(apply.code, 0, apply.err);
  t.equal((await admin('get', 'configmap', 'applied', '-o', 'jsonpath={.data.a}')).out, '1', 'flotilla apply wrote the ConfigMap');
  const pod = get.out.split('\n').find((l) => l.startsWith('hello-'))!.split(/\s+/)[0];
  const flogs = await flotilla(cwd, ['logs', pod]);
  t.equal(flogs.code, 0, flogs.err);
  t.match(flogs.out, /hello-from-pod/, 'flotilla logs');
  const cs = await flotilla(cwd, ['cluster', 'status']);
  t.equal(cs.code, 0, cs.err);
  t.match(cs.out, new RegExp(`https://127\\.0\\.0\\.1:${base + 1}`), 'flotilla cluster status shows the https:// API');
  const ev = await flotilla(cwd, ['events', '--since', '0', '--kind', 'configmaps']);
  t.equal(ev.code, 0, ev.err);
  t.match(ev.out, /applied/, 'flotilla events');
  // Without credentials the CLI is refused like anyone else.
  const noCreds = await flotilla(cwd, ['get', 'pods', '--kubeconfig', join(pki, 'system-kube-scheduler.kubeconfig'), '--server', `https://127.0.0.1:${base + 1}`]);
  t.equal(noCreds.code, 0, `--kubeconfig picks another identity: ${noCreds.err}`);
  const denied = await flotilla(cwd, ['delete', 'secret', 'topsecret', '--kubeconfig', join(pki, 'system-kube-scheduler.kubeconfig')]);
  t.not(denied.code, 0, 'the scheduler identity through the flotilla CLI is refused too');
  t.match(denied.err, /forbidden/);

  const down = await flotilla(cwd, ['down']);
  t.equal(down.code, 0, down.err);
});
