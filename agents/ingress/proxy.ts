// The ingress HTTP(S) reverse proxy: Node's HTTP server parses requests,
// undici forwards them (streaming both ways, keep-alive pools per backend),
// no HTTP parsing of our own. A backend that refuses the connection is
// skipped for the next ready endpoint when the request has no body (so it
// can be sent again); WebSocket and other upgrades are tunnelled.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { SecureContext } from 'node:tls';
import { pipeline } from 'node:stream/promises';
import { Agent, request } from 'undici';
import type { Logger } from '../informer/stream.ts';
import { silentLogger } from '../informer/stream.ts';
import { type BackendSource, resolveBackend } from './backends.ts';
import { type RouteTable, match } from './routes.ts';

export interface IngressProxyOptions {
  /** The routes now (rebuilt by the caller when Ingresses change). */
  routes: () => RouteTable;
  backends: BackendSource;
  /** The certificate for an SNI server name; undefined refuses the handshake. */
  tlsContext?: (serverName: string) => SecureContext | undefined;
  logger?: Logger;
  /** Called once per request: HTTP status and seconds taken. */
  onRequest?: (code: number, seconds: number) => void;
  /** How long a backend may take to send response headers (ms). */
  upstreamTimeoutMs?: number;
}

/** Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

function forwardHeaders(req: IncomingMessage, proto: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const named = new Set(String(req.headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim()).filter(Boolean));
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || named.has(k)) continue;
    out[k] = v;
  }
  const client = req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  out['x-forwarded-for'] = prior ? `${String(prior)}, ${client}` : client;
  out['x-forwarded-host'] = String(req.headers.host ?? '');
  out['x-forwarded-proto'] = proto;
  out['x-real-ip'] = client;
  return out;
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

function send(res: ServerResponse, code: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class IngressProxy {
  private readonly servers: net.Server[] = [];
  private readonly dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 256 });
  private readonly log: Logger;
  /** Round-robin position per backend. */
  private readonly next = new Map<string, number>();

  constructor(private readonly o: IngressProxyOptions) {
    this.log = o.logger ?? silentLogger;
  }

  async listen(host: string, port: number): Promise<number> {
    const server = http.createServer((req, res) => void this.handle(req, res, 'http'));
    server.on('upgrade', (req, socket, head) => this.tunnel(req, socket as net.Socket, head));
    return this.start(server, host, port);
  }

  async listenTls(host: string, port: number): Promise<number> {
    const server = https.createServer({
      SNICallback: (name, cb) => {
        const ctx = this.o.tlsContext?.(name);
        if (ctx) cb(null, ctx);
        else cb(new Error(`no certificate for "${name}"`));
      },
    }, (req, res) => void this.handle(req, res, 'https'));
    server.on('upgrade', (req, socket, head) => this.tunnel(req, socket as net.Socket, head));
    server.on('tlsClientError', (e) => this.log.debug?.({ err: e.message }, 'TLS handshake failed'));
    return this.start(server, host, port);
  }

  private async start(server: net.Server, host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.servers.push(server);
    return (server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => {
      (s as http.Server).closeAllConnections?.();
      s.close(() => r());
    })));
    await this.dispatcher.close();
  }

  /** The targets for a request, rotated so that each request starts at the next endpoint. */
  private route(req: IncomingMessage): { targets: { ip: string; port: number }[] } | { code: number; text: string } {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const m = match(this.o.routes(), String(req.headers.host ?? ''), path);
    if ('notFound' in m) return { code: 404, text: 'default backend - 404\n' };
    const be = m.route.backend;
    if ('unsupported' in be) return { code: 503, text: `${be.unsupported}\n` };
    const r = resolveBackend(this.o.backends, be);
    if ('error' in r) return { code: 503, text: `${r.error}\n` };
    const key = `${be.namespace}/${be.service}:${be.port.name ?? be.port.number}`;
    const start = (this.next.get(key) ?? 0) % r.targets.length;
    this.next.set(key, start + 1);
    return { targets: [...r.targets.slice(start), ...r.targets.slice(0, start)] };
  }

  private async handle(req: IncomingMessage, res: ServerResponse, proto: string): Promise<void> {
    const t0 = performance.now();
    const done = (code: number) => this.o.onRequest?.(code, (performance.now() - t0) / 1000);
    const r = this.route(req);
    if ('code' in r) {
      send(res, r.code, r.text);
      done(r.code);
      return;
    }
    const headers = forwardHeaders(req, proto);
    // A request with a body can be sent once; one without can go to the next endpoint if this one refuses.
    const attempts = hasBody(req) ? 1 : Math.min(r.targets.length, 3);
    let lastError = '';
    for (let i = 0; i < attempts; i++) {
      const target = r.targets[i]!;
      try {
        const up = await request(`http://${target.ip}:${target.port}${req.url ?? '/'}`, {
          method: req.method as 'GET', headers, body: hasBody(req) ? req : undefined, dispatcher: this.dispatcher,
          headersTimeout: this.o.upstreamTimeoutMs ?? 60_000, bodyTimeout: 0,
        });
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
        res.writeHead(up.statusCode, out);
        done(up.statusCode);
        await pipeline(up.body, res).catch(() => res.destroy());
        return;
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        lastError = `${target.ip}:${target.port}: ${err.code ?? err.message}`;
        const refused = err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET' || err.code === 'UND_ERR_SOCKET';
        if (!refused || res.headersSent) break;
      }
    }
    this.log.warn({ url: req.url, host: req.headers.host, err: lastError }, 'upstream failed');
    send(res, 502, `upstream failed: ${lastError}\n`);
    done(502);
  }

  /** Upgrades (WebSocket): the request re-sent as Node parsed it, then bytes both ways. */
  private tunnel(req: IncomingMessage, socket: net.Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const r = this.route(req);
    if ('code' in r) {
      socket.end(`HTTP/1.1 ${r.code} ${http.STATUS_CODES[r.code]}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(r.text)}\r\nConnection: close\r\n\r\n${r.text}`);
      return;
    }
    const target = r.targets[0]!;
    const up = net.connect(target.port, target.ip, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      lines.push(`X-Forwarded-For: ${req.socket.remoteAddress ?? ''}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => {
      if (!socket.destroyed) socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    socket.on('close', () => up.destroy());
  }
}
