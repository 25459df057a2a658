// discovery.k8s.io/v1: EndpointSlice.

import { atomic, bool, int, map, obj, oneOf, set, str } from '../schema/dsl.ts';
import { ObjectReference } from '../schema/meta.ts';
import type { Cause, KindDef } from '../schema/types.ts';
import {
  child, duplicate, immutable, index, invalid, invalidEach, isDNS1123Label, isDNS1123Subdomain, isValidIP, isValidPortNum, notSupported, required,
} from '../schema/validate.ts';
import { type Obj, ageColumn, column, defineKind, dflt, entries, list, validateLabels } from './common.ts';

const D = (n: string) => `io.k8s.api.discovery.v1.${n}`;

export const ADDRESS_TYPES = ['IPv4', 'IPv6', 'FQDN'] as const;
/** Validation limits of discovery/v1 (pkg/apis/discovery/validation). */
export const MAX_SLICE_ENDPOINTS = 1000;
const MAX_ADDRESSES = 100;
const MAX_PORTS = 20000;
const MAX_ZONE_HINTS = 8;
const PROTOCOLS = ['SCTP', 'TCP', 'UDP'];

/** The labels a managed slice carries (discovery/v1 well-known labels). */
export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
export const LABEL_MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';

const EndpointConditions = obj({
  ready: bool({ description: 'ready indicates that this endpoint is ready to receive traffic, according to whatever system is managing the endpoint.' }),
  serving: bool({ description: 'serving indicates that this endpoint is able to receive traffic, according to whatever system is managing the endpoint.' }),
  terminating: bool({ description: 'terminating indicates that this endpoint is terminating.' }),
}, { name: D('EndpointConditions') });

const ForZone = obj({ name: str() }, { name: D('ForZone'), required: ['name'] });
const ForNode = obj({ name: str() }, { name: D('ForNode'), required: ['name'] });

const Endpoint = obj({
  addresses: set(str(), { description: 'addresses of this endpoint. For EndpointSlices of addressType "IPv4" or "IPv6", the values are IP addresses in canonical form.' }),
  conditions: EndpointConditions,
  hostname: str({ description: 'hostname of this endpoint.' }),
  targetRef: ObjectReference,
  deprecatedTopology: map(str()),
  nodeName: str({ description: 'nodeName represents the name of the Node hosting this endpoint.' }),
  zone: str({ description: 'zone is the name of the Zone this endpoint exists in.' }),
  hints: obj({ forZones: atomic(ForZone), forNodes: atomic(ForNode) }, { name: D('EndpointHints') }),
}, { name: D('Endpoint'), required: ['addresses'] });

const EndpointPort = obj({
  name: str({ description: 'name represents the name of this port.' }),
  protocol: str({ description: 'protocol represents the IP protocol for this port. Must be UDP, TCP, or SCTP. Default is TCP.' }),
  port: int({ description: 'port represents the port number of the endpoint. If the EndpointSlice is derived from a Kubernetes service, this must be set to the service\'s target port.' }),
  appProtocol: str(),
}, { name: D('EndpointPort'), mapType: 'atomic' });

const tooMany = (field: string, n: number, max: number): Cause => ({
  reason: 'FieldValueTooMany', field, message: `Too many: ${n}: must have at most ${max} items`,
});

const isIPv4 = (a: string) => isValidIP(a) && !a.includes(':');
const isIPv6 = (a: string) => isValidIP(a) && a.includes(':');

function validateAddress(type: unknown, address: string, path: string): Cause[] {
  switch (type) {
    case 'IPv4': return isIPv4(address) ? [] : [invalid(path, address, 'must be a valid IPv4 address')];
    case 'IPv6': return isIPv6(address) ? [] : [invalid(path, address, 'must be a valid IPv6 address')];
    case 'FQDN': return invalidEach(path, address, isDNS1123Subdomain(address));
    default: return [];
  }
}

function validateEndpoints(eps: unknown, addressType: unknown): Cause[] {
  const out: Cause[] = [];
  const all = list(eps);
  if (all.length > MAX_SLICE_ENDPOINTS) return [tooMany('endpoints', all.length, MAX_SLICE_ENDPOINTS)];
  for (const [ep, i] of entries(eps)) {
    const p = index('endpoints', i);
    const addresses = list(ep.addresses) as unknown as string[];
    if (!addresses.length) out.push(required(child(p, 'addresses'), 'must contain at least 1 address'));
    else if (addresses.length > MAX_ADDRESSES) out.push(tooMany(child(p, 'addresses'), addresses.length, MAX_ADDRESSES));
    addresses.forEach((a, j) => out.push(...validateAddress(addressType, String(a), index(child(p, 'addresses'), j))));
    if (ep.nodeName) out.push(...invalidEach(child(p, 'nodeName'), ep.nodeName, isDNS1123Subdomain(String(ep.nodeName))));
    if (ep.hostname) out.push(...invalidEach(child(p, 'hostname'), ep.hostname, isDNS1123Label(String(ep.hostname))));
    out.push(...validateLabels(ep.deprecatedTopology, child(p, 'deprecatedTopology')));
    const zones = list(ep.hints?.forZones);
    if (zones.length > MAX_ZONE_HINTS) out.push(tooMany(child(p, 'hints', 'forZones'), zones.length, MAX_ZONE_HINTS));
  }
  return out;
}

function validatePorts(ports: unknown): Cause[] {
  const all = list(ports);
  if (all.length > MAX_PORTS) return [tooMany('ports', all.length, MAX_PORTS)];
  const out: Cause[] = [];
  const names = new Set<string>();
  for (const [port, i] of entries(ports)) {
    const p = index('ports', i);
    const name = String(port.name ?? '');
    if (name) out.push(...invalidEach(child(p, 'name'), name, isDNS1123Label(name)));
    if (names.has(name)) out.push(duplicate(child(p, 'name'), name));
    names.add(name);
    if (!port.protocol) out.push(required(child(p, 'protocol')));
    else if (!PROTOCOLS.includes(port.protocol)) out.push(notSupported(child(p, 'protocol'), port.protocol, PROTOCOLS));
    if (typeof port.port === 'number') out.push(...invalidEach(child(p, 'port'), port.port, isValidPortNum(port.port)));
  }
  return out;
}

/** kubectl's formatDiscoveryPorts/Endpoints: the first three, "+ N more...", or "<unset>". */
function firstThree(items: string[]): string {
  if (items.length > 3) return `${items.slice(0, 3).join(',')} + ${items.length - 3} more...`;
  return items.join(',') || '<unset>';
}
const slicePorts = (s: Obj) => firstThree(list(s.ports).map((p) => (typeof p.port === 'number' ? String(p.port) : p.name || '*')));
const sliceEndpoints = (s: Obj) => firstThree(list(s.endpoints).flatMap((e) => list(e.addresses) as unknown as string[]));

export const endpointSlice = defineKind({
  group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', plural: 'endpointslices',
  description: 'EndpointSlice represents a set of service endpoints. Most EndpointSlices are created by the EndpointSlice controller to represent the Pods selected by Service objects.',
  fields: {
    addressType: oneOf(...ADDRESS_TYPES),
    endpoints: atomic(Endpoint, 'endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.'),
    ports: atomic(EndpointPort, 'ports specifies the list of network ports exposed by each endpoint in this slice.'),
  },
  required: ['addressType'],
  default(s) {
    // endpoints is required in the OpenAPI document, but Go clients send null for none: store an empty list.
    if (!Array.isArray(s.endpoints)) s.endpoints = [];
    for (const [p] of entries(s.ports)) {
      dflt(p, 'name', '');
      dflt(p, 'protocol', 'TCP');
    }
  },
  validate(s, old) {
    const out: Cause[] = [];
    // addressType's presence and values are the schema's (required, enum).
    out.push(...validateEndpoints(s.endpoints, s.addressType), ...validatePorts(s.ports));
    if (old && s.addressType !== old.addressType) out.push(immutable('addressType', s.addressType));
    return out;
  },
  columns: [
    column('AddressType', (s) => s.addressType ?? '', { description: 'addressType specifies the type of address carried by this EndpointSlice.' }),
    column('Ports', slicePorts, { description: 'ports specifies the list of network ports exposed by each endpoint in this slice.' }),
    column('Endpoints', sliceEndpoints, { description: 'endpoints is a list of unique endpoints in this slice.' }),
    ageColumn,
  ],
});

export const DISCOVERY_KINDS: KindDef[] = [endpointSlice];
