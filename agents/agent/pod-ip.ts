// Pod IPs: each pod gets a loopback address of its node's pod CIDR (given by
// the node IPAM controller), handed out lowest-free-first and taken back when
// the pod is gone. After an agent restart the addresses in use are learnt
// from the pods' status.podIP.
import { type Cidr, cidrSize, formatIPv4, parseCidr, parseIPv4 } from '../../api/ipv4.ts';

export class PodIPAllocator {
  private readonly cidr: Cidr;
  private readonly byUid = new Map<string, number>();
  private readonly used = new Set<number>();

  constructor(cidr: string) {
    this.cidr = parseCidr(cidr);
  }

  /** Records an address already in use (a pod that kept its status.podIP across an agent restart). */
  reserve(uid: string, ip: string): boolean {
    const n = parseIPv4(ip);
    if (n === undefined || !this.inRange(n) || (this.used.has(n) && this.byUid.get(uid) !== n)) return false;
    this.byUid.set(uid, n);
    this.used.add(n);
    return true;
  }

  allocate(uid: string): string {
    const have = this.byUid.get(uid);
    if (have !== undefined) return formatIPv4(have);
    const size = cidrSize(this.cidr);
    // The network address (offset 0) and the last one are left out, as host-local IPAM does.
    for (let i = 1; i < size - 1; i++) {
      const n = this.cidr.base + i;
      if (!this.used.has(n)) {
        this.used.add(n);
        this.byUid.set(uid, n);
        return formatIPv4(n);
      }
    }
    throw new Error(`no free pod IP left in ${formatIPv4(this.cidr.base)}/${this.cidr.bits}`);
  }

  release(uid: string): void {
    const n = this.byUid.get(uid);
    if (n === undefined) return;
    this.byUid.delete(uid);
    this.used.delete(n);
  }

  get inUse(): number {
    return this.used.size;
  }

  private inRange(n: number): boolean {
    return n > this.cidr.base && n < this.cidr.base + cidrSize(this.cidr) - 1;
  }
}
