// One stable API address in front of the servers (what kind and k3s put in
// front of an HA control plane): a TCP balancer that sends each connection to
// the next server whose /readyz answered 200 at the last check (every
// second), and on to another if that one refuses (agents/proxy/tcp.ts).
// kubectl pointed at it keeps working when a server dies. Bytes are piped as
// they are, so watches, upgrades (exec, port-forward) and keep-alive pass, and
// TLS goes through untouched: the client's handshake (and its client
// certificate) reaches the server, which the certificate's SANs name.
import net from 'node:net';
import { Agent, type Dispatcher, request } from 'undici';
import { relayToFirst } from '../agents/proxy/tcp.ts';

export interface ApiBalancerOptions {
  /** "host:port" of each server's API. */
  backends: string[];
  /** Health check period (ms). */
  intervalMs?: number;
  /** The CA of servers that speak HTTPS (the check then asks https://…/readyz, which needs no credentials). */
  ca?: string;
}

function split(a: string): { host: string; port: number } {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
}

export class ApiBalancer {
  private server?: net.Server;
  private readonly healthy = new Set<string>();
  private timer?: NodeJS.Timeout;
  private next = 0;
  /** Open client connections: a keep-alive client would otherwise hold close() open forever. */
  private readonly conns = new Set<net.Socket>();
  private readonly dispatcher?: Dispatcher;

  constructor(private readonly o: ApiBalancerOptions) {
    if (o.ca) this.dispatcher = new Agent({ connect: { ca: o.ca } });
  }

  async listen(host: string, port: number): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true }, (c) => this.accept(c));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    await this.check();
    this.timer = setInterval(() => void this.check(), this.o.intervalMs ?? 1000);
    this.timer.unref();
  }

  /** The servers taking connections now. */
  ready(): string[] {
    return this.o.backends.filter((b) => this.healthy.has(b));
  }

  private async check(): Promise<void> {
    await Promise.all(this.o.backends.map(async (b) => {
      try {
        const r = await request(`${this.o.ca ? 'https' : 'http'}://${b}/readyz`, { headersTimeout: 1000, bodyTimeout: 1000, dispatcher: this.dispatcher });
        await r.body.dump();
        if (r.statusCode === 200) this.healthy.add(b);
        else this.healthy.delete(b);
      } catch {
        this.healthy.delete(b);
      }
    }));
  }

  private accept(client: net.Socket): void {
    this.conns.add(client);
    client.once('close', () => this.conns.delete(client));
    // Ready servers first, from the next in turn; the others after them, in case the last check is stale.
    const ready = this.ready();
    const start = this.next++ % Math.max(1, ready.length);
    const order = [...ready.slice(start), ...ready.slice(0, start), ...this.o.backends.filter((b) => !this.healthy.has(b))];
    relayToFirst(client, order.map(split));
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const closed = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    for (const c of this.conns) c.destroy();
    await closed;
    await this.dispatcher?.close();
  }
}
