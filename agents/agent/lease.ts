// The node's heartbeat: its Lease in kube-node-lease, renewed every 10 s
// (the kubelet's default; leaseDurationSeconds 40), owned by the Node so the
// garbage collector removes it with the Node. The node lifecycle controller
// reads it to decide whether the node is alive.
import { type ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import type { Logger } from '../informer/informer.ts';

const LEASES = resolveKind('leases')!;
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
export const LEASE_DURATION_SECONDS = 40;

/** A MicroTime (RFC 3339 with microseconds), as Lease times are written. */
export function microTime(d = new Date()): string {
  return d.toISOString().replace(/Z$/, '000Z');
}

export class NodeLease {
  renewals = 0;
  failures = 0;
  private timer?: NodeJS.Timeout;

  constructor(private readonly o: { client: ApiClient; node: string; nodeUid?: string; intervalMs?: number; log: Logger }) {}

  async renew(): Promise<void> {
    const path = resourcePath(LEASES, NODE_LEASE_NAMESPACE, this.o.node);
    const spec = { holderIdentity: this.o.node, leaseDurationSeconds: LEASE_DURATION_SECONDS, renewTime: microTime() };
    try {
      await this.o.client.patch(path, { spec }, 'application/merge-patch+json');
    } catch (e) {
      if (!(e instanceof ApiClientError && e.code === 404)) throw e;
      const ownerReferences = this.o.nodeUid ? [{ apiVersion: 'v1', kind: 'Node', name: this.o.node, uid: this.o.nodeUid }] : undefined;
      await this.o.client.create(resourcePath(LEASES, NODE_LEASE_NAMESPACE), {
        apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.o.node, namespace: NODE_LEASE_NAMESPACE, ownerReferences }, spec,
      });
    }
    this.renewals++;
  }

  start(): void {
    const tick = () => this.renew().catch((e) => {
      this.failures++;
      this.o.log.warn({ node: this.o.node, err: (e as Error).message }, 'lease renewal failed');
    });
    void tick();
    this.timer = setInterval(tick, this.o.intervalMs ?? 10_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
