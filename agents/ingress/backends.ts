// From an Ingress backend (a Service and one of its ports) to the addresses
// to connect to: the Service port, then the EndpointSlices of the Service,
// their ready endpoints (agents/endpoints/ready.ts), read from the informer
// caches.
import { type SliceLike, readyTargets } from '../endpoints/ready.ts';
import type { ServiceBackend } from './routes.ts';

export type { SliceLike };

export interface ServiceLike {
  spec?: { type?: string; ports?: { name?: string; port: number; protocol?: string }[] };
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
  const targets = readyTargets(src.slices(b.namespace, b.service), sp.name);
  if (!targets.length) return { error: `no endpoints available for service "${b.namespace}/${b.service}"` };
  return { targets };
}
