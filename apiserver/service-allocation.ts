// Service cluster IPs and node ports, allocated inside the state machine.
// Kubernetes allocates them in the API server with bitmaps stored in etcd;
// here the decision is made when the create or update is applied, from the
// log alone, so two members taking Service creates at the same moment can
// never hand out the same address or port. The set of what is taken is
// derived from the stored Services (rebuilt after a snapshot is restored),
// so there is no separate allocator state to keep consistent.
//
// The ranges travel in the command: a member's flags decide what it
// proposes, while every member applies the same decision.
import { type Cidr, cidrSize, formatIPv4, parseCidr, parseIPv4 } from '../api/ipv4.ts';
import type { Cause } from '../api/schema/types.ts';
import { invalid } from '../api/schema/validate.ts';
import { ApiError, errors } from './errors.ts';

export interface ServiceRanges {
  /** `--service-cluster-ip-range`, an IPv4 CIDR. */
  clusterIPRange: string;
  /** `--service-node-port-range`, "low-high". */
  nodePortRange: string;
}

/** Loopback addresses, so that the node agents can really bind them on one machine. */
export const DEFAULT_SERVICE_RANGES: ServiceRanges = { clusterIPRange: '127.1.0.0/16', nodePortRange: '30000-32767' };

interface ParsedRanges {
  cidr: Cidr;
  ports: { lo: number; hi: number };
}

/** Checks the ranges a server is started with; throws a message naming the flag. */
export function parseServiceRanges(r: ServiceRanges): ParsedRanges {
  let cidr: Cidr;
  try {
    cidr = parseCidr(r.clusterIPRange);
  } catch (e) {
    throw new Error(`--service-cluster-ip-range: ${(e as Error).message}`);
  }
  if (cidr.bits > 30) throw new Error(`--service-cluster-ip-range: ${r.clusterIPRange} is too small (at most /30)`);
  if (cidr.bits < 12) throw new Error(`--service-cluster-ip-range: ${r.clusterIPRange} is too large (at least /12, as Kubernetes requires for IPv4)`);
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(r.nodePortRange.trim());
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2]) : NaN;
  if (!(lo >= 1 && hi <= 65535 && lo <= hi)) throw new Error(`--service-node-port-range: "${r.nodePortRange}" is not a range of ports like 30000-32767`);
  return { cidr, ports: { lo, hi } };
}

type Obj = Record<string, any>;

/** What one Service holds. */
interface Held {
  ips: number[];
  ports: number[];
}

const KUBERNETES_SERVICE = 'default/kubernetes';

/**
 * Size of the lower band of a range kept for addresses and ports users ask
 * for by number (Kubernetes' static subranges, KEP-3070 and KEP-3668):
 * dynamic allocation takes from above it first.
 */
function staticBand(size: number, divisor: number, max: number): number {
  return Math.min(Math.max(16, Math.floor(size / divisor)), max);
}

/** FNV-1a of the service's key: where its search for a free slot starts, the same on every member. */
function startOf(key: string, size: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return size > 0 ? h % size : 0;
}

/** The first free slot among `count` candidates from `lo`, starting at `start` and wrapping. */
function firstFree(lo: number, count: number, start: number, taken: (v: number) => boolean): number | undefined {
  for (let k = 0; k < count; k++) {
    const v = lo + ((start + k) % count);
    if (!taken(v)) return v;
  }
  return undefined;
}

export class ServiceAllocations {
  private readonly ipOwner = new Map<number, string>();
  private readonly portOwner = new Map<number, string>();
  private readonly held = new Map<string, Held>();
  private parsedCache?: { key: string; parsed: ParsedRanges };

  /** Addresses and ports in use (for metrics and tests). */
  get counts(): { ips: number; ports: number } {
    return { ips: this.ipOwner.size, ports: this.portOwner.size };
  }

  clear(): void {
    this.ipOwner.clear();
    this.portOwner.clear();
    this.held.clear();
  }

  /** Records what a stored Service holds, unchecked (rebuilding after a snapshot). */
  occupy(key: string, svc: Obj): void {
    const held = heldBy(svc);
    for (const ip of held.ips) this.ipOwner.set(ip, key);
    for (const p of held.ports) this.portOwner.set(p, key);
    this.held.set(key, held);
  }

  /** Frees everything `key` holds (the Service is gone). */
  release(key: string): void {
    const h = this.held.get(key);
    if (!h) return;
    for (const ip of h.ips) if (this.ipOwner.get(ip) === key) this.ipOwner.delete(ip);
    for (const p of h.ports) if (this.portOwner.get(p) === key) this.portOwner.delete(p);
    this.held.delete(key);
  }

  /**
   * Fills in the cluster IP and node ports a created or updated Service
   * needs, and checks the ones it asks for, then records them (freeing what
   * an update gave up). Returns the error to answer instead, changing nothing.
   * Throws only for malformed ranges in the command (a forged entry).
   */
  admit(key: string, name: string, svc: Obj, ranges: ServiceRanges | undefined): ApiError | undefined {
    const r = this.ranges(ranges ?? DEFAULT_SERVICE_RANGES);
    const spec: Obj = svc.spec && typeof svc.spec === 'object' ? svc.spec : (svc.spec = {});
    const before = this.held.get(key) ?? { ips: [], ports: [] };
    const mine = (owner: string | undefined) => owner === undefined || owner === key;
    const causes: Cause[] = [];
    let full: string | undefined;

    // ---- cluster IP
    const ips: number[] = [];
    if (spec.type === 'ExternalName') {
      delete spec.clusterIPs;
    } else {
      const requested: unknown = spec.clusterIP || (Array.isArray(spec.clusterIPs) ? spec.clusterIPs[0] : undefined);
      if (spec.clusterIP && Array.isArray(spec.clusterIPs) && spec.clusterIPs.length && spec.clusterIPs[0] !== spec.clusterIP) {
        causes.push(invalid('spec.clusterIPs', spec.clusterIPs, 'must match `clusterIP` as its first element'));
      } else if (requested === 'None') {
        spec.clusterIP = 'None';
        spec.clusterIPs = ['None'];
      } else if (typeof requested === 'string' && requested) {
        const ip = parseIPv4(requested);
        const inRange = ip !== undefined && ip > r.cidr.base && ip < r.cidr.base + cidrSize(r.cidr) - 1;
        if (ip === undefined) {
          causes.push(invalid('spec.clusterIPs', [requested], 'failed to allocate IP: only IPv4 addresses are served by this cluster'));
        } else if (!inRange && !before.ips.includes(ip)) {
          causes.push(invalid('spec.clusterIPs', [requested], `failed to allocate IP ${requested}: the provided IP (${requested}) is not in the valid range. The range of valid IPs is ${formatIPv4(r.cidr.base)}/${r.cidr.bits}`));
        } else if (!mine(this.ipOwner.get(ip))) {
          causes.push(invalid('spec.clusterIPs', [requested], `failed to allocate IP ${requested}: provided IP is already allocated`));
        } else {
          ips.push(ip);
        }
      } else {
        const ip = this.nextIP(key, r.cidr);
        if (ip === undefined) full = 'failed to allocate a serviceIP: range is full';
        else ips.push(ip);
      }
      if (ips.length) {
        spec.clusterIP = formatIPv4(ips[0]!);
        spec.clusterIPs = [spec.clusterIP];
      }
      if (spec.clusterIP) {
        if (!Array.isArray(spec.ipFamilies) || !spec.ipFamilies.length) spec.ipFamilies = ['IPv4'];
        spec.ipFamilyPolicy ??= 'SingleStack';
      }
    }

    // ---- node ports
    const ports: number[] = [];
    const wantsNodePorts = spec.type === 'NodePort' || (spec.type === 'LoadBalancer' && spec.allocateLoadBalancerNodePorts !== false);
    const taken = (p: number) => !mine(this.portOwner.get(p)) || ports.includes(p);
    const checkPort = (p: unknown, field: string): number | undefined => {
      if (typeof p !== 'number') return undefined;
      if ((p < r.ports.lo || p > r.ports.hi) && !before.ports.includes(p)) {
        causes.push(invalid(field, p, `provided port is not in the valid range. The range of valid ports is ${r.ports.lo}-${r.ports.hi}`));
      } else if (!mine(this.portOwner.get(p))) {
        causes.push(invalid(field, p, 'provided port is already allocated'));
      } else {
        return p;
      }
      return undefined;
    };
    const list: Obj[] = Array.isArray(spec.ports) ? spec.ports.filter((p: unknown) => p && typeof p === 'object') : [];
    if (wantsNodePorts) {
      // Asked-for ports first, so a dynamic one never takes a port asked for by a later entry.
      list.forEach((p, i) => {
        const got = checkPort(p.nodePort || undefined, `spec.ports[${i}].nodePort`);
        if (got !== undefined && !ports.includes(got)) ports.push(got);
      });
      for (const p of list) {
        if (p.nodePort) continue;
        // One node port serves the same port number for TCP and UDP (Kubernetes shares it too).
        const twin = list.find((q) => q !== p && q.port === p.port && q.nodePort);
        if (twin) {
          p.nodePort = twin.nodePort;
          continue;
        }
        const got = this.nextPort(key, r.ports, taken);
        if (got === undefined) {
          full = 'failed to allocate a nodePort: range is full';
          break;
        }
        p.nodePort = got;
        ports.push(got);
      }
      if (spec.type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local') {
        const hc = spec.healthCheckNodePort ? checkPort(spec.healthCheckNodePort, 'spec.healthCheckNodePort') : this.nextPort(key, r.ports, taken);
        if (hc === undefined && !spec.healthCheckNodePort) full = 'failed to allocate a nodePort: range is full';
        else if (hc !== undefined) {
          spec.healthCheckNodePort = hc;
          ports.push(hc);
        }
      }
    } else {
      delete spec.healthCheckNodePort;
    }

    if (causes.length) return errors.invalid('', 'Service', name, causes);
    if (full) return errors.internal(`Internal error occurred: ${full}`);
    this.release(key);
    this.occupy(key, svc);
    return undefined;
  }

  private ranges(r: ServiceRanges): ParsedRanges {
    const k = `${r.clusterIPRange} ${r.nodePortRange}`;
    if (this.parsedCache?.key !== k) this.parsedCache = { key: k, parsed: parseServiceRanges(r) };
    return this.parsedCache.parsed;
  }

  /**
   * A free address: `default/kubernetes` gets the first of the range, as in
   * Kubernetes; others search the upper band from a point their key decides,
   * then the lower band. The network and broadcast addresses are never used.
   */
  private nextIP(key: string, cidr: Cidr): number | undefined {
    const usable = cidrSize(cidr) - 2;
    const first = cidr.base + 1;
    const taken = (ip: number) => this.ipOwner.has(ip);
    if (key === KUBERNETES_SERVICE && !taken(first)) return first;
    const band = Math.min(staticBand(cidrSize(cidr), 16, 256), usable);
    return firstFree(first + band, usable - band, startOf(key, usable - band), taken) ?? firstFree(first, band, 0, taken);
  }

  private nextPort(key: string, range: { lo: number; hi: number }, taken: (p: number) => boolean): number | undefined {
    const size = range.hi - range.lo + 1;
    const band = Math.min(staticBand(size, 32, 128), size);
    return firstFree(range.lo + band, size - band, startOf(key, size - band), taken) ?? firstFree(range.lo, band, 0, taken);
  }
}

/** The addresses and ports a stored Service holds. */
function heldBy(svc: Obj): Held {
  const spec: Obj = svc?.spec ?? {};
  const ips: number[] = [];
  if (spec.type !== 'ExternalName' && typeof spec.clusterIP === 'string') {
    const ip = parseIPv4(spec.clusterIP);
    if (ip !== undefined) ips.push(ip);
  }
  const ports = new Set<number>();
  if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') {
    for (const p of Array.isArray(spec.ports) ? spec.ports : []) if (typeof p?.nodePort === 'number' && p.nodePort > 0) ports.add(p.nodePort);
    if (typeof spec.healthCheckNodePort === 'number' && spec.healthCheckNodePort > 0) ports.add(spec.healthCheckNodePort);
  }
  return { ips, ports: [...ports] };
}
