// `flotilla dns`: the cluster DNS server as its own process (CoreDNS's place
// in Kubernetes). It keeps Services, EndpointSlices and Namespaces in the
// shared informers (LIST at a revision, then the event stream) and answers
// from them, so it needs no leader: run as many as you like, each answers
// alike. Names outside the cluster zone go to the host's resolvers.
import { readFileSync } from 'node:fs';
import pino from 'pino';
import client from 'prom-client';
import { ApiClient } from '../client/api.ts';
import { loadClientConfig } from '../client/config.ts';
import { serveHealth } from '../health/http.ts';
import { onTermination, parseFlags } from '../process/flags.ts';
import { SharedInformerFactory } from '../informer/factory.ts';
import { resolveNatsUrl } from '../informer/nats.ts';
import type { KubeObject } from '../informer/types.ts';
import type { ClusterView, ServiceView, SliceView } from './records.ts';
import { DnsServer, hostNameservers } from './server.ts';

/** The loopback address the cluster DNS listens on by default (apart from node, pod and service addresses). */
export const DEFAULT_DNS_ADDRESS = '127.0.0.10:53';

const USAGE = `usage: flotilla dns [--server URL[,URL…]] [--nats URL[,URL…]] [--listen ${DEFAULT_DNS_ADDRESS}]
       [--cluster-domain cluster.local] [--upstream HOST[:PORT],…|none] [--ttl 5]
       [--metrics-address 127.0.0.1:0] [--log-level info]`;

/** The cluster as the informers hold it. */
export function informerView(services: { get(ns: string, name: string): KubeObject | undefined }, slices: { byLabel(k: string, v: string): KubeObject[] }, namespaces: { get(ns: string, name: string): KubeObject | undefined }): ClusterView {
  return {
    service: (ns, name) => services.get(ns, name) as unknown as ServiceView | undefined,
    slices: (ns, svc) => slices.byLabel('kubernetes.io/service-name', svc).filter((s) => s.metadata?.namespace === ns) as unknown as SliceView[],
    namespaceExists: (ns) => !!namespaces.get('', ns),
  };
}

export async function main(argv: string[]): Promise<void> {
  const values = parseFlags(argv, {
    server: { type: 'string' }, kubeconfig: { type: 'string' }, nats: { type: 'string' },
    listen: { type: 'string', default: DEFAULT_DNS_ADDRESS },
    'cluster-domain': { type: 'string', default: 'cluster.local' },
    upstream: { type: 'string' },
    ttl: { type: 'string', default: '5' },
    'metrics-address': { type: 'string', default: '127.0.0.1:0' },
    'log-level': { type: 'string', default: process.env.FLOTILLA_LOG_LEVEL ?? 'info' },
  }, USAGE);
  if (!values) return;
  const str = (k: string) => values[k] as string;
  const log = pino({ name: 'dns', level: str('log-level') });
  const listen = str('listen');
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i);
  const port = Number(listen.slice(i + 1));
  if (i < 0 || !host || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--listen: invalid address "${listen}": expected HOST:PORT`);
  const ttl = Number(str('ttl'));
  if (!Number.isInteger(ttl) || ttl < 0) throw new Error(`--ttl: "${str('ttl')}" is not a whole number of seconds`);
  let upstreams: string[];
  if (str('upstream') === 'none') upstreams = [];
  else if (str('upstream')) upstreams = str('upstream').split(',').map((s) => s.trim()).filter(Boolean);
  else {
    try {
      upstreams = hostNameservers(readFileSync('/etc/resolv.conf', 'utf8'));
    } catch {
      upstreams = [];
    }
  }

  const cfg = loadClientConfig({ server: str('server'), kubeconfig: str('kubeconfig') });
  const api = new ApiClient(cfg.servers, { credentials: cfg.credentials, userAgent: 'flotilla-dns' });
  const informers = new SharedInformerFactory({ client: api, nats: resolveNatsUrl(str('nats')), logger: log, name: 'flotilla-dns' });
  const view = informerView(informers.informer('services'), informers.informer('endpointslices'), informers.informer('namespaces'));

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const answers = new client.Counter({
    name: 'flotilla_dns_requests_total', help: 'DNS queries answered, by source (cluster, forward, invalid) and rcode.',
    labelNames: ['source', 'rcode'], registers: [registry],
  });
  const server = new DnsServer({
    view, zone: str('cluster-domain'), upstreams, ttl, logger: log,
    onAnswer: (source, rcode) => answers.inc({ source, rcode }),
  });
  let listening = false;
  const health = await serveHealth({
    address: str('metrics-address'), registry,
    healthz: () => ({ ok: true, detail: { listen, synced: informers.hasSynced() } }),
    readyz: () => ({ ok: listening && informers.hasSynced(), detail: { listen, listening } }),
  });
  await informers.start();
  const bound = await server.listen(host, port);
  listening = true;
  log.info({ listen: `${host}:${bound}`, zone: str('cluster-domain'), upstreams, metrics: health.address }, 'serving');

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'stopping');
    await server.close();
    await informers.stop().catch(() => {});
    await health.close();
    await api.close();
    process.exit(0);
  };
  onTermination(shutdown);
}
