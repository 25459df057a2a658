// A set of equal-sized IPv4 subnets carved from a cluster CIDR (Kubernetes'
// cidrset): allocate the next free one (searching on from the last
// allocation, so a released CIDR is not handed out again at once), occupy
// one already in use (rebuilding the state from existing nodes), release.

import { type Cidr, contains, formatCidr, parseCidr } from '../../../api/ipv4.ts';

export class CidrFullError extends Error {
  constructor(cluster: string, maskBits: number) {
    super(`no free /${maskBits} left: the cluster CIDR ${cluster} is fully allocated`);
  }
}

export class CidrSet {
  readonly cluster: Cidr;
  readonly maskBits: number;
  /** How many subnets the cluster CIDR holds. */
  readonly size: number;
  private readonly used = new Set<number>();
  private next = 0;

  constructor(clusterCidr: string, maskBits: number) {
    this.cluster = parseCidr(clusterCidr);
    if (!Number.isInteger(maskBits) || maskBits < this.cluster.bits || maskBits > 32) {
      throw new Error(`node CIDR mask size /${maskBits} must be between the cluster CIDR's /${this.cluster.bits} and /32`);
    }
    // Kubernetes refuses more than 16 bits of subnets (65536 nodes): the same limit keeps the set small.
    if (maskBits - this.cluster.bits > 16) throw new Error(`node CIDR mask size /${maskBits} is too large for cluster CIDR /${this.cluster.bits}: at most 16 bits apart`);
    this.maskBits = maskBits;
    this.size = 2 ** (maskBits - this.cluster.bits);
  }

  get allocated(): number {
    return this.used.size;
  }

  private subnet(i: number): string {
    return formatCidr({ base: this.cluster.base + i * 2 ** (32 - this.maskBits), bits: this.maskBits });
  }

  /** The index of a CIDR of this set's size inside the cluster CIDR; throws otherwise. */
  private indexOf(text: string): number {
    const c = parseCidr(text);
    if (!contains(this.cluster, c)) throw new Error(`${text} is not inside the cluster CIDR ${formatCidr(this.cluster)}`);
    if (c.bits !== this.maskBits) throw new Error(`${text} is not a /${this.maskBits}`);
    return (c.base - this.cluster.base) / 2 ** (32 - this.maskBits);
  }

  allocateNext(): string {
    for (let k = 0; k < this.size; k++) {
      const i = (this.next + k) % this.size;
      if (this.used.has(i)) continue;
      this.used.add(i);
      this.next = (i + 1) % this.size;
      return this.subnet(i);
    }
    throw new CidrFullError(formatCidr(this.cluster), this.maskBits);
  }

  /** Marks a CIDR in use (a node that already has it). Returns false if it already was. */
  occupy(text: string): boolean {
    const i = this.indexOf(text);
    if (this.used.has(i)) return false;
    this.used.add(i);
    return true;
  }

  release(text: string): void {
    this.used.delete(this.indexOf(text));
  }

  has(text: string): boolean {
    return this.used.has(this.indexOf(text));
  }
}
