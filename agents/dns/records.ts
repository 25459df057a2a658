// The cluster's DNS names, as Kubernetes' DNS specification defines them
// (kubernetes/dns docs/specification.md, what CoreDNS's kubernetes plugin
// serves), computed from the Service and EndpointSlice caches:
//   <svc>.<ns>.svc.<zone>              A: the cluster IP; headless: every ready endpoint
//   <host>.<svc>.<ns>.svc.<zone>       A: a headless Service's endpoint with that hostname
//                                         (StatefulSet pods), or its dashed IP
//   _<port>._<proto>.<svc>.<ns>.svc.<zone>  SRV for each named port
//   <svc>.<ns>.svc.<zone>              CNAME for an ExternalName Service
//   <a-b-c-d>.<ns>.pod.<zone>          A: the address the name spells (CoreDNS "pods insecure")
//   dns-version.<zone>                 TXT: the specification's version
// Pure: no sockets, so every rule is a table test.

export interface ServiceView {
  metadata: { name: string; namespace?: string };
  spec?: {
    type?: string;
    clusterIP?: string;
    externalName?: string;
    publishNotReadyAddresses?: boolean;
    ports?: { name?: string; port: number; protocol?: string }[];
  };
}

export interface SliceView {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  addressType?: string;
  endpoints?: { addresses: string[]; hostname?: string; conditions?: { ready?: boolean | null } }[];
  ports?: { name?: string; port?: number; protocol?: string }[] | null;
}

/** Where the records come from: the caches, by namespace and name. */
export interface ClusterView {
  service(namespace: string, name: string): ServiceView | undefined;
  /** The EndpointSlices of a Service (label kubernetes.io/service-name). */
  slices(namespace: string, service: string): SliceView[];
  namespaceExists(namespace: string): boolean;
}

export type Answer =
  | { type: 'A'; name: string; ttl: number; data: string }
  | { type: 'CNAME'; name: string; ttl: number; data: string }
  | { type: 'SRV'; name: string; ttl: number; data: { priority: number; weight: number; port: number; target: string } }
  | { type: 'TXT'; name: string; ttl: number; data: string };

export interface Lookup {
  /** NOERROR with these answers (possibly none: the name exists, not this type), or NXDOMAIN. */
  rcode: 'NOERROR' | 'NXDOMAIN';
  answers: Answer[];
  /** Extra A records for SRV targets (the additional section). */
  additional: Answer[];
}

/** CoreDNS's kubernetes plugin default TTL. */
export const DEFAULT_TTL = 5;
export const SPEC_VERSION = '1.1.0';

const NX: Lookup = { rcode: 'NXDOMAIN', answers: [], additional: [] };
const ok = (answers: Answer[], additional: Answer[] = []): Lookup => ({ rcode: 'NOERROR', answers, additional });

/** Whether `name` (no trailing dot, any case) lies in the cluster zone. */
export function inZone(name: string, zone: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  return n === zone || n.endsWith(`.${zone}`);
}

const dashed = (ip: string) => ip.replace(/\./g, '-');

interface EndpointRecord {
  ip: string;
  /** The name under the Service: its hostname, or its dashed IP. */
  host: string;
  ports: { name?: string; port?: number; protocol?: string }[];
}

/** The endpoints a headless Service publishes: ready ones (all with publishNotReadyAddresses), IPv4, deduplicated. */
function endpointsOf(view: ClusterView, svc: ServiceView, ns: string): EndpointRecord[] {
  const out = new Map<string, EndpointRecord>();
  const all = svc.spec?.publishNotReadyAddresses === true;
  for (const s of view.slices(ns, svc.metadata.name)) {
    if (s.addressType && s.addressType !== 'IPv4') continue;
    for (const e of s.endpoints ?? []) {
      // A nil "ready" means ready (EndpointSlice API).
      if (!all && e.conditions?.ready === false) continue;
      for (const ip of e.addresses ?? []) {
        if (!out.has(ip)) out.set(ip, { ip, host: e.hostname || dashed(ip), ports: s.ports ?? [] });
      }
    }
  }
  return [...out.values()].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
}

const isHeadless = (svc: ServiceView) => svc.spec?.clusterIP === 'None';

/**
 * Answers a question about a name in the cluster zone. `qtype` is the record
 * type asked for ('A', 'AAAA', 'SRV', 'ANY', ...). Names outside the zone are
 * not this function's: the server forwards them.
 */
export function lookup(view: ClusterView, zone: string, qname: string, qtype: string, ttl = DEFAULT_TTL): Lookup {
  const name = qname.toLowerCase().replace(/\.$/, '');
  if (!inZone(name, zone)) return NX;
  const fq = (n: string) => n; // names are answered without the trailing dot; the encoder adds it
  const labels = name === zone ? [] : name.slice(0, name.length - zone.length - 1).split('.');
  const want = (t: string) => qtype === t || qtype === 'ANY';

  if (labels.length === 0) return ok([]);
  if (labels.length === 1 && labels[0] === 'dns-version') return ok(want('TXT') ? [{ type: 'TXT', name: fq(name), ttl, data: SPEC_VERSION }] : []);

  const kind = labels[labels.length - 1];
  if (kind === 'pod') {
    // <a-b-c-d>.<ns>.pod.<zone>
    if (labels.length === 2) return labels[0] && view.namespaceExists(labels[0]) ? ok([]) : NX;
    if (labels.length !== 3) return NX;
    const ip = labels[0]!.replace(/-/g, '.');
    if (!/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(ip) || ip.split('.').some((o) => Number(o) > 255)) return NX;
    return ok(want('A') ? [{ type: 'A', name: fq(name), ttl, data: ip }] : []);
  }
  if (kind !== 'svc') return NX;
  // svc.<zone> and <ns>.svc.<zone> exist as names (with no records).
  if (labels.length === 1) return ok([]);
  const ns = labels[labels.length - 2]!;
  if (labels.length === 2) return view.namespaceExists(ns) ? ok([]) : NX;

  // _<port>._<proto>.<svc>.<ns>.svc — SRV
  if (labels.length === 5 && labels[0]!.startsWith('_') && labels[1]!.startsWith('_')) {
    const svc = view.service(ns, labels[2]!);
    if (!svc || svc.spec?.type === 'ExternalName') return NX;
    return srv(view, svc, ns, zone, labels[0]!.slice(1), labels[1]!.slice(1).toUpperCase(), name, want('SRV'), ttl);
  }
  // <svc>.<ns>.svc
  if (labels.length === 3) {
    const svc = view.service(ns, labels[0]!);
    if (!svc) return NX;
    if (svc.spec?.type === 'ExternalName') {
      const target = (svc.spec.externalName ?? '').replace(/\.$/, '');
      return target ? ok([{ type: 'CNAME', name: fq(name), ttl, data: target }]) : NX;
    }
    if (isHeadless(svc)) {
      const eps = endpointsOf(view, svc, ns);
      if (want('SRV')) {
        // SRV on the service name: every named port of every endpoint.
        return ok(eps.flatMap((e) => e.ports.filter((p) => p.name && p.port).map((p) => ({
          type: 'SRV' as const, name: fq(name), ttl, data: { priority: 0, weight: weightOf(eps.length), port: p.port!, target: `${e.host}.${labels[0]}.${ns}.svc.${zone}` },
        }))), eps.map((e) => ({ type: 'A' as const, name: `${e.host}.${labels[0]}.${ns}.svc.${zone}`, ttl, data: e.ip })));
      }
      return ok(want('A') ? eps.map((e) => ({ type: 'A' as const, name: fq(name), ttl, data: e.ip })) : []);
    }
    const ip = svc.spec?.clusterIP;
    if (!ip) return ok([]);
    if (want('SRV')) {
      const ports = (svc.spec?.ports ?? []).filter((p) => p.name);
      return ok(ports.map((p) => ({ type: 'SRV' as const, name: fq(name), ttl, data: { priority: 0, weight: weightOf(ports.length), port: p.port, target: name } })),
        ports.length ? [{ type: 'A', name, ttl, data: ip }] : []);
    }
    return ok(want('A') ? [{ type: 'A', name: fq(name), ttl, data: ip }] : []);
  }
  // <host>.<svc>.<ns>.svc — an endpoint of a headless Service
  if (labels.length === 4) {
    const svc = view.service(ns, labels[1]!);
    if (!svc || !isHeadless(svc)) return NX;
    const eps = endpointsOf(view, svc, ns).filter((e) => e.host === labels[0]);
    if (!eps.length) return NX;
    return ok(want('A') ? eps.map((e) => ({ type: 'A' as const, name: fq(name), ttl, data: e.ip })) : []);
  }
  return NX;
}

/** Weight of each of n SRV records as CoreDNS gives it (100 shared evenly). */
function weightOf(n: number): number {
  return n > 0 ? Math.floor(100 / n) : 100;
}

function srv(view: ClusterView, svc: ServiceView, ns: string, zone: string, port: string, proto: string, name: string, wanted: boolean, ttl: number): Lookup {
  const svcName = svc.metadata.name;
  const base = `${svcName}.${ns}.svc.${zone}`;
  if (isHeadless(svc)) {
    const eps = endpointsOf(view, svc, ns);
    const hits = eps.flatMap((e) => e.ports.filter((p) => p.name === port && (p.protocol ?? 'TCP') === proto && p.port).map((p) => ({ e, port: p.port! })));
    if (!hits.length) return NX;
    if (!wanted) return ok([]);
    return ok(
      hits.map(({ e, port: p }) => ({ type: 'SRV' as const, name, ttl, data: { priority: 0, weight: weightOf(hits.length), port: p, target: `${e.host}.${base}` } })),
      hits.map(({ e }) => ({ type: 'A' as const, name: `${e.host}.${base}`, ttl, data: e.ip })),
    );
  }
  const p = (svc.spec?.ports ?? []).find((x) => x.name === port && (x.protocol ?? 'TCP') === proto);
  if (!p) return NX;
  if (!wanted) return ok([]);
  const ip = svc.spec?.clusterIP;
  return ok([{ type: 'SRV', name, ttl, data: { priority: 0, weight: 100, port: p.port, target: base } }], ip ? [{ type: 'A', name: base, ttl, data: ip }] : []);
}
