// What default/kubernetes should be (Kubernetes' API server keeps it this way
// in its "bootstrap controller"): a ClusterIP Service, port 443 named https,
// without a selector, and Endpoints listing every API server's address —
// here the members' API addresses from GET /cluster/status (loopback
// host:port, each with its real port; members on different ports make one
// subset per port, as Endpoints require).

export const KUBERNETES_SERVICE = 'kubernetes';
export const KUBERNETES_NAMESPACE = 'default';
export const SERVICE_PORT = 443;
export const PORT_NAME = 'https';

export interface ApiAddress {
  ip: string;
  port: number;
}

/** The API servers' addresses from cluster-status members' "api" URLs (http://host:port); members without one are skipped. */
export function apiAddresses(members: readonly { id: string; api: string }[]): ApiAddress[] {
  const out: ApiAddress[] = [];
  for (const m of members) {
    if (!m.api) continue;
    let u: URL;
    try {
      u = new URL(m.api.includes('://') ? m.api : `http://${m.api}`);
    } catch {
      throw new Error(`member ${m.id} has an API address that is not a URL: ${JSON.stringify(m.api)}`);
    }
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    out.push({ ip: u.hostname.replace(/^\[|\]$/g, ''), port });
  }
  return out.sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
}

export interface EndpointSubset {
  addresses: { ip: string }[];
  ports: { name: string; port: number; protocol: 'TCP' }[];
}

export function desiredSubsets(addrs: readonly ApiAddress[]): EndpointSubset[] {
  const byPort = new Map<number, string[]>();
  for (const a of addrs) byPort.set(a.port, [...(byPort.get(a.port) ?? []), a.ip]);
  return [...byPort].sort(([a], [b]) => a - b).map(([port, ips]) => ({
    addresses: [...new Set(ips)].sort().map((ip) => ({ ip })),
    ports: [{ name: PORT_NAME, port, protocol: 'TCP' }],
  }));
}

/** The Service's spec fields this controller owns (clusterIP is the server's to allocate). */
export function desiredServiceSpec(addrs: readonly ApiAddress[]): { type: 'ClusterIP'; sessionAffinity: 'None'; ports: { name: string; port: number; protocol: 'TCP'; targetPort: number }[] } {
  // One targetPort only: the lowest port in use (with several, Endpoints carry each server's own).
  const target = addrs.length ? Math.min(...addrs.map((a) => a.port)) : SERVICE_PORT;
  return { type: 'ClusterIP', sessionAffinity: 'None', ports: [{ name: PORT_NAME, port: SERVICE_PORT, protocol: 'TCP', targetPort: target }] };
}

export const SERVICE_LABELS = { component: 'apiserver', provider: 'kubernetes' };

/** Who manages default/kubernetes' EndpointSlices (the endpointslice controller leaves Services without a selector alone). */
export const SLICE_MANAGER = 'kubernetes-service.flotilla.io';

export interface EndpointSliceShape {
  name: string;
  addressType: 'IPv4';
  endpoints: { addresses: string[]; conditions: { ready: true; serving: true; terminating: false } }[];
  ports: { name: string; port: number; protocol: 'TCP' }[];
}

/**
 * The EndpointSlices of default/kubernetes, one per subset (a slice has one
 * port list, as a subset does): the node proxies route the Service's cluster
 * IP from slices, so in-cluster clients (KUBERNETES_SERVICE_HOST) reach the
 * servers. Kubernetes' API server writes its slice the same way.
 */
export function desiredSlices(addrs: readonly ApiAddress[]): EndpointSliceShape[] {
  return desiredSubsets(addrs).map((s, i) => ({
    name: i === 0 ? KUBERNETES_SERVICE : `${KUBERNETES_SERVICE}-${s.ports[0].port}`,
    addressType: 'IPv4',
    endpoints: s.addresses.map((a) => ({ addresses: [a.ip], conditions: { ready: true, serving: true, terminating: false } })),
    ports: s.ports,
  }));
}
