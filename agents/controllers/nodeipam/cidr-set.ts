// A set of equal-sized IPv4 subnets carved from a cluster CIDR (Kubernetes'
// cidrset): allocate the next free one (searching on from the last
// allocation, so a released CIDR is not handed out again at once), occupy
// one already in use (rebuilding the state from existing nodes), release.

export interface Cidr { base: number; bits: number }

/** Parses "a.b.c.d/n" (IPv4); throws a clear error otherwise. */
export function parseCidr(text: string): Cidr {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text.trim());
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const bits = m ? Number(m[5]) : NaN;
  if (!m || octets.some((o) => o > 255) || bits > 32) throw new Error(`invalid IPv4 CIDR "${text}" (expected a.b.c.d/n)`);
  const ip = octets.reduce((a, o) => a * 256 + o, 0);
  const size = 2 ** (32 - bits);
  return { base: ip - (ip % size), bits };
}

export function formatCidr(c: Cidr): string {
  const o = [24, 16, 8, 0].map((s) => Math.floor(c.base / 2 ** s) % 256);
  return `${o.join('.')}/${c.bits}`;
}

/** Whether `inner` lies within `outer`. */
export function contains(outer: Cidr, inner: Cidr): boolean {
  return inner.bits >= outer.bits && inner.base >= outer.base && inner.base + 2 ** (32 - inner.bits) <= outer.base + 2 ** (32 - outer.bits);
}

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
