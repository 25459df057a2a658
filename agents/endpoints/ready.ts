// The addresses a Service port sends traffic to, read from its
// EndpointSlices the way kube-proxy reads them: IPv4 slices, the slice port
// named like the service port (TCP), endpoints whose `ready` is not false (a
// missing condition means ready; a terminating pod is not ready, so it has
// left the rotation before it gets SIGTERM), each address:port once. Shared
// by the node's service proxy and the ingress proxy.

export interface SliceLike {
  metadata?: { namespace?: string };
  addressType?: string;
  ports?: { name?: string; port?: number; protocol?: string }[] | null;
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean | null } }[];
}

export interface Target {
  ip: string;
  port: number;
}

export function readyTargets(slices: SliceLike[], portName: string | undefined): Target[] {
  const seen = new Set<string>();
  const out: Target[] = [];
  for (const s of slices) {
    if (s.addressType && s.addressType !== 'IPv4') continue;
    const sp = (s.ports ?? []).find((x) => (x.name ?? '') === (portName ?? '') && (x.protocol ?? 'TCP') === 'TCP');
    if (!sp?.port) continue;
    for (const e of s.endpoints ?? []) {
      if (e.conditions?.ready === false) continue;
      for (const ip of e.addresses ?? []) {
        const k = `${ip}:${sp.port}`;
        if (seen.has(k)) continue;
        seen.add(k);
        out.push({ ip, port: sp.port });
      }
    }
  }
  return out;
}
