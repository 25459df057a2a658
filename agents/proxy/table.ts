// What a node's service proxy listens on and where each listener sends its
// connections (kube-proxy's service and endpoint maps), from Services and
// EndpointSlices. Pure, so each rule is a table test.
import { type SliceLike, type Target, readyTargets } from '../endpoints/ready.ts';

export type { Target };
//   - ClusterIP (and every non-headless, non-ExternalName Service): the
//     cluster IP on each TCP service port — served by one proxy per machine.
//   - NodePort and LoadBalancer: the node's address on each nodePort.
//   - LoadBalancer: also the node's address on the service port (a built-in
//     load balancer, as k3s' ServiceLB does); the Service's
//     status.loadBalancer lists the nodes' addresses.
//   - Endpoints: the ready addresses of the Service's EndpointSlices
//     (agents/endpoints/ready.ts).

export interface ProxyService {
  metadata: { name: string; namespace?: string };
  spec?: {
    type?: string;
    clusterIP?: string;
    ports?: { name?: string; port: number; protocol?: string; nodePort?: number }[];
  };
}

export interface Listener {
  /** "address:port", unique. */
  key: string;
  address: string;
  port: number;
  kind: 'clusterIP' | 'nodePort' | 'loadBalancer';
  /** namespace/name:portName — which endpoint set the listener uses. */
  backend: string;
}

/** The endpoint set of a service port, keyed like Listener.backend. */
export function backendKey(namespace: string, service: string, portName: string | undefined): string {
  return `${namespace}/${service}:${portName ?? ''}`;
}

/** Listeners this node should have: cluster IPs only when it serves them. */
export function listenersFor(services: ProxyService[], node: { address: string; serveClusterIPs: boolean }): Listener[] {
  const out = new Map<string, Listener>();
  const add = (l: Omit<Listener, 'key'>) => {
    const key = `${l.address}:${l.port}`;
    // The first claim wins: two Services cannot share an address and port (the allocator sees to cluster IPs and node ports).
    if (!out.has(key)) out.set(key, { ...l, key });
  };
  for (const svc of services) {
    const ns = svc.metadata.namespace ?? 'default';
    const type = svc.spec?.type ?? 'ClusterIP';
    if (type === 'ExternalName') continue;
    for (const p of svc.spec?.ports ?? []) {
      if ((p.protocol ?? 'TCP') !== 'TCP') continue;
      const backend = backendKey(ns, svc.metadata.name, p.name);
      const ip = svc.spec?.clusterIP;
      if (node.serveClusterIPs && ip && ip !== 'None') add({ address: ip, port: p.port, kind: 'clusterIP', backend });
      if ((type === 'NodePort' || type === 'LoadBalancer') && p.nodePort) add({ address: node.address, port: p.nodePort, kind: 'nodePort', backend });
      if (type === 'LoadBalancer') add({ address: node.address, port: p.port, kind: 'loadBalancer', backend });
    }
  }
  return [...out.values()];
}

/** The ready endpoints of every service port, by backend key. */
export function endpointsFor(services: ProxyService[], slicesOf: (namespace: string, service: string) => SliceLike[]): Map<string, Target[]> {
  const out = new Map<string, Target[]>();
  for (const svc of services) {
    const ns = svc.metadata.namespace ?? 'default';
    const slices = slicesOf(ns, svc.metadata.name);
    for (const p of svc.spec?.ports ?? []) {
      if ((p.protocol ?? 'TCP') !== 'TCP') continue;
      out.set(backendKey(ns, svc.metadata.name, p.name), readyTargets(slices, p.name));
    }
  }
  return out;
}
