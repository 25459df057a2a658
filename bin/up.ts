// `flotilla up`: a local cluster of separate processes, the README's start
// command: nats-server (three with an R3 stream, or `--nats 1`), the API
// servers behind one stable address (a health-checked TCP balancer, so the
// kubeconfig survives the loss of any server), and the consumers. Writes
// <dir>/cluster.json and <dir>/kubeconfig (usable by kubectl as it is),
// prints where everything is, restarts a child that dies (with back-off;
// `--no-restart` for chaos runs) and stops everything on SIGINT, SIGTERM or
// SIGHUP. The children watch `up` and exit when it dies. Data survives a
// restart of `up` on the same dir: ports are fixed by --base-port so the
// members find each other again. Nodes: --nodes N (2) agents on 127.0.0.11,
// .12, … running pods as processes, or with --runtime sim N hollow nodes in
// one agent process (127.0.64.1, …). By default the servers speak HTTPS
// with Node,RBAC authorization and every component has its own client
// certificate and kubeconfig (the PKI in <dir>/pki, made once: up-pki.ts);
// --insecure runs the old plain-HTTP, AlwaysAllow cluster.
import { randomBytes } from 'node:crypto';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, type Dispatcher, request } from 'undici';
import { ApiBalancer } from './api-balancer.ts';
import { type UpPki, ensureUpPki } from './up-pki.ts';
import { detach, stopLeftovers } from './up-lifecycle.ts';
import { ensureEncryptionConfig } from '../api/encryption-config.ts';
import { redactNatsUrls } from '../api/nats-url.ts';
import { ensureNatsUsers, natsAuthorization, natsUrlFor } from './nats-auth.ts';
import { ensureServiceAccountKey } from '../api/service-account-key.ts';

const BIN = resolve(fileURLToPath(new URL('../bin/flotilla.js', import.meta.url)));

interface ClusterFile {
  /** The stable API address (the balancer in front of the servers); the kubeconfig names it. */
  api: string;
  /** The pid of `flotilla up` itself. */
  up: number;
  /** NATS servers: pid and client URL. */
  natsServers: { name: string; pid: number; url: string }[];
  /** data: the server's data directory (absolute; holds its admin-token for `flotilla cluster add-member`). */
  servers: { id: string; api: string; peer: string; pid: number; data: string }[];
  nats: string;
  kubeconfig: string;
  /** metrics: where the replica serves /healthz and /metrics. */
  controllers: { pid: number; metrics?: string }[];
  schedulers: { pid: number; metrics?: string }[];
  /** The cluster DNS server: where it answers, and its /metrics. */
  dns?: { pid: number; address: string; metrics: string };
  /** The ingress proxy: HTTP and HTTPS addresses, and its /metrics. */
  ingress?: { pid: number; http: string; https: string; metrics: string };
  /** address: the node's InternalIP; endpoint: its /healthz, /metrics and /containerLogs. */
  /** count: hollow nodes the entry runs (--runtime sim: one process, `count` nodes). */
  agents: { name: string; pid: number; address?: string; endpoint?: string; data?: string; count?: number }[];
}


/** The loopback address of the i-th process node agent (127.0.0.11, .12, …): each its own, so all use the kubelet's port. */
function agentAddress(i: number): string {
  return `127.0.0.${11 + i}`;
}
export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      servers: { type: 'string', default: '3' },
      dir: { type: 'string', default: '.flotilla' },
      'base-port': { type: 'string', default: '7100' },
      // NATS servers: 3 (a JetStream cluster with an R3 stream) or 1.
      nats: { type: 'string', default: '3' },
      'no-restart': { type: 'boolean', default: false },
      detach: { type: 'boolean', default: false },
      controllers: { type: 'string', default: '2' },
      // The cluster DNS (`flotilla dns`) address; "none" to run without it.
      dns: { type: 'string', default: '127.0.0.10:53' },
      // The ingress proxy's host (HTTP on :80, HTTPS on :443); "none" to run without it.
      ingress: { type: 'string', default: '127.0.0.9' },
      schedulers: { type: 'string', default: '2' },
      // Nodes: one agent process each (--runtime process), or one process of hollow nodes (--runtime sim).
      nodes: { type: 'string' },
      agents: { type: 'string' }, // the former name of --nodes
      runtime: { type: 'string', default: 'process' },
      // Plain HTTP, every request allowed (no PKI): quick experiments only.
      insecure: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const n = Number(values.servers);
  if (!Number.isInteger(n) || n < 1 || n > 7) throw new Error('--servers must be between 1 and 7');
  const base = Number(values['base-port']);
  if (!Number.isInteger(base) || base < 1024 || base > 65000) throw new Error('--base-port must be between 1024 and 65000');
  const nControllers = Number(values.controllers);
  if (!Number.isInteger(nControllers) || nControllers < 0 || nControllers > 5) throw new Error('--controllers must be between 0 and 5');
  const nSchedulers = Number(values.schedulers);
  if (!Number.isInteger(nSchedulers) || nSchedulers < 0 || nSchedulers > 5) throw new Error('--schedulers must be between 0 and 5');
  const natsCount = Number(values.nats);
  if (natsCount !== 1 && natsCount !== 3) throw new Error('--nats must be 1 or 3');
  const runtime = values.runtime!;
  if (runtime !== 'process' && runtime !== 'sim') throw new Error('--runtime must be process or sim');
  const nNodes = Number(values.nodes ?? values.agents ?? '2');
  const maxNodes = runtime === 'sim' ? 5000 : 50;
  if (!Number.isInteger(nNodes) || nNodes < 0 || nNodes > maxNodes) throw new Error(`--nodes must be between 0 and ${maxNodes} with --runtime ${runtime}`);
  const dir = resolve(values.dir);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  if (values.detach) return detach(dir, argv.filter((a) => a !== '--detach'));
  const lockFile = join(dir, 'up.pid');
  if (existsSync(lockFile)) {
    const pid = Number(readFileSync(lockFile, 'utf8'));
    if (pid && isAlive(pid)) throw new Error(`a cluster is already running from ${dir} (pid ${pid}); stop it first`);
  }
  // Processes a previous `up` on this dir left behind (it was killed): stop them before reusing their ports.
  await stopLeftovers(dir);
  writeFileSync(lockFile, String(process.pid));
  const recordShape = checkShape(dir, { servers: n, nats: natsCount });
  await checkPortsFree([
    `127.0.0.1:${base}`,
    ...Array.from({ length: n }, (_, i) => [`127.0.0.1:${base + 1 + i}`, `127.0.0.1:${base + 101 + i}`]).flat(),
    ...Array.from({ length: natsCount }, (_, i) => [`127.0.0.1:${base + 201 + i}`, ...(natsCount > 1 ? [`127.0.0.1:${base + 211 + i}`] : [])]).flat(),
    ...Array.from({ length: nControllers }, (_, i) => `127.0.0.1:${base + 301 + i}`),
    ...Array.from({ length: nSchedulers }, (_, i) => `127.0.0.1:${base + 321 + i}`),
    ...(values.dns !== 'none' ? [values.dns!, `127.0.0.1:${base + 401}`] : []),
    ...(values.ingress !== 'none' ? [`${values.ingress}:80`, `${values.ingress}:443`, `127.0.0.1:${base + 402}`] : []),
    ...(runtime === 'sim' ? (nNodes ? ['127.0.64.1:10250'] : []) : Array.from({ length: nNodes }, (_, i) => `127.0.0.${11 + i}:10250`)),
  ], base).catch((e: Error) => {
    writeFileSync(lockFile, '');
    throw e;
  });
  recordShape();

  const members = Array.from({ length: n }, (_, i) => ({
    id: `s${i + 1}`, api: `127.0.0.1:${base + 1 + i}`, peer: `127.0.0.1:${base + 101 + i}`,
  }));
  const peers = members.map((m) => `${m.id}=${m.peer}`).join(',');
  // The Raft cluster ID derives from this token (made once, kept with the data):
  // frames of another local cluster with the same member ids are refused.
  const tokenFile = join(dir, 'data', 'cluster-token');
  if (!existsSync(tokenFile)) {
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(tokenFile, randomBytes(16).toString('hex'), { mode: 0o600 });
  }
  const clusterToken = readFileSync(tokenFile, 'utf8').trim();
  // Secrets are sealed at rest under the keys of this file (made once, owner-only; see apiserver/encryption.ts).
  const encryptionConfig = resolve(join(dir, 'encryption-config.yaml'));
  ensureEncryptionConfig(encryptionConfig);
  // ServiceAccount tokens are signed with this key, shared by every server (made once, owner-only).
  const serviceAccountKey = resolve(join(dir, 'sa.key'));
  ensureServiceAccountKey(serviceAccountKey);
  // The PKI (made once in <dir>/pki, reused by every later run): servers speak HTTPS, every component has its own identity.
  const apiAddress = `127.0.0.1:${base}`;
  const pki: UpPki | undefined = values.insecure ? undefined : await ensureUpPki({
    dir: join(dir, 'pki'), server: `https://${apiAddress}`,
    members: members.map((m) => ({ id: m.id, host: m.api.slice(0, m.api.lastIndexOf(':')) })), balancerHosts: ['127.0.0.1'],
    nodes: runtime === 'process' ? Array.from({ length: nNodes }, (_, i) => ({ name: `node-${i + 1}`, address: agentAddress(i) })) : [],
    hollow: runtime === 'sim' && nNodes > 0, controllers: nControllers > 0, schedulers: nSchedulers > 0,
    // Made even when not started now: a later `up` on this directory may start them.
    dns: true, ingress: true,
  }).catch((e: Error) => {
    writeFileSync(lockFile, '');
    throw new Error(`cannot make the cluster's certificates in ${join(dir, 'pki')}: ${e.message}`);
  });
  // What `up` itself uses to reach the servers: the CA, and the admin's certificate for the API.
  const adminDispatcher: Dispatcher | undefined = pki
    ? new Agent({ connect: { ca: readFileSync(pki.ca, 'utf8'), cert: readFileSync(pki.admin.cert, 'utf8'), key: readFileSync(pki.admin.key, 'utf8') } })
    : undefined;
  const kubeconfigOf = (key: string): string[] => (pki ? ['--kubeconfig', pki.kubeconfigs.get(key)!] : []);
  const children: ChildProcess[] = [];
  let stopping = false;
  const spawnLogged = (name: string, args: string[], command?: string) => {
    const out = createWriteStream(join(dir, 'logs', `${name}.log`), { flags: 'a' });
    // FLOTILLA_PARENT_PID: a flotilla child exits when `up` is gone (bin/cli.ts).
    const env = { ...process.env, FLOTILLA_PARENT_PID: String(process.pid) };
    const child = command
      ? spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
      : spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    child.on('exit', (code, sig) => {
      if (!stopping) process.stderr.write(`flotilla up: ${name} exited (${sig ?? code}); see ${join(dir, 'logs', `${name}.log`)}\n`);
    });
    children.push(child);
    return child;
  };
  let writeClusterFile = () => {};
  // Every child is restarted when it exits (a controller manager that lost
  // its Lease exits on purpose, as kube-controller-manager does, and comes
  // back as a standby), after 1 s doubling to 30 s, back to 1 s once it ran
  // for a minute; cluster.json keeps the current pids.
  const supervise = (name: string, args: string[], record: { pid: number }, command?: string) => {
    let delay = 500; // doubled before the first restart: 1 s
    const start = () => {
      const child = spawnLogged(name, args, command);
      const startedAt = Date.now();
      record.pid = child.pid!;
      writeClusterFile();
      child.on('exit', () => {
        if (stopping || values['no-restart']) return;
        delay = Date.now() - startedAt > 60_000 ? 1000 : Math.min(delay * 2, 30_000);
        process.stderr.write(`flotilla up: restarting ${name} in ${delay / 1000} s\n`);
        setTimeout(() => { if (!stopping) start(); }, delay);
      });
    };
    start();
  };

  // NATS JetStream for the event stream: three servers with an R3 stream, or one.
  const natsBin = findNatsServer();
  const nats = Array.from({ length: natsCount }, (_, i) => ({
    name: `nats${i + 1}`, port: base + 201 + i, clusterPort: base + 211 + i, store: join(dir, 'data', `nats${i + 1}`),
  }));
  const natsServers: ClusterFile['natsServers'] = [];
  // Only the cluster's own processes reach NATS, each as a user with its role's rights (bin/nats-auth.ts).
  const natsUsers = ensureNatsUsers(join(dir, 'nats-users.json'));
  for (const n of nats) {
    const conf = join(dir, `${n.name}.conf`);
    const routes = nats.filter((x) => x !== n).map((x) => `nats-route://127.0.0.1:${x.clusterPort}`);
    writeFileSync(conf, [
      `server_name: ${n.name}`, `listen: 127.0.0.1:${n.port}`, `jetstream { store_dir: "${n.store}" }`,
      ...(natsCount > 1 ? [`cluster { name: flotilla, listen: 127.0.0.1:${n.clusterPort}, routes: [${routes.join(', ')}] }`] : []),
      natsAuthorization(natsUsers), '',
    ].join('\n'), { mode: 0o600 });
    const record = { name: n.name, pid: 0, url: `nats://127.0.0.1:${n.port}` };
    natsServers.push(record);
    supervise(n.name, ['-c', conf], record, natsBin);
  }
  const natsHostPorts = nats.map((n) => `127.0.0.1:${n.port}`);
  const natsUrl = natsUrlFor('server', natsUsers, natsHostPorts);
  const consumerNatsUrl = natsUrlFor('consumer', natsUsers, natsHostPorts);
  const agentNatsUrl = natsUrlFor('agent', natsUsers, natsHostPorts);

  const scheme = pki ? 'https' : 'http';
  const servers = members.map((m) => {
    const data = resolve(join(dir, 'data', m.id));
    // https:// URLs for a secure cluster; bare host:port as before for --insecure.
    const record = { ...m, api: pki ? `https://${m.api}` : m.api, pid: 0, data };
    const tlsArgs = pki
      ? ['--tls-cert-file', pki.servers.get(m.id)!.cert, '--tls-private-key-file', pki.servers.get(m.id)!.key, '--client-ca-file', pki.ca, '--authorization-mode', 'Node,RBAC',
        // Raft members talk mutual TLS; node agents are reached over TLS with the servers' own identity.
        '--peer-cert-file', pki.peers.get(m.id)!.cert, '--peer-key-file', pki.peers.get(m.id)!.key, '--peer-trusted-ca-file', pki.ca,
        '--kubelet-client-certificate', pki.agentClient.cert, '--kubelet-client-key', pki.agentClient.key, '--kubelet-certificate-authority', pki.ca]
      : [];
    supervise(m.id, ['server', '--id', m.id, '--peers', peers, '--api', m.api, '--data', data, '--cluster-token', clusterToken, '--nats', natsUrl, '--encryption-provider-config', encryptionConfig, '--service-account-signing-key-file', serviceAccountKey, ...tlsArgs], record);
    return record;
  });
  // The one API address (apiAddress): a balancer over the servers' API ports.
  const balancer = new ApiBalancer({ backends: members.map((m) => m.api), ca: pki && readFileSync(pki.ca, 'utf8') });
  try {
    await balancer.listen('127.0.0.1', base);
  } catch (e) {
    throw new Error(`cannot listen on ${apiAddress} for the API (${(e as Error).message}); is another cluster using --base-port ${base}?`);
  }

  const kubeconfig = join(dir, 'kubeconfig');
  if (pki) writeFileSync(kubeconfig, readFileSync(pki.kubeconfigs.get('admin')!, 'utf8'), { mode: 0o600 });
  else writeFileSync(kubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: flotilla', 'preferences: {}',
    'clusters:', '- name: flotilla', '  cluster:', `    server: http://${apiAddress}`,
    // Plain HTTP on loopback; client libraries (e.g. @kubernetes/client-node) refuse http:// without it.
    '    insecure-skip-tls-verify: true',
    'contexts:', '- name: flotilla', '  context:', '    cluster: flotilla', '    user: flotilla', '    namespace: default',
    'users:', '- name: flotilla', '  user: {}', '',
  ].join('\n'));
  const cluster: ClusterFile = {
    api: `${scheme}://${apiAddress}`, up: process.pid, natsServers,
    servers, nats: consumerNatsUrl, kubeconfig, controllers: [], schedulers: [], agents: [],
  };
  // Owner-only: its NATS URL carries the consumer user's password.
  writeClusterFile = () => {
    writeFileSync(join(dir, 'cluster.json'), `${JSON.stringify(cluster, null, 2)}\n`, { mode: 0o600 });
    chmodSync(join(dir, 'cluster.json'), 0o600); // a file from an earlier run keeps its mode otherwise
  };
  writeClusterFile();

  const apiUrls = members.map((m) => `${scheme}://${m.api}`).join(',');

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('flotilla up: stopping\n');
    await balancer.close().catch(() => {});
    for (const c of children) c.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (children.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    try {
      writeFileSync(lockFile, '');
    } catch {
      /* dir gone */
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGHUP', () => void stop(0));

  // Wait until every server is ready, then say where everything is.
  const deadline = Date.now() + 60_000;
  for (const m of members) {
    for (;;) {
      try {
        const r = await request(`${scheme}://${m.api}/readyz`, { headersTimeout: 1000, dispatcher: adminDispatcher });
        await r.body.dump();
        if (r.statusCode === 200) break;
      } catch {
        /* starting */
      }
      if (Date.now() > deadline) {
        process.stderr.write(`flotilla up: server ${m.id} did not become ready in 60 s; see ${join(dir, 'logs', `${m.id}.log`)}\n`);
        return stop(1);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  for (let i = 0; i < nControllers; i++) {
    const record = { pid: 0, metrics: `127.0.0.1:${base + 301 + i}` };
    cluster.controllers.push(record);
    // The local-path provisioner's volumes live with the cluster's data, whatever directory `up` was started from.
    supervise(`controllers${i + 1}`, ['controllers', '--server', apiUrls, ...kubeconfigOf('controllers'), '--nats', consumerNatsUrl, '--id', `controllers${i + 1}`, '--metrics-address', record.metrics,
      '--volume-dir', resolve(join(dir, 'data', 'volumes')), ...(pki ? ['--root-ca-file', pki.ca] : [])], record);
  }
  if (values.dns !== 'none') {
    cluster.dns = { pid: 0, address: values.dns!, metrics: `127.0.0.1:${base + 401}` };
    supervise('dns', ['dns', '--server', apiUrls, ...kubeconfigOf('dns'), '--nats', consumerNatsUrl, '--listen', cluster.dns.address, '--metrics-address', cluster.dns.metrics], cluster.dns);
  }
  if (values.ingress !== 'none') {
    cluster.ingress = { pid: 0, http: `${values.ingress}:80`, https: `${values.ingress}:443`, metrics: `127.0.0.1:${base + 402}` };
    supervise('ingress', ['ingress', '--server', apiUrls, ...kubeconfigOf('ingress'), '--nats', consumerNatsUrl, '--listen', cluster.ingress.http, '--listen-tls', cluster.ingress.https,
      '--metrics-address', cluster.ingress.metrics], cluster.ingress);
  }
  for (let i = 0; i < nSchedulers; i++) {
    const record = { pid: 0, metrics: `127.0.0.1:${base + 321 + i}` };
    cluster.schedulers.push(record);
    supervise(`scheduler${i + 1}`, ['scheduler', '--server', apiUrls, ...kubeconfigOf('scheduler'), '--nats', consumerNatsUrl, '--id', `scheduler${i + 1}`, '--metrics-address', record.metrics], record);
  }
  if (runtime === 'sim' && nNodes > 0) {
    // Hollow nodes: one agent process, one shared informer, N Node objects and Leases; pods only pretend to run.
    const address = '127.0.64.1';
    const record = { name: 'hollow', pid: 0, address, endpoint: `http://${address}:10250`, count: nNodes };
    cluster.agents.push(record);
    supervise('agent-hollow', ['agent', '--runtime', 'sim', '--count', String(nNodes), '--name-prefix', 'hollow-', '--address', address, '--port', '10250', '--server', apiUrls, ...kubeconfigOf('hollow')], record);
  }
  // Node agents, one per node, each on its own loopback address (127.0.0.11, .12, …), so they can all use the kubelet's port.
  for (let i = 0; runtime === 'process' && i < nNodes; i++) {
    const name = `node-${i + 1}`;
    const address = agentAddress(i);
    const record = { name, pid: 0, address, endpoint: `${pki ? 'https' : 'http'}://${address}:10250`, data: resolve(join(dir, 'data', `agent-${name}`)) };
    // Its endpoint (logs, exec, attach, port-forward) serves TLS and takes only the servers' client certificate.
    const tlsArgs = pki ? ['--tls-cert-file', pki.nodes.get(name)!.cert, '--tls-private-key-file', pki.nodes.get(name)!.key, '--client-ca-file', pki.ca] : [];
    cluster.agents.push(record);
    // Containers outlive an agent that crashes (the next run adopts them), but not `flotilla up` stopping.
    supervise(`agent-${name}`, ['agent', '--name', name, '--address', address, '--port', '10250', '--data', record.data, '--server', apiUrls, ...kubeconfigOf(`node:${name}`), '--nats', agentNatsUrl, '--stop-containers-on-exit',
      ...(cluster.dns ? ['--cluster-dns', cluster.dns.address.replace(/:53$/, '')] : []), ...tlsArgs], record);
  }
  await waitForComponents(cluster, nNodes, () => stopping, adminDispatcher);
  process.stdout.write([
    `Flotilla is up: ${n} servers (data in ${join(dir, 'data')}, logs in ${join(dir, 'logs')})`,
    `  API:          ${cluster.api} (balanced over the servers; the kubeconfig names it)`,
    pki ? `  TLS:          CA ${pki.ca}; every component has its own client certificate and kubeconfig in ${pki.dir}; authorization Node,RBAC`
      : '  TLS:          none (--insecure: plain HTTP, every request allowed)',
    ...servers.map((s) => `  server ${s.id}: API ${pki ? s.api : `http://${s.api}`}  peer ${s.peer}  pid ${s.pid}`),
    `  controllers:  ${nControllers} (one leads through the Lease kube-system/flotilla-controller-manager; /metrics on ${cluster.controllers.map((c) => c.metrics).join(', ') || '-'})`,
    `  schedulers:   ${nSchedulers} (one leads through the Lease kube-system/kube-scheduler; /metrics on ${cluster.schedulers.map((c) => c.metrics).join(', ') || '-'})`,
    `  NATS:         ${redactNatsUrls(natsUrl)} (stream EVENTS, users in ${join(dir, 'nats-users.json')}${natsCount > 1 ? ', 3 replicas' : ''}; npx flotilla events --follow)`,
    ...(cluster.ingress ? [`  ingress:      http://${cluster.ingress.http}  https://${cluster.ingress.https} (IngressClass "flotilla", the default)`] : []),
    ...(cluster.dns ? [`  DNS:          ${cluster.dns.address} (names like kubernetes.default.svc.cluster.local; /metrics on ${cluster.dns.metrics})`] : []),
    runtime === 'sim'
      ? `  nodes:        ${nNodes} hollow nodes (hollow-0…) in one agent process; pods only pretend to run`
      : `  node agents:  ${cluster.agents.map((a) => `${a.name} (${a.address})`).join(', ') || '-'}; pods run as processes, data in ${join(dir, 'data', 'agent-*')}`,
    `  cluster file: ${join(dir, 'cluster.json')}`,
    `  kubectl:      KUBECONFIG=${kubeconfig} kubectl get namespaces`,
    `  flotilla:     npx flotilla get namespaces      (reads ${join(values.dir, 'cluster.json')})`,
    `  stop:         Ctrl-C (or npx flotilla down --dir ${values.dir})`,
    '',
  ].join('\n'));
}

/**
 * Waits (up to 60 s, saying what it waits for) until every consumer answers
 * /readyz and the controller managers and schedulers have a leader.
 */
async function waitForComponents(cluster: ClusterFile, nodes: number, stopping: () => boolean, dispatcher?: Dispatcher): Promise<void> {
  const ready = async (address: string) => {
    try {
      // Agents of a secure cluster serve HTTPS (their certificates are the cluster CA's, which `dispatcher` trusts).
      const url = /^https?:\/\//.test(address) ? address : `http://${address}`;
      const r = await request(`${url}/readyz`, { headersTimeout: 1000, bodyTimeout: 1000, ...(url.startsWith('https:') && dispatcher ? { dispatcher } : {}) });
      await r.body.dump();
      return r.statusCode === 200;
    } catch {
      return false;
    }
  };
  const leading = async (address: string) => {
    try {
      const r = await request(`http://${address}/healthz`, { headersTimeout: 1000, bodyTimeout: 1000 });
      return ((await r.body.json()) as { leading?: boolean }).leading === true;
    } catch {
      return false;
    }
  };
  const named: [string, string][] = [];
  cluster.controllers.forEach((c, i) => c.metrics && named.push([`controllers${i + 1}`, c.metrics]));
  cluster.schedulers.forEach((c, i) => c.metrics && named.push([`scheduler${i + 1}`, c.metrics]));
  if (cluster.dns) named.push(['dns', cluster.dns.metrics]);
  if (cluster.ingress) named.push(['ingress', cluster.ingress.metrics]);
  for (const a of cluster.agents) if (a.endpoint) named.push([a.count ? `${a.count} hollow nodes` : `agent ${a.name}`, a.endpoint]);
  // Nodes count as up when their Node objects say Ready, as `kubectl get nodes` shows.
  const readyNodes = async () => {
    try {
      const r = await request(`${cluster.api}/api/v1/nodes`, { headersTimeout: 2000, bodyTimeout: 5000, dispatcher });
      const list = (await r.body.json()) as { items?: { status?: { conditions?: { type: string; status: string }[] } }[] };
      return (list.items ?? []).filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
    } catch {
      return 0;
    }
  };
  const deadline = Date.now() + 60_000;
  let said = '';
  while (!stopping() && Date.now() < deadline) {
    const waiting: string[] = [];
    for (const [name, address] of named) if (!(await ready(address))) waiting.push(name);
    for (const [group, list] of [['controller manager leader', cluster.controllers], ['scheduler leader', cluster.schedulers]] as [string, { metrics?: string }[]][]) {
      const addresses = list.map((c) => c.metrics).filter((a): a is string => !!a);
      if (addresses.length && !(await Promise.all(addresses.map(leading))).some(Boolean)) waiting.push(group);
    }
    if (nodes > 0) {
      const n = await readyNodes();
      if (n < nodes) waiting.push(`nodes Ready (${n}/${nodes})`);
    }
    if (!waiting.length) return;
    const now = `flotilla up: waiting for ${waiting.join(', ')}\n`;
    if (now !== said) process.stderr.write(now);
    said = now;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!stopping()) process.stderr.write('flotilla up: some components are not ready after 60 s; see the logs\n');
}

/**
 * The shape of the cluster a directory holds (servers, NATS servers), kept in
 * <dir>/shape.json from the first start; inferred from the data directories
 * of a cluster made before that file existed. Another shape on the same data
 * would start members that are not in the Raft configuration, or an R3
 * stream on one NATS server: refuse it with what to do instead.
 */
function checkShape(dir: string, want: { servers: number; nats: number }): () => void {
  const file = join(dir, 'shape.json');
  let have: { servers: number; nats: number } | undefined;
  if (existsSync(file)) {
    try {
      have = JSON.parse(readFileSync(file, 'utf8')) as { servers: number; nats: number };
    } catch {
      have = undefined;
    }
  } else if (existsSync(join(dir, 'data'))) {
    const entries = readdirSync(join(dir, 'data'));
    const servers = entries.filter((e) => /^s\d+$/.test(e)).length;
    const nats = entries.filter((e) => /^nats\d+$/.test(e)).length;
    if (servers) have = { servers, nats: nats || want.nats };
  }
  if (have && (have.servers !== want.servers || have.nats !== want.nats)) {
    throw new Error(`${dir} holds a cluster of ${have.servers} server(s) and ${have.nats} NATS server(s); this run asks for ${want.servers} and ${want.nats}. `
      + `Start it with --servers ${have.servers} --nats ${have.nats}, change its membership with flotilla cluster add-member/remove-member, or use another --dir.`);
  }
  return () => writeFileSync(file, `${JSON.stringify(want)}\n`);
}

/** Refuses to start when an address a child will listen on is taken, naming it (children would only log the failure). */
async function checkPortsFree(addresses: string[], base: number): Promise<void> {
  const taken: string[] = [];
  await Promise.all(addresses.map((a) => new Promise<void>((done) => {
    const i = a.lastIndexOf(':');
    const srv = net.createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      taken.push(`${a} (${e.code ?? e.message})`);
      done();
    });
    srv.listen(Number(a.slice(i + 1)), a.slice(0, i), () => srv.close(() => done()));
  })));
  if (taken.length) {
    throw new Error(`cannot start: ${taken.sort().join(', ')} ${taken.length > 1 ? 'are' : 'is'} taken by another process. `
      + `Stop it, or choose other ports (--base-port, now ${base}; --dns, --ingress HOST|none).`);
  }
}

/** nats-server from Debian's package; installed when missing and we are root, else an exact instruction. */
function findNatsServer(): string {
  const has = () => spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).stdout.trim();
  let path = has();
  if (!path && process.getuid?.() === 0) {
    process.stderr.write('flotilla up: installing Debian\'s nats-server\n');
    spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server'], { stdio: 'inherit' });
    path = has();
  }
  if (!path) throw new Error('nats-server is not installed; run: sudo apt-get install -y nats-server');
  return path;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
