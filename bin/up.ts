// `flotilla up`: a local cluster of separate processes, the README's start
// command: nats-server -js (or three, --nats-cluster), the servers, the
// controller managers and the node agents (--agents, 2). Writes <dir>/cluster.json and <dir>/kubeconfig (usable by kubectl
// as it is), prints where everything is, and stops everything on
// SIGINT/SIGTERM. Data survives a restart of `up` on the same dir: ports are
// fixed by --base-port so the members find each other again.
import { randomBytes } from 'node:crypto';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';

const BIN = resolve(fileURLToPath(new URL('./flotilla.js', import.meta.url)));

interface ClusterFile {
  /** data: the server's data directory (absolute; holds its admin-token for `flotilla cluster add-member`). */
  servers: { id: string; api: string; peer: string; pid: number; data: string }[];
  nats: string;
  kubeconfig: string;
  /** metrics: where the replica serves /healthz and /metrics. */
  controllers: { pid: number; metrics?: string }[];
  schedulers: { pid: number }[];
  /** address: the node's InternalIP; endpoint: its /healthz, /metrics and /containerLogs. */
  agents: { name: string; pid: number; address?: string; endpoint?: string; data?: string }[];
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      servers: { type: 'string', default: '3' },
      dir: { type: 'string', default: '.flotilla' },
      'base-port': { type: 'string', default: '7100' },
      'nats-cluster': { type: 'boolean', default: false },
      controllers: { type: 'string', default: '2' },
      agents: { type: 'string', default: '2' },
    },
    strict: true,
  });
  const n = Number(values.servers);
  if (!Number.isInteger(n) || n < 1 || n > 7) throw new Error('--servers must be between 1 and 7');
  const base = Number(values['base-port']);
  if (!Number.isInteger(base) || base < 1024 || base > 65000) throw new Error('--base-port must be between 1024 and 65000');
  const nControllers = Number(values.controllers);
  if (!Number.isInteger(nControllers) || nControllers < 0 || nControllers > 5) throw new Error('--controllers must be between 0 and 5');
  const nAgents = Number(values.agents);
  if (!Number.isInteger(nAgents) || nAgents < 0 || nAgents > 50) throw new Error('--agents must be between 0 and 50');
  const dir = resolve(values.dir);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const lockFile = join(dir, 'up.pid');
  if (existsSync(lockFile)) {
    const pid = Number(readFileSync(lockFile, 'utf8'));
    if (pid && isAlive(pid)) throw new Error(`a cluster is already running from ${dir} (pid ${pid}); stop it first`);
  }
  writeFileSync(lockFile, String(process.pid));

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
  const children: ChildProcess[] = [];
  let stopping = false;
  const spawnLogged = (name: string, args: string[], command?: string) => {
    const out = createWriteStream(join(dir, 'logs', `${name}.log`), { flags: 'a' });
    const child = command
      ? spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    child.on('exit', (code, sig) => {
      if (!stopping) process.stderr.write(`flotilla up: ${name} exited (${sig ?? code}); see ${join(dir, 'logs', `${name}.log`)}\n`);
    });
    children.push(child);
    return child;
  };

  // NATS JetStream for the event stream: one server, or three with R3 streams.
  const natsBin = findNatsServer();
  const natsCount = values['nats-cluster'] ? 3 : 1;
  const nats = Array.from({ length: natsCount }, (_, i) => ({
    name: `nats${i + 1}`, port: base + 201 + i, clusterPort: base + 211 + i, store: join(dir, 'data', `nats${i + 1}`),
  }));
  for (const n of nats) {
    const conf = join(dir, `${n.name}.conf`);
    const routes = nats.filter((x) => x !== n).map((x) => `nats-route://127.0.0.1:${x.clusterPort}`);
    writeFileSync(conf, [
      `server_name: ${n.name}`, `listen: 127.0.0.1:${n.port}`, `jetstream { store_dir: "${n.store}" }`,
      ...(natsCount > 1 ? [`cluster { name: flotilla, listen: 127.0.0.1:${n.clusterPort}, routes: [${routes.join(', ')}] }`] : []), '',
    ].join('\n'));
    spawnLogged(n.name, ['-c', conf], natsBin);
  }
  const natsUrl = nats.map((n) => `nats://127.0.0.1:${n.port}`).join(',');

  const servers = members.map((m) => {
    const data = resolve(join(dir, 'data', m.id));
    const child = spawnLogged(m.id, ['server', '--id', m.id, '--peers', peers, '--api', m.api, '--data', data, '--cluster-token', clusterToken, '--nats', natsUrl]);
    return { ...m, pid: child.pid!, data };
  });

  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: flotilla', 'preferences: {}',
    'clusters:', '- name: flotilla', '  cluster:', `    server: http://${members[0].api}`,
    // Plain HTTP on loopback; client libraries (e.g. @kubernetes/client-node) refuse http:// without it.
    '    insecure-skip-tls-verify: true',
    'contexts:', '- name: flotilla', '  context:', '    cluster: flotilla', '    user: flotilla', '    namespace: default',
    'users:', '- name: flotilla', '  user: {}', '',
  ].join('\n'));
  const cluster: ClusterFile = {
    servers, nats: natsUrl, kubeconfig, controllers: [], schedulers: [], agents: [],
  };
  const writeClusterFile = () => writeFileSync(join(dir, 'cluster.json'), `${JSON.stringify(cluster, null, 2)}\n`);
  writeClusterFile();

  // Consumers are restarted when they exit (a controller manager that lost
  // its Lease exits on purpose, as kube-controller-manager does, and comes
  // back as a standby); cluster.json keeps their current pids.
  const supervise = (name: string, args: string[], record: { pid: number }) => {
    const start = () => {
      const child = spawnLogged(name, args);
      record.pid = child.pid!;
      writeClusterFile();
      child.on('exit', () => {
        if (!stopping) setTimeout(() => { if (!stopping) start(); }, 1000);
      });
    };
    start();
  };
  const apiUrls = members.map((m) => `http://${m.api}`).join(',');

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('flotilla up: stopping\n');
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

  // Wait until every server is ready, then say where everything is.
  const deadline = Date.now() + 60_000;
  for (const m of members) {
    for (;;) {
      try {
        const r = await request(`http://${m.api}/readyz`, { headersTimeout: 1000 });
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
    supervise(`controllers${i + 1}`, ['controllers', '--server', apiUrls, '--nats', natsUrl, '--id', `controllers${i + 1}`, '--metrics-address', record.metrics], record);
  }
  // Node agents, one per node, each on its own loopback address (127.0.0.11, .12, …), so they can all use the kubelet's port.
  for (let i = 0; i < nAgents; i++) {
    const name = `node-${i + 1}`;
    const address = `127.0.0.${11 + i}`;
    const record = { name, pid: 0, address, endpoint: `http://${address}:10250`, data: resolve(join(dir, 'data', `agent-${name}`)) };
    cluster.agents.push(record);
    // Containers outlive an agent that crashes (the next run adopts them), but not `flotilla up` stopping.
    supervise(`agent-${name}`, ['agent', '--name', name, '--address', address, '--port', '10250', '--data', record.data, '--server', apiUrls, '--nats', natsUrl, '--stop-containers-on-exit'], record);
  }
  process.stdout.write([
    `Flotilla is up: ${n} servers (data in ${join(dir, 'data')}, logs in ${join(dir, 'logs')})`,
    ...servers.map((s) => `  server ${s.id}: API http://${s.api}  peer ${s.peer}  pid ${s.pid}`),
    `  controllers:  ${nControllers} (one leads through the Lease kube-system/flotilla-controller-manager; /metrics on ${cluster.controllers.map((c) => c.metrics).join(', ') || '-'})`,
    `  node agents:  ${cluster.agents.map((a) => `${a.name} (${a.address})`).join(', ') || '-'}; pods run as processes, data in ${join(dir, 'data', 'agent-*')}`,
    `  NATS:         ${natsUrl} (stream EVENTS; npx flotilla events --follow)`,
    `  cluster file: ${join(dir, 'cluster.json')}`,
    `  kubectl:      KUBECONFIG=${kubeconfig} kubectl get namespaces`,
    `  flotilla:     npx flotilla get namespaces      (reads ${join(values.dir, 'cluster.json')})`,
    'Press Ctrl-C to stop.',
    '',
  ].join('\n'));
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
