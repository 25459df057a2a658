// `flotilla agent`: the node agent process (Flotilla's kubelet) for one node.
// JSON logs (pino) on stdout; /healthz and /metrics on --address:--port
// (also published as the Node's kubelet endpoint port).
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import client from 'prom-client';
import { parseIPv4 } from '../../api/ipv4.ts';
import { parseDuration } from '../../api/units.ts';
import { ApiClient } from '../client/api.ts';
import { loadClientConfig } from '../client/config.ts';
import { serveHealth } from '../health/http.ts';
import { SharedInformerFactory } from '../informer/factory.ts';
import { ClusterIPRole } from '../proxy/cluster-ips.ts';
import { startServiceProxy } from '../proxy/start.ts';
import type { Logger } from '../informer/informer.ts';
import { NodeAgent } from './agent.ts';
import { endpointAuthorizer } from './endpoint-auth.ts';
import { loadTls } from '../../api/tls-files.ts';
import { SimNodes } from './sim.ts';
import { allocatable, formatList, machineCapacity, measure, nodeInfo, parseReserved } from './node-status.ts';

const VERSION = '0.1.0';

const USAGE = `usage: flotilla agent --data DIR [--name NODE] [--address 127.0.0.11] [--port 10250] [--server URL[,URL…]]
       [--zone ZONE] [--node-labels k=v,…] [--capacity cpu=2,memory=4Gi,pods=110,ephemeral-storage=10Gi]
       [--system-reserved cpu=100m,memory=100Mi] [--kube-reserved cpu=100m,memory=100Mi] [--pod-cidr CIDR]
       [--backoff-initial 10s] [--backoff-max 5m] [--sync-frequency 1m]
       [--container-log-max-size 10Mi] [--container-log-max-files 5] [--node-status-update-frequency 10s] [--lease-renew-interval 10s]
       [--nats URL[,URL…]] [--metrics-interval 15s] [--stop-containers-on-exit] [--log-level info]
       [--tls-cert-file F --tls-private-key-file F [--client-ca-file CA [--endpoint-users USER,…]]]
       flotilla agent --runtime sim --count N [--name-prefix hollow-] [--address 127.0.64.1] [--port P]
       [--start-latency 500ms] [--failure-rate 0] [--capacity …] [--server URL[,URL…]]`;

/** The kubelet's containerLogMaxSize / containerLogMaxFiles. */
function logRotation(size: string, files: string): { maxBytes: number; maxFiles: number } {
  const maxBytes = parseReserved(`size=${size}`, '--container-log-max-size').size;
  const maxFiles = Number(files);
  if (!(maxBytes > 0)) throw new Error(`invalid --container-log-max-size ${size}`);
  if (!Number.isInteger(maxFiles) || maxFiles < 2) throw new Error(`invalid --container-log-max-files ${files}: at least 2`);
  return { maxBytes, maxFiles };
}

function labelsFrom(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (text ?? '').split(',').filter(Boolean)) {
    const i = part.indexOf('=');
    if (i <= 0) throw new Error(`invalid --node-labels entry "${part}": expected key=value`);
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

export async function main(argv: string[]): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv, strict: true, allowPositionals: false,
      options: {
        server: { type: 'string' }, kubeconfig: { type: 'string' }, name: { type: 'string' }, address: { type: 'string' },
        port: { type: 'string', default: '10250' }, data: { type: 'string' }, zone: { type: 'string' },
        'node-labels': { type: 'string' }, capacity: { type: 'string' }, 'system-reserved': { type: 'string' },
        'kube-reserved': { type: 'string' }, 'pod-cidr': { type: 'string' },
        'backoff-initial': { type: 'string', default: '10s' }, 'backoff-max': { type: 'string', default: '5m' },
        'node-status-update-frequency': { type: 'string', default: '10s' },
        nats: { type: 'string' }, 'metrics-interval': { type: 'string', default: '15s' }, 'sync-frequency': { type: 'string', default: '1m' },
        'container-log-max-size': { type: 'string', default: '10Mi' }, 'container-log-max-files': { type: 'string', default: '5' }, 'lease-renew-interval': { type: 'string', default: '10s' },
        'log-level': { type: 'string', default: process.env.FLOTILLA_LOG_LEVEL ?? 'info' },
        runtime: { type: 'string', default: 'process' }, 'stop-containers-on-exit': { type: 'boolean', default: false }, count: { type: 'string', default: '1' },
        'name-prefix': { type: 'string', default: 'hollow-' }, 'start-latency': { type: 'string', default: '500ms' },
        'failure-rate': { type: 'string', default: '0' },
        // The node's service proxy (agents/proxy): NodePort/LoadBalancer listeners here, cluster IPs if this agent holds the machine's Lease.
        'service-proxy': { type: 'string', default: 'true' },
        // The cluster DNS server's IPv4 address (port 53): pods get a resolv.conf naming it (the kubelet's --cluster-dns).
        'cluster-dns': { type: 'string' }, 'cluster-domain': { type: 'string', default: 'cluster.local' },
        // TLS on the agent's port and who may use its endpoints (the kubelet's flag names; endpoint-auth.ts).
        'tls-cert-file': { type: 'string' }, 'tls-private-key-file': { type: 'string' }, 'client-ca-file': { type: 'string' },
        'endpoint-users': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const str = (k: string) => values[k] as string | undefined;
  if (str('runtime') === 'sim') return runSim(str);
  if (str('runtime') !== 'process') throw new Error(`--runtime ${str('runtime')}: expected process or sim`);
  if (!str('data')) throw new Error(`--data is required\n${USAGE}`);
  const address = str('address') ?? '127.0.0.11';
  const a = parseIPv4(address);
  if (a === undefined || Math.floor(a / 2 ** 24) !== 127) throw new Error(`--address ${address}: a node's address is a loopback IPv4 address (127.x.y.z)`);
  const port = Number(str('port'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${str('port')}`);
  const name = (str('name') ?? hostname()).toLowerCase();
  const dataDir = resolve(str('data')!);
  mkdirSync(dataDir, { recursive: true });
  const log = pino({ name: 'agent', level: str('log-level'), base: { node: name } }) as unknown as Logger;

  const capacityOverride = parseReserved(str('capacity'), '--capacity');
  const capacity = machineCapacity(dataDir, capacityOverride);
  const alloc = allocatable(capacity, parseReserved(str('system-reserved'), '--system-reserved'), parseReserved(str('kube-reserved'), '--kube-reserved'));
  const labels: Record<string, string> = {
    'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': nodeInfo(VERSION).architecture,
    ...(str('zone') ? { 'topology.kubernetes.io/zone': str('zone')! } : {}),
    ...labelsFrom(str('node-labels')),
  };

  const tls = loadTls(str('tls-cert-file'), str('tls-private-key-file'), str('client-ca-file'));
  if (str('endpoint-users') !== undefined && !tls?.clientCA) throw new Error('--endpoint-users needs --client-ca-file (and TLS): without it anyone who reaches the port may use the endpoints');
  const endpointUsers = str('endpoint-users')?.split(',').map((u) => u.trim()).filter(Boolean);
  const cfg = loadClientConfig({ server: str('server'), kubeconfig: str('kubeconfig'), nats: str('nats') });
  const api = new ApiClient(cfg.servers, { credentials: cfg.credentials, userAgent: `flotilla-agent/${name}` });
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });

  let agent: NodeAgent | undefined;
  const health = await serveHealth({
    address: `${address}:${port}`, registry,
    healthz: () => ({ ok: true, detail: { node: name, synced: agent?.pods.hasSynced() ?? false, pods: agent?.workers.size ?? 0 } }),
    readyz: () => ({ ok: agent?.pods.hasSynced() ?? false }),
    extra: (req, res) => agent?.handleHttp(req, res) ?? false,
    upgrade: (req, socket, head) => (agent ? agent.handleUpgrade(req, socket, head) : socket.destroy()),
    tls,
  });
  const boundPort = Number(health.address.slice(health.address.lastIndexOf(':') + 1));
  agent = new NodeAgent({
    client: api, name, address, dataDir, labels,
    capacity: formatList(capacity), allocatable: formatList(alloc), allocatableValues: alloc,
    nodeInfo: nodeInfo(VERSION), kubeletPort: boundPort, podCIDR: str('pod-cidr'),
    clusterDns: str('cluster-dns') ? { server: clusterDnsAddress(str('cluster-dns')!), domain: str('cluster-domain')! } : undefined, measure: () => measure(dataDir),
    backoff: { initialMs: parseDuration(str('backoff-initial')!, '--backoff-initial'), maxMs: parseDuration(str('backoff-max')!, '--backoff-max') },
    statusIntervalMs: parseDuration(str('node-status-update-frequency')!, '--node-status-update-frequency'),
    leaseIntervalMs: parseDuration(str('lease-renew-interval')!, '--lease-renew-interval'),
    syncFrequencyMs: parseDuration(str('sync-frequency')!, '--sync-frequency'),
    logRotation: logRotation(str('container-log-max-size')!, str('container-log-max-files')!),
    nats: cfg.nats, metricsIntervalMs: parseDuration(str('metrics-interval')!, '--metrics-interval'),
    authorizeEndpoint: endpointAuthorizer(!!tls?.clientCA, endpointUsers),
    log,
  });
  for (const [k, help] of [['starts', 'Container processes started.'], ['restarts', 'Container restarts.'], ['adoptions', 'Container processes adopted after an agent restart.'], ['statusWrites', 'Pod status writes.'], ['kills', 'Containers stopped.'], ['orphansKilled', 'Adopted processes stopped because their pod was gone.']] as const) {
    const a2 = agent;
    new client.Gauge({ name: `flotilla_agent_${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`, help, registers: [registry], collect() { this.set(a2.counters[k]); } });
  }
  new client.Gauge({ name: 'flotilla_agent_pods', help: 'Pods with a worker on this node.', registers: [registry], collect() { this.set(agent!.workers.size); } });
  log.info({ servers: cfg.servers, address, endpoint: health.address, dataDir, capacity: formatList(capacity), allocatable: formatList(alloc) }, 'starting');
  await agent.start();
  log.info({ pods: agent.pods.size, metrics: cfg.nats ? `every ${str('metrics-interval')} on NATS` : 'none (no NATS configured)' }, 'pods synced');

  // kube-proxy's job in this process: needs the EVENTS stream for its informers.
  let proxy: { stop(): Promise<void> } | undefined;
  if (str('service-proxy') !== 'false' && cfg.nats) {
    const informers = new SharedInformerFactory({ client: api, nats: cfg.nats, logger: log, name: `flotilla-proxy-${name}` });
    const serviceProxy = startServiceProxy({ informers, nodeAddress: address, logger: log, registry });
    const role = new ClusterIPRole({ client: api, proxy: serviceProxy, identity: `${name}_${process.pid}`, services: informers.informer('services'), nodes: informers.informer('nodes'), logger: log, registry });
    await informers.start();
    serviceProxy.start();
    role.start();
    proxy = { stop: async () => { await role.stop().catch(() => {}); await serviceProxy.stop(); await informers.stop().catch(() => {}); } };
    log.info({ address }, 'service proxy running');
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    await proxy?.stop();
    const stopContainers = values['stop-containers-on-exit'] === true;
    log.info({ signal, containers: stopContainers ? 'stopped' : 'kept running' }, 'stopping');
    await agent!.stop().catch(() => {});
    if (stopContainers) await agent!.stopContainers(2000).catch((e) => log.error({ err: (e as Error).message }, 'stopping containers failed'));
    await health.close();
    await api.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

/** `--runtime sim`: N hollow nodes in this process (agents/agent/sim.ts). */
async function runSim(str: (k: string) => string | undefined): Promise<void> {
  const count = Number(str('count'));
  if (!Number.isInteger(count) || count < 1) throw new Error(`invalid --count ${str('count')}`);
  const failureRate = Number(str('failure-rate'));
  if (!(failureRate >= 0 && failureRate <= 1)) throw new Error(`invalid --failure-rate ${str('failure-rate')}: expected 0…1`);
  const address = simAddress(str);
  const port = Number(str('port'));
  const prefix = str('name-prefix')!;
  const log = pino({ name: 'agent', level: str('log-level'), base: { runtime: 'sim', prefix } }) as unknown as Logger;
  // Hollow nodes measure no machine: 4 cores, 16Gi, 110 pods, 100Gi unless --capacity says otherwise.
  const capacity = { cpu: 4, memory: 16 * 2 ** 30, pods: 110, 'ephemeral-storage': 100 * 2 ** 30, ...parseReserved(str('capacity'), '--capacity') };
  const alloc = allocatable(capacity, parseReserved(str('system-reserved'), '--system-reserved'), parseReserved(str('kube-reserved'), '--kube-reserved'));
  const cfg = loadClientConfig({ server: str('server'), kubeconfig: str('kubeconfig') });
  const api = new ApiClient(cfg.servers, { credentials: cfg.credentials, userAgent: `flotilla-agent/sim-${prefix}` });
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  let sim: SimNodes | undefined;
  const health = await serveHealth({
    address: `${address}:${port}`, registry,
    healthz: () => ({ ok: true, detail: { runtime: 'sim', nodes: count, informers: 1, synced: sim?.pods.hasSynced() ?? false, pods: sim?.pods.size ?? 0, ...sim?.counters } }),
    readyz: () => ({ ok: sim?.pods.hasSynced() ?? false }),
  });
  sim = new SimNodes({
    client: api, count, namePrefix: prefix, baseAddress: address,
    labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': nodeInfo(VERSION).architecture, ...(str('zone') ? { 'topology.kubernetes.io/zone': str('zone')! } : {}), ...labelsFrom(str('node-labels')) },
    capacity: formatList(capacity), allocatable: formatList(alloc), nodeInfo: nodeInfo(VERSION),
    kubeletPort: Number(health.address.slice(health.address.lastIndexOf(':') + 1)),
    startLatencyMs: parseDuration(str('start-latency')!, '--start-latency'), failureRate,
    statusIntervalMs: parseDuration(str('node-status-update-frequency')!, '--node-status-update-frequency'),
    leaseIntervalMs: parseDuration(str('lease-renew-interval')!, '--lease-renew-interval'),
    log,
  });
  log.info({ count, prefix, servers: cfg.servers, endpoint: health.address }, 'starting hollow nodes');
  await sim.start();
  log.info({ pods: sim.pods.size }, 'hollow nodes registered, pods synced');
  const shutdown = async () => {
    await sim!.stop().catch(() => {});
    await health.close();
    await api.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
}

/** Hollow nodes' first address (default 127.0.64.1, apart from the process agents' 127.0.0.11, .12, …). */
function simAddress(str: (k: string) => string | undefined): string {
  const address = str('address') ?? '127.0.64.1';
  const a = parseIPv4(address);
  if (a === undefined || Math.floor(a / 2 ** 24) !== 127) throw new Error(`--address ${address}: a node's address is a loopback IPv4 address (127.x.y.z)`);
  return address;
}

/** --cluster-dns: an IPv4 address (resolv.conf names no port, so the server listens on 53). */
function clusterDnsAddress(v: string): string {
  const host = v.replace(/:53$/, '');
  if (parseIPv4(host) === undefined) throw new Error(`--cluster-dns ${v}: expected the DNS server's IPv4 address (it must listen on port 53)`);
  return host;
}
