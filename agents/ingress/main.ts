// `flotilla ingress`: the ingress controller, an HTTP(S) reverse proxy that
// serves the Ingresses of its IngressClass. It keeps Ingresses,
// IngressClasses, Services and EndpointSlices in the shared informers (and
// its TLS Secrets in an informer that lists and watches them through the
// API: Secret events on the stream carry no data), routes by host and path (routes.ts), balances over the ready
// endpoints (backends.ts) and writes each served Ingress's
// status.loadBalancer. No leader: several replicas serve alike and write the
// same status (a no-op write changes nothing).
import { createSecureContext, type SecureContext } from 'node:tls';
import pino from 'pino';
import client from 'prom-client';
import { DEFAULT_INGRESS_CLASS_ANNOTATION } from '../../api/kinds/networking.ts';
import { ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import { loadClientConfig } from '../client/config.ts';
import { resolveKind } from '../client/kinds.ts';
import { serveHealth } from '../health/http.ts';
import { onTermination, parseFlags } from '../process/flags.ts';
import { SharedInformerFactory } from '../informer/factory.ts';
import { Informer } from '../informer/informer.ts';
import { resolveNatsUrl } from '../informer/nats.ts';
import type { Logger } from '../informer/stream.ts';
import type { KubeObject } from '../informer/types.ts';
import { WorkQueue, runWorkers } from '../informer/workqueue.ts';
import type { BackendSource, ServiceLike, SliceLike } from './backends.ts';
import { IngressProxy } from './proxy.ts';
import { type IngressView, type RouteTable, buildRoutes, tlsSecretFor } from './routes.ts';

export const INGRESS_CONTROLLER = 'flotilla.io/ingress';
const INGRESSES = resolveKind('ingresses')!;
const INGRESS_CLASSES = resolveKind('ingressclasses')!;
const SECRETS = resolveKind('secrets')!;

const USAGE = `usage: flotilla ingress [--server URL[,URL…]] [--nats URL[,URL…]] [--listen 127.0.0.1:8080] [--listen-tls 127.0.0.1:8443|none]
       [--ingress-class flotilla] [--publish-address IP] [--metrics-address 127.0.0.1:0] [--log-level info]`;

/** Whether this controller serves an Ingress: its class, or no class while our IngressClass is the default. */
export function servesIngress(ing: IngressView, className: string, classes: { get(ns: string, name: string): KubeObject | undefined }): boolean {
  const named = ing.spec?.ingressClassName ?? ing.metadata.annotations?.['kubernetes.io/ingress.class'];
  if (named) return named === className;
  const ours = classes.get('', className) as (KubeObject & { spec?: { controller?: string } }) | undefined;
  return ours?.metadata?.annotations?.[DEFAULT_INGRESS_CLASS_ANNOTATION] === 'true' && ours.spec?.controller === INGRESS_CONTROLLER;
}

function splitAddress(a: string, flag: string): { host: string; port: number } {
  const i = a.lastIndexOf(':');
  const host = a.slice(0, i);
  const port = Number(a.slice(i + 1));
  if (i < 0 || !host || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${flag}: invalid address "${a}": expected HOST:PORT`);
  return { host, port };
}

export async function main(argv: string[]): Promise<void> {
  const values = parseFlags(argv, {
    server: { type: 'string' }, kubeconfig: { type: 'string' }, nats: { type: 'string' },
    listen: { type: 'string', default: '127.0.0.1:8080' },
    'listen-tls': { type: 'string', default: 'none' },
    'ingress-class': { type: 'string', default: 'flotilla' },
    'publish-address': { type: 'string' },
    'metrics-address': { type: 'string', default: '127.0.0.1:0' },
    'log-level': { type: 'string', default: process.env.FLOTILLA_LOG_LEVEL ?? 'info' },
  }, USAGE);
  if (!values) return;
  const str = (k: string) => values[k] as string;
  const log = pino({ name: 'ingress', level: str('log-level') });
  const http = splitAddress(str('listen'), '--listen');
  const tls = str('listen-tls') === 'none' ? undefined : splitAddress(str('listen-tls'), '--listen-tls');
  const className = str('ingress-class');
  const publish = str('publish-address') || http.host;

  const cfg = loadClientConfig({ server: str('server'), kubeconfig: str('kubeconfig') });
  const api = new ApiClient(cfg.servers, { credentials: cfg.credentials, userAgent: 'flotilla-ingress' });
  const informers = new SharedInformerFactory({ client: api, nats: resolveNatsUrl(str('nats')), logger: log, name: 'flotilla-ingress' });
  const ingresses = informers.informer('ingresses');
  const classes = informers.informer('ingressclasses');
  const services = informers.informer('services');
  const slices = informers.informer('endpointslices');
  // TLS Secrets come through the API (the server opens their sealed data):
  // events for Secrets on the stream carry metadata only.
  const secrets = new Informer({
    client: api, kind: SECRETS, source: 'watch', fieldSelector: 'type=kubernetes.io/tls', name: 'secrets@ingress', logger: log,
  });
  const synced = () => informers.hasSynced() && secrets.hasSynced();

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const requests = new client.Counter({ name: 'flotilla_ingress_requests_total', help: 'Requests proxied, by HTTP status.', labelNames: ['code'], registers: [registry] });
  const latency = new client.Histogram({
    name: 'flotilla_ingress_request_duration_seconds', help: 'Time to the response headers.', registers: [registry],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  });

  const served = () => (ingresses.list() as unknown as IngressView[]).filter((i) => servesIngress(i, className, classes));
  let table: RouteTable | undefined;
  const invalidate = () => { table = undefined; };
  for (const inf of [ingresses, classes]) inf.addEventHandler({ onAdd: invalidate, onUpdate: invalidate, onDelete: invalidate });

  const tlsCache = new Map<string, { rv: string; ctx: SecureContext }>();
  const backends: BackendSource = {
    service: (ns, name) => services.get(ns, name) as unknown as ServiceLike | undefined,
    slices: (ns, svc) => slices.byLabel('kubernetes.io/service-name', svc).filter((s) => s.metadata?.namespace === ns) as unknown as SliceLike[],
  };
  const proxy = new IngressProxy({
    routes: () => (table ??= buildRoutes(served())),
    backends,
    logger: log,
    onRequest: (code, s) => {
      requests.inc({ code: String(code) });
      latency.observe(s);
    },
    tlsContext: (name) => {
      const key = tlsSecretFor(served(), name);
      if (!key) return undefined;
      const [ns, secretName] = key.split('/') as [string, string];
      const secret = secrets.get(ns, secretName) as (KubeObject & { data?: Record<string, string> }) | undefined;
      if (!secret?.data?.['tls.crt'] || !secret.data['tls.key']) return undefined;
      const rv = String(secret.metadata?.resourceVersion);
      const have = tlsCache.get(key);
      if (have?.rv === rv) return have.ctx;
      try {
        const ctx = createSecureContext({ cert: Buffer.from(secret.data['tls.crt'], 'base64'), key: Buffer.from(secret.data['tls.key'], 'base64') });
        tlsCache.set(key, { rv, ctx });
        return ctx;
      } catch (e) {
        log.warn({ secret: key, err: (e as Error).message }, 'TLS secret does not hold a usable certificate and key');
        return undefined;
      }
    },
  });

  let listening = false;
  const health = await serveHealth({
    address: str('metrics-address'), registry,
    healthz: () => ({ ok: true, detail: { listen: str('listen'), synced: synced() } }),
    readyz: () => ({ ok: listening && synced(), detail: { listening } }),
  });
  await Promise.all([informers.start(), secrets.start()]);
  await ensureIngressClass(api, className, log);
  const httpPort = await proxy.listen(http.host, http.port);
  const tlsPort = tls ? await proxy.listenTls(tls.host, tls.port) : undefined;
  listening = true;

  // status.loadBalancer of every served Ingress: the address this proxy is reached on.
  const queue = new WorkQueue<string>({ name: 'ingress-status' });
  const enqueue = (o: KubeObject) => queue.add(`${o.metadata?.namespace}/${o.metadata?.name}`);
  ingresses.addEventHandler({ onAdd: enqueue, onUpdate: (_o, n) => enqueue(n) });
  classes.addEventHandler({ onAdd: () => ingresses.list().forEach(enqueue), onUpdate: () => ingresses.list().forEach(enqueue) });
  const workers = runWorkers(queue, 2, async (key) => {
    const [ns, name] = key.split('/') as [string, string];
    const ing = ingresses.get(ns, name) as unknown as (IngressView & { status?: { loadBalancer?: { ingress?: unknown[] } } }) | undefined;
    if (!ing || !servesIngress(ing, className, classes)) return;
    const want = [{ ip: publish }];
    if (JSON.stringify(ing.status?.loadBalancer?.ingress ?? []) === JSON.stringify(want)) return;
    try {
      await api.patch(resourcePath(INGRESSES, ns, name, 'status'), { status: { loadBalancer: { ingress: want } } }, 'application/merge-patch+json');
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return;
      throw e;
    }
  }, { onError: (key, err, attempts) => log.warn({ key, attempts, err: (err as Error).message }, 'writing Ingress status failed; will retry') });
  log.info({ http: `${http.host}:${httpPort}`, https: tls ? `${tls.host}:${tlsPort}` : undefined, class: className, publish, metrics: health.address }, 'serving');

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'stopping');
    queue.shutdown();
    await Promise.race([workers, new Promise((r) => setTimeout(r, 2000).unref())]);
    await proxy.close();
    await informers.stop().catch(() => {});
    await secrets.stop().catch(() => {});
    await health.close();
    await api.close();
    process.exit(0);
  };
  onTermination(shutdown);
}

/**
 * Creates our IngressClass (the default class) when it does not exist, as an
 * ingress controller's installation does; an existing one is left as it is.
 */
async function ensureIngressClass(api: ApiClient, name: string, log: Logger): Promise<void> {
  try {
    await api.create(resourcePath(INGRESS_CLASSES), {
      apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass',
      metadata: { name, annotations: { [DEFAULT_INGRESS_CLASS_ANNOTATION]: 'true' } },
      spec: { controller: INGRESS_CONTROLLER },
    });
    log.info({ class: name }, 'created the IngressClass');
  } catch (e) {
    if (!(e instanceof ApiClientError && e.code === 409)) throw e;
  }
}
