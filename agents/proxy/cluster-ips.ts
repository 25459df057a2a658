// Cluster IPs are loopback addresses shared by every agent on the machine,
// and an address and port can be bound only once: exactly one proxy per
// machine serves them, the holder of a Lease named after the machine
// (kube-system/flotilla-proxy-<hostname>), through the one leader election
// (agents/leaderelection). When it dies the Lease expires and another
// agent's proxy takes over. The holder also keeps the LoadBalancer
// Services' status.loadBalancer: the addresses of the Ready nodes, each of
// which serves the load balancer's ports.
import { hostname } from 'node:os';
import type client from 'prom-client';
import { type ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import type { Informer } from '../informer/informer.ts';
import type { Logger } from '../informer/stream.ts';
import type { KubeObject } from '../informer/types.ts';
import { LeaderElector } from '../leaderelection/index.ts';
import type { ServiceProxy } from './proxy.ts';

const SERVICES = resolveKind('services')!;

export interface ClusterIPRoleOptions {
  client: ApiClient;
  proxy: ServiceProxy;
  identity: string;
  services: Informer<KubeObject>;
  nodes: Informer<KubeObject>;
  /** Lease name (default flotilla-proxy-<hostname>). */
  leaseName?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  logger?: Logger;
  registry?: client.Registry;
}

interface NodeLike {
  metadata?: { name?: string };
  status?: { addresses?: { type: string; address: string }[]; conditions?: { type: string; status: string }[] };
}

interface ServiceLike {
  metadata?: { name?: string; namespace?: string };
  spec?: { type?: string };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
}

/** The addresses a LoadBalancer Service is reached on: every Ready node's InternalIP, sorted. */
export function loadBalancerAddresses(nodes: NodeLike[]): string[] {
  return nodes
    .filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((n) => n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address)
    .filter((a): a is string => !!a)
    .sort();
}

export class ClusterIPRole {
  readonly elector: LeaderElector;
  private running?: Promise<void>;

  constructor(private readonly o: ClusterIPRoleOptions) {
    this.elector = new LeaderElector({
      client: o.client,
      lease: { namespace: 'kube-system', name: o.leaseName ?? `flotilla-proxy-${hostname()}` },
      identity: o.identity,
      leaseDurationMs: o.leaseDurationMs,
      renewDeadlineMs: o.renewDeadlineMs,
      retryPeriodMs: o.retryPeriodMs,
      logger: o.logger,
      registry: o.registry,
      name: 'flotilla-proxy',
      onStartedLeading: (signal) => this.lead(signal),
      onStoppedLeading: () => o.proxy.setServeClusterIPs(false),
    });
  }

  start(): void {
    this.running = this.elector.run();
  }

  async stop(): Promise<void> {
    await this.elector.stop();
    await this.running;
  }

  private async lead(signal: AbortSignal): Promise<void> {
    this.o.proxy.setServeClusterIPs(true);
    // Keep LoadBalancer status current while leading: on changes, and every 10 s.
    let dirty = true;
    const mark = () => { dirty = true; };
    const offs = [this.o.services.addEventHandler({ onAdd: mark, onUpdate: mark }), this.o.nodes.addEventHandler({ onAdd: mark, onUpdate: mark, onDelete: mark })];
    try {
      let last = 0;
      while (!signal.aborted) {
        if (dirty || Date.now() - last > 10_000) {
          dirty = false;
          last = Date.now();
          await this.writeLoadBalancerStatus().catch((e) => {
            dirty = true;
            this.o.logger?.warn({ err: (e as Error).message }, 'writing LoadBalancer status failed; will retry');
          });
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      for (const off of offs) off();
    }
  }

  private async writeLoadBalancerStatus(): Promise<void> {
    const want = loadBalancerAddresses(this.o.nodes.list() as unknown as NodeLike[]).map((ip) => ({ ip }));
    for (const svc of this.o.services.list() as unknown as ServiceLike[]) {
      if (svc.spec?.type !== 'LoadBalancer') continue;
      if (JSON.stringify(svc.status?.loadBalancer?.ingress ?? []) === JSON.stringify(want)) continue;
      try {
        await this.o.client.patch(resourcePath(SERVICES, svc.metadata?.namespace, svc.metadata?.name, 'status'),
          { status: { loadBalancer: { ingress: want.length ? want : null } } }, 'application/merge-patch+json');
      } catch (e) {
        if (!(e instanceof ApiClientError && e.code === 404)) throw e;
      }
    }
  }
}
