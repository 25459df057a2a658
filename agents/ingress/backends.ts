// From an Ingress backend (a Service and one of its ports) to the addresses
// to connect to: the Service port, then the EndpointSlices of the Service,
// the slice port of the same name, the ready endpoints. The same resolution
// kube-proxy makes, read from the informer caches.
import type { ServiceBackend } from './routes.ts';

export interface ServiceLike {
  spec?: { type?: string; ports?: { name?: string; port: number; protocol?: string }[] };
}

export interface SliceLike {
  metadata?: { namespace?: string };
  addressType?: string;
  ports?: { name?: string; port?: number; protocol?: string }[] | null;
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean | null; terminating?: boolean | null } }[];
}

export interface BackendSource {
  service(namespace: string, name: string): ServiceLike | undefined;
  slices(namespace: string, service: string): SliceLike[];
}

export type Resolved = { targets: { ip: string; port: number }[] } | { error: string };

export function resolveBackend(src: BackendSource, b: ServiceBackend): Resolved {
  const svc = src.service(b.namespace, b.service);
  if (!svc) return { error: `service "${b.namespace}/${b.service}" not found` };
  if (svc.spec?.type === 'ExternalName') return { error: `service "${b.namespace}/${b.service}" is an ExternalName service, which this controller does not proxy to` };
  const sp = (svc.spec?.ports ?? []).find((p) => (b.port.name ? p.name === b.port.name : p.port === b.port.number) && (p.protocol ?? 'TCP') === 'TCP');
  if (!sp) return { error: `service "${b.namespace}/${b.service}" has no TCP port ${b.port.name ?? b.port.number}` };
  const seen = new Set<string>();
  const targets: { ip: string; port: number }[] = [];
  for (const s of src.slices(b.namespace, b.service)) {
    if (s.addressType && s.addressType !== 'IPv4') continue;
    const port = (s.ports ?? []).find((p) => (p.name ?? '') === (sp.name ?? '') && (p.protocol ?? 'TCP') === 'TCP');
    if (!port?.port) continue;
    for (const e of s.endpoints ?? []) {
      // Ready (nil means ready); a terminating endpoint has left the rotation.
      if (e.conditions?.ready === false) continue;
      for (const ip of e.addresses) {
        const k = `${ip}:${port.port}`;
        if (seen.has(k)) continue;
        seen.add(k);
        targets.push({ ip, port: port.port });
      }
    }
  }
  if (!targets.length) return { error: `no endpoints available for service "${b.namespace}/${b.service}"` };
  return { targets };
}
