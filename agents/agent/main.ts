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
import type { Logger } from '../informer/informer.ts';
import { NodeAgent } from './agent.ts';
import { allocatable, formatList, machineCapacity, measure, nodeInfo, parseReserved } from './node-status.ts';

const VERSION = '0.1.0';

const USAGE = `usage: flotilla agent --data DIR [--name NODE] [--address 127.0.0.11] [--port 10250] [--server URL[,URL…]]
       [--zone ZONE] [--node-labels k=v,…] [--capacity cpu=2,memory=4Gi,pods=110,ephemeral-storage=10Gi]
       [--system-reserved cpu=100m,memory=100Mi] [--kube-reserved cpu=100m,memory=100Mi] [--pod-cidr CIDR]
       [--backoff-initial 10s] [--backoff-max 5m] [--node-status-update-frequency 10s] [--lease-renew-interval 10s]
       [--log-level info]`;

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
        server: { type: 'string' }, name: { type: 'string' }, address: { type: 'string', default: '127.0.0.11' },
        port: { type: 'string', default: '10250' }, data: { type: 'string' }, zone: { type: 'string' },
        'node-labels': { type: 'string' }, capacity: { type: 'string' }, 'system-reserved': { type: 'string' },
        'kube-reserved': { type: 'string' }, 'pod-cidr': { type: 'string' },
        'backoff-initial': { type: 'string', default: '10s' }, 'backoff-max': { type: 'string', default: '5m' },
        'node-status-update-frequency': { type: 'string', default: '10s' }, 'lease-renew-interval': { type: 'string', default: '10s' },
        'log-level': { type: 'string', default: process.env.FLOTILLA_LOG_LEVEL ?? 'info' },
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
  if (!str('data')) throw new Error(`--data is required\n${USAGE}`);
  const address = str('address')!;
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

  const cfg = loadClientConfig({ server: str('server') });
  const api = new ApiClient(cfg.servers, { userAgent: `flotilla-agent/${name}` });
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });

  let agent: NodeAgent | undefined;
  const health = await serveHealth({
    address: `${address}:${port}`, registry,
    healthz: () => ({ ok: true, detail: { node: name, synced: agent?.pods.hasSynced() ?? false, pods: agent?.workers.size ?? 0 } }),
    readyz: () => ({ ok: agent?.pods.hasSynced() ?? false }),
  });
  const boundPort = Number(health.address.slice(health.address.lastIndexOf(':') + 1));
  agent = new NodeAgent({
    client: api, name, address, dataDir, labels,
    capacity: formatList(capacity), allocatable: formatList(alloc), allocatableValues: alloc,
    nodeInfo: nodeInfo(VERSION), kubeletPort: boundPort, podCIDR: str('pod-cidr'), measure: () => measure(dataDir),
    backoff: { initialMs: parseDuration(str('backoff-initial')!, '--backoff-initial'), maxMs: parseDuration(str('backoff-max')!, '--backoff-max') },
    statusIntervalMs: parseDuration(str('node-status-update-frequency')!, '--node-status-update-frequency'),
    leaseIntervalMs: parseDuration(str('lease-renew-interval')!, '--lease-renew-interval'),
    log,
  });
  for (const [k, help] of [['starts', 'Container processes started.'], ['restarts', 'Container restarts.'], ['adoptions', 'Container processes adopted after an agent restart.'], ['statusWrites', 'Pod status writes.'], ['kills', 'Containers stopped.'], ['orphansKilled', 'Adopted processes stopped because their pod was gone.']] as const) {
    const a2 = agent;
    new client.Gauge({ name: `flotilla_agent_${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`, help, registers: [registry], collect() { this.set(a2.counters[k]); } });
  }
  new client.Gauge({ name: 'flotilla_agent_pods', help: 'Pods with a worker on this node.', registers: [registry], collect() { this.set(agent!.workers.size); } });
  log.info({ servers: cfg.servers, address, endpoint: health.address, dataDir, capacity: formatList(capacity), allocatable: formatList(alloc) }, 'starting');
  await agent.start();
  log.info({ pods: agent.pods.size }, 'pods synced');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping (containers keep running)');
    await agent!.stop().catch(() => {});
    await health.close();
    await api.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}
