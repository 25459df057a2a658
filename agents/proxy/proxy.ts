// A node's service proxy (kube-proxy's job in userspace mode): a TCP
// listener per service address and port (table.ts), each connection sent to
// the next ready endpoint round-robin; an endpoint that refuses is skipped
// for the next one. Listeners follow Service and EndpointSlice changes as
// they arrive (a sync is scheduled on every change, at most every 50 ms);
// closing a listener or losing an endpoint leaves connections in flight to
// finish.
import net from 'node:net';
import type { Logger } from '../informer/stream.ts';
import { silentLogger } from '../informer/stream.ts';
import type { SliceLike } from '../endpoints/ready.ts';
import { type Listener, type ProxyService, type Target, endpointsFor, listenersFor } from './table.ts';
import { relayToFirst } from './tcp.ts';

export interface ProxySource {
  services(): ProxyService[];
  slices(namespace: string, service: string): SliceLike[];
  /** Calls `fn` on every change of Services or EndpointSlices; returns an unsubscribe. */
  onChange(fn: () => void): () => void;
}

export interface ServiceProxyOptions {
  source: ProxySource;
  /** The node's address: NodePort and LoadBalancer listeners bind it. */
  nodeAddress: string;
  logger?: Logger;
  /** Counts connections: proxied, refused (every endpoint refused), none (no ready endpoint). */
  onConnection?: (result: 'proxied' | 'refused' | 'no-endpoints') => void;
  /** How many endpoints to try for one connection (default 3). */
  attempts?: number;
}

interface Open {
  listener: Listener;
  server: net.Server;
}

export class ServiceProxy {
  private readonly open = new Map<string, Open>();
  /** Listeners that could not bind, with the error: retried on the next sync. */
  readonly bindErrors = new Map<string, string>();
  private endpoints = new Map<string, Target[]>();
  private readonly next = new Map<string, number>();
  private serveClusterIPs = false;
  private timer?: NodeJS.Timeout;
  private retry?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private stopped = false;
  private syncing = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly o: ServiceProxyOptions) {
    this.log = o.logger ?? silentLogger;
  }

  start(): void {
    this.unsubscribe = this.o.source.onChange(() => this.schedule());
    this.schedule();
  }

  /** Whether this node serves the cluster IPs (one proxy per machine does; see cluster-ips.ts). */
  setServeClusterIPs(on: boolean): void {
    if (this.serveClusterIPs === on) return;
    this.serveClusterIPs = on;
    this.schedule();
  }

  /** The listeners open now ("address:port"). */
  listening(): string[] {
    return [...this.open.keys()].sort();
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.syncing = this.syncing.then(() => this.sync()).catch((e) => this.log.error({ err: (e as Error).message }, 'proxy sync failed'));
    }, 50);
  }

  /** Resolves once the changes seen so far are applied. */
  async settled(): Promise<void> {
    while (this.timer) await new Promise((r) => setTimeout(r, 10));
    await this.syncing;
  }

  private async sync(): Promise<void> {
    if (this.stopped) return;
    const services = this.o.source.services();
    this.endpoints = endpointsFor(services, (ns, svc) => this.o.source.slices(ns, svc));
    const want = new Map(listenersFor(services, { address: this.o.nodeAddress, serveClusterIPs: this.serveClusterIPs }).map((l) => [l.key, l]));
    for (const [key, o] of this.open) {
      const w = want.get(key);
      if (w && w.backend === o.listener.backend) {
        o.listener = w;
        continue;
      }
      // Stop accepting; connections in flight finish on their own.
      o.server.close();
      this.open.delete(key);
    }
    for (const [key, l] of want) {
      if (this.open.has(key)) continue;
      try {
        const server = await this.bind(l);
        this.open.set(key, { listener: l, server });
        this.bindErrors.delete(key);
      } catch (e) {
        const msg = (e as Error).message;
        if (this.bindErrors.get(key) !== msg) this.log.warn({ listener: key, backend: l.backend, err: msg }, 'cannot listen for a service');
        this.bindErrors.set(key, msg);
      }
    }
    for (const key of this.bindErrors.keys()) if (!want.has(key)) this.bindErrors.delete(key);
    if (this.bindErrors.size && !this.retry && !this.stopped) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.schedule();
      }, 5000);
      this.retry.unref();
    }
  }

  private bind(l: Listener): Promise<net.Server> {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(l.key, socket));
    server.on('error', (e) => this.log.warn({ listener: l.key, err: e.message }, 'listener error'));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(l.port, l.address, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }

  private accept(key: string, client: net.Socket): void {
    const o = this.open.get(key);
    const backend = o?.listener.backend;
    const targets = backend ? (this.endpoints.get(backend) ?? []) : [];
    if (!targets.length) {
      this.o.onConnection?.('no-endpoints');
      client.on('error', () => {});
      client.destroy();
      return;
    }
    const start = (this.next.get(backend!) ?? 0) % targets.length;
    this.next.set(backend!, start + 1);
    const order = [...targets.slice(start), ...targets.slice(0, start)].slice(0, this.o.attempts ?? 3).map((t) => ({ host: t.ip, port: t.port }));
    relayToFirst(client, order, (ok) => this.o.onConnection?.(ok ? 'proxied' : 'refused'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
    if (this.retry) clearTimeout(this.retry);
    await this.syncing;
    await Promise.all([...this.open.values()].map((o) => new Promise<void>((r) => o.server.close(() => r()))));
    this.open.clear();
  }
}
