// The node IPAM controller (kube-controller-manager's range allocator with
// --allocate-node-cidrs): every Node gets spec.podCIDR and spec.podCIDRs, a
// /--node-cidr-mask-size subnet of --cluster-cidr that no other node has.
// On start it first marks the CIDRs existing nodes hold (so a restarted
// controller never hands one out twice), then allocates; a deleted node's
// CIDR is released. When the range is full the node gets a CIDRNotAvailable
// event and is retried with back-off. Pod addresses are loopback addresses
// here, so the cluster CIDR must lie inside 127.0.0.0/8.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import { splitKey } from '../../informer/informer.ts';
import type { Node } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import { contains, parseCidr } from '../../../api/ipv4.ts';
import { CidrFullError, CidrSet } from './cidr-set.ts';

const NODES = resolveKind('nodes')!;
const LOOPBACK = parseCidr('127.0.0.0/8');

type NodeSpec = { podCIDR?: string; podCIDRs?: string[] };
const podCIDR = (n: Node) => (n.spec as NodeSpec | undefined)?.podCIDR || (n.spec as NodeSpec | undefined)?.podCIDRs?.[0] || '';

export class NodeIpamController extends QueueController {
  readonly cidrs: CidrSet;
  private readonly nodes: Informer<Node>;
  /** Which node holds which CIDR (as this controller knows it), so a release frees only the holder's. */
  private readonly holders = new Map<string, string>();

  constructor(ctx: ControllerContext) {
    // One worker: allocations are decided one at a time against one set.
    super(ctx, 'nodeipam', { workers: 1 });
    if (!contains(LOOPBACK, parseCidr(ctx.config.clusterCIDR))) {
      throw new Error(`--cluster-cidr ${ctx.config.clusterCIDR} must lie inside 127.0.0.0/8: pods bind their addresses on the loopback interface`);
    }
    this.cidrs = new CidrSet(ctx.config.clusterCIDR, ctx.config.nodeCIDRMaskSize);
    this.nodes = ctx.informers.informer<Node>('nodes');
  }

  override async run(signal: AbortSignal): Promise<void> {
    await this.ctx.informers.start();
    // Every CIDR in use is known before the first allocation.
    for (const n of this.nodes.list()) this.occupy(n);
    this.handle(this.nodes, {
      onAdd: (n) => this.enqueue(n),
      onUpdate: (_o, n) => { if (!podCIDR(n)) this.enqueue(n); else this.occupy(n); },
      onDelete: (n) => {
        this.release(n.metadata.name);
        // Nodes waiting for a CIDR in a full range get the freed one now rather than at their next back-off retry.
        for (const w of this.nodes.list()) if (!podCIDR(w)) this.enqueue(w);
      },
    });
    return super.run(signal);
  }

  private occupy(n: Node): void {
    const cidr = podCIDR(n);
    if (!cidr) return;
    const reserved = this.holders.get(n.metadata.name);
    if (reserved === cidr) return;
    // The node got a CIDR other than the one reserved for it (set by someone else meanwhile): free the reservation.
    if (reserved) this.release(n.metadata.name);
    try {
      this.cidrs.occupy(cidr);
      this.holders.set(n.metadata.name, cidr);
    } catch (e) {
      // A CIDR set by hand outside the cluster CIDR is the node's own business (Kubernetes logs it too).
      this.log.info({ node: n.metadata.name, podCIDR: cidr, reason: (e as Error).message }, 'node CIDR not from the cluster CIDR: left alone');
    }
  }

  private release(name: string): void {
    const cidr = this.holders.get(name);
    if (!cidr) return;
    this.holders.delete(name);
    this.cidrs.release(cidr);
    this.log.info({ node: name, podCIDR: cidr }, 'released the pod CIDR of a deleted node');
  }

  protected async reconcile(key: string): Promise<void> {
    const { name } = splitKey(key);
    const node = this.nodes.get('', name);
    if (!node || node.metadata.deletionTimestamp) return;
    if (podCIDR(node)) return this.occupy(node);
    // Allocated before but the cache has not seen it yet: the same CIDR again, never a second one.
    let cidr = this.holders.get(name);
    if (!cidr) {
      try {
        cidr = this.cidrs.allocateNext();
      } catch (e) {
        if (!(e instanceof CidrFullError)) throw e;
        this.recorder.event(node, 'Normal', 'CIDRNotAvailable', `Node ${name} status is now: CIDRNotAvailable`);
        throw e;
      }
      this.holders.set(name, cidr);
    }
    try {
      // The uid and resourceVersion make the patch a compare-and-swap on the node as the cache has it.
      const written = await this.ctx.client.patch<Node>(resourcePath(NODES, '', name), {
        metadata: { uid: node.metadata.uid, resourceVersion: node.metadata.resourceVersion }, spec: { podCIDR: cidr, podCIDRs: [cidr] },
      }, 'application/merge-patch+json');
      await this.nodes.waitForResourceVersion(written.metadata.resourceVersion!, 10_000);
      this.log.info({ node: name, podCIDR: cidr }, 'allocated a pod CIDR');
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) {
        this.release(name);
        return;
      }
      // A conflict: the node changed (perhaps it got a CIDR meanwhile); keep the reservation and look again.
      throw e;
    }
  }
}
