// `flotilla proxy`: a node's service proxy as its own process (kube-proxy's
// place), for a node whose agent runs elsewhere or for tests. The node agent
// runs the same ServiceProxy and ClusterIPRole in its own process.
import { hostname } from 'node:os';
import pino from 'pino';
import client from 'prom-client';
import { parseDuration } from '../../api/units.ts';
import { ApiClient } from '../client/api.ts';
import { loadClientConfig } from '../client/config.ts';
import { serveHealth } from '../health/http.ts';
import { onTermination, parseFlags } from '../process/flags.ts';
import { SharedInformerFactory } from '../informer/factory.ts';
import { resolveNatsUrl } from '../informer/nats.ts';
import { ClusterIPRole } from './cluster-ips.ts';
import { startServiceProxy } from './start.ts';

const USAGE = `usage: flotilla proxy --address NODE_IP [--node NAME] [--server URL[,URL…]] [--nats URL[,URL…]]
       [--cluster-ip-lease flotilla-proxy-<hostname>] [--lease-duration 15s] [--renew-deadline 10s] [--retry-period 2s]
       [--metrics-address 127.0.0.1:0] [--log-level info]`;

export async function main(argv: string[]): Promise<void> {
  const values = parseFlags(argv, {
    server: { type: 'string' }, kubeconfig: { type: 'string' }, nats: { type: 'string' },
    address: { type: 'string' }, node: { type: 'string' },
    'cluster-ip-lease': { type: 'string', default: `flotilla-proxy-${hostname()}` },
    'lease-duration': { type: 'string', default: '15s' },
    'renew-deadline': { type: 'string', default: '10s' },
    'retry-period': { type: 'string', default: '2s' },
    'metrics-address': { type: 'string', default: '127.0.0.1:0' },
    'log-level': { type: 'string', default: process.env.FLOTILLA_LOG_LEVEL ?? 'info' },
  }, USAGE);
  if (!values) return;
  const str = (k: string) => values[k] as string;
  if (!str('address')) throw new Error(`--address is required\n${USAGE}`);
  const node = str('node') || str('address');
  const log = pino({ name: 'proxy', level: str('log-level'), base: { node } });
  const cfg = loadClientConfig({ server: str('server'), kubeconfig: str('kubeconfig') });
  const api = new ApiClient(cfg.servers, { credentials: cfg.credentials, userAgent: `flotilla-proxy/${node}` });
  const informers = new SharedInformerFactory({ client: api, nats: resolveNatsUrl(str('nats')), logger: log, name: 'flotilla-proxy' });
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });

  const proxy = startServiceProxy({ informers, nodeAddress: str('address'), logger: log, registry });
  const role = new ClusterIPRole({
    client: api, proxy, identity: `${node}_${process.pid}`, services: informers.informer('services'), nodes: informers.informer('nodes'),
    leaseName: str('cluster-ip-lease'), logger: log, registry,
    leaseDurationMs: parseDuration(str('lease-duration'), '--lease-duration'),
    renewDeadlineMs: parseDuration(str('renew-deadline'), '--renew-deadline'),
    retryPeriodMs: parseDuration(str('retry-period'), '--retry-period'),
  });
  let synced = false;
  const health = await serveHealth({
    address: str('metrics-address'), registry,
    healthz: () => ({ ok: true, detail: { node, clusterIPs: role.elector.isLeader(), listening: proxy.listening(), bindErrors: Object.fromEntries(proxy.bindErrors) } }),
    readyz: () => ({ ok: synced, detail: { node } }),
  });
  await informers.start();
  proxy.start();
  role.start();
  synced = true;
  log.info({ address: str('address'), lease: str('cluster-ip-lease'), metrics: health.address }, 'proxying');

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'stopping');
    await role.stop().catch(() => {});
    await proxy.stop();
    await informers.stop().catch(() => {});
    await health.close();
    await api.close();
    process.exit(0);
  };
  onTermination(shutdown);
}
