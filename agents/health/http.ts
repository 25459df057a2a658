// /healthz, /readyz and /metrics for a consumer process (controllers,
// scheduler, node agent): every Flotilla process can be probed and scraped.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type client from 'prom-client';

export interface HealthCheck {
  /** Healthy (200) or not (503), and a JSON-able detail shown in the body. */
  (): { ok: boolean; detail?: Record<string, unknown> };
}

export interface HealthServerOptions {
  /** host:port to listen on (port 0: any free port). */
  address: string;
  registry: client.Registry;
  healthz: HealthCheck;
  /** Defaults to healthz. */
  readyz?: HealthCheck;
  /** Serves other paths (the node agent's endpoints); true when it handled the request. */
  extra?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Takes HTTP upgrades (the node agent's exec); without it they are refused. */
  upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /**
   * HTTPS (the node agent with --tls-cert-file): the serving pair and the CA
   * client certificates are checked against (asked for, never required: the
   * health paths answer anyone; `extra` decides for its own).
   */
  tls?: { cert: string; key: string; clientCA?: string };
}

/**
 * Request limits of these listeners (the node agent's is reachable by
 * anything on the host): headers within 10 s and 16 KiB, the whole request
 * within 30 s (responses - log follows, exec streams - are not limited), and
 * no request body: nothing here reads one, so one is refused (413) and the
 * connection closed rather than drained.
 */
export const HEALTH_LISTENER_LIMITS = { headersTimeout: 10_000, requestTimeout: 30_000, maxHeaderSize: 16 * 1024 } as const;

function hasBody(req: IncomingMessage): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

export interface HealthServer {
  server: Server;
  /** The bound host:port. */
  address: string;
  close(): Promise<void>;
}

export async function serveHealth(o: HealthServerOptions): Promise<HealthServer> {
  const i = o.address.lastIndexOf(':');
  const host = o.address.slice(0, i) || '127.0.0.1';
  const port = Number(o.address.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid address "${o.address}": expected HOST:PORT`);
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (hasBody(req)) {
      res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' }).end('request bodies are not accepted here\n');
      return;
    }
    if (o.extra?.(req, res)) return;
    const check = path === '/healthz' ? o.healthz : path === '/readyz' ? (o.readyz ?? o.healthz) : undefined;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (check) {
      let r: ReturnType<HealthCheck>;
      try {
        r = check();
      } catch (e) {
        r = { ok: false, detail: { error: (e as Error).message } };
      }
      res.writeHead(r.ok ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: r.ok ? 'ok' : 'unhealthy', ...r.detail })}\n`);
      return;
    }
    if (path === '/metrics') {
      o.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': o.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500).end(e.message),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  };
  const limits = { ...HEALTH_LISTENER_LIMITS, connectionsCheckingInterval: 1000 };
  const server = o.tls
    ? createHttpsServer({ ...limits, cert: o.tls.cert, key: o.tls.key, ...(o.tls.clientCA ? { ca: o.tls.clientCA, requestCert: true, rejectUnauthorized: false } : {}) }, handler)
    : createServer(limits, handler);
  if (o.upgrade) server.on('upgrade', o.upgrade);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address();
  const bound = typeof a === 'object' && a ? `${host}:${a.port}` : o.address;
  return { server, address: bound, close: () => new Promise((r) => server.close(() => r())) };
}
