// kube-scheduler's NodeInfo: a node with the pods the scheduler counts on it
// (bound and assumed), the sums of their requests and the host ports they
// hold. (Pods with inter-pod affinity terms are indexed cluster-wide by the
// cache.)
import type { Taint } from '../../api/taints.ts';
import type { Node } from '../informer/types.ts';
import type { HostPort, PodInfo } from './pod-info.ts';
import { type Resources, toResources } from './resources.ts';

export class NodeInfo {
  node?: Node;
  allocatable: Resources = {};
  readonly pods = new Map<string, PodInfo>();
  readonly requested: Resources = {};
  readonly nonZeroRequested: Resources = { cpu: 0, memory: 0 };
  /** "protocol/port" → the host IPs holding it. */
  readonly usedPorts = new Map<string, string[]>();

  constructor(readonly name: string) {}

  setNode(node: Node): void {
    this.node = node;
    this.allocatable = toResources(node.status?.allocatable);
  }

  get labels(): Record<string, string> {
    return this.node?.metadata.labels ?? {};
  }

  get taints(): Taint[] {
    return (this.node?.spec?.taints ?? []) as Taint[];
  }

  addPod(p: PodInfo): void {
    this.pods.set(p.key, p);
    this.apply(p, 1);
  }

  removePod(key: string): PodInfo | undefined {
    const p = this.pods.get(key);
    if (!p) return undefined;
    this.pods.delete(key);
    this.apply(p, -1);
    return p;
  }

  private apply(p: PodInfo, sign: 1 | -1): void {
    for (const [k, v] of Object.entries(p.requests)) this.requested[k] = (this.requested[k] ?? 0) + sign * v;
    this.nonZeroRequested.cpu += sign * (p.nonZero.cpu ?? 0);
    this.nonZeroRequested.memory += sign * (p.nonZero.memory ?? 0);
    for (const hp of p.hostPorts) {
      const k = `${hp.protocol}/${hp.port}`;
      const ips = this.usedPorts.get(k) ?? [];
      if (sign > 0) ips.push(hp.ip);
      else ips.splice(ips.indexOf(hp.ip), 1);
      if (ips.length) this.usedPorts.set(k, ips);
      else this.usedPorts.delete(k);
    }
  }

  /** Whether a host port conflicts with one in use (0.0.0.0 conflicts with every address). */
  portConflicts(hp: HostPort): boolean {
    const ips = this.usedPorts.get(`${hp.protocol}/${hp.port}`);
    if (!ips) return false;
    return hp.ip === '0.0.0.0' || ips.some((ip) => ip === '0.0.0.0' || ip === hp.ip);
  }
}
