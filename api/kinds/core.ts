// The core (legacy, "") group, version v1.

import {
  CORE, any, arr, atomic, bool, bytes, int, int64, intOrString, listMap, map, microTime, obj, oneOf, str, strMap, strings, time,
} from '../schema/dsl.ts';
import { Condition, LocalObjectReference, ObjectReference, conditionOf, conditions, kindSchema } from '../schema/meta.ts';
import type { Cause, KindDef } from '../schema/types.ts';
import {
  child, duplicate, forbidden, immutable, index, invalid, invalidEach, isConfigMapKey, isDNS1035Label,
  isDNS1123Label, isDNS1123Subdomain, isQualifiedName, isValidIP, isValidPortNum, notSupported, required,
} from '../schema/validate.ts';
import {
  type Obj, ageColumn, column, deepEqual, defaults, defineKind, dflt, ensure, entries, formatLabels, immutableFields,
  list, quantityValue, rec, since, validateLabelSelector, validateLabels,
} from './common.ts';
import {
  HostPathVolumeSource, NFSVolumeSource, NodeSelector, PersistentVolumeClaimSpec, PodSpec, PodStatus, Protocol, ResourceList,
  defaultPod, podSummary, readinessGates, validatePodSpec, validatePodSpecUpdate, validatePortNumOrName,
} from './pod.ts';

const C = CORE;
const core = { group: '', version: 'v1' };
const none = (v: unknown) => (v === undefined || v === null || v === '' ? '<none>' : String(v));

// ---- Namespace -------------------------------------------------------------------

export const namespace = defineKind({
  ...core, kind: 'Namespace', plural: 'namespaces', shortNames: ['ns'], namespaced: false, subresources: ['status', 'finalize'],
  description: 'Namespace provides a scope for Names. Use of multiple namespaces is optional.',
  fields: {
    spec: obj({ finalizers: strings('Finalizers is an opaque list of values that must be empty to permanently remove object from storage.') },
      { name: C('NamespaceSpec') }),
    status: obj({
      phase: oneOf('Active', 'Terminating'),
      conditions: conditions(conditionOf(C('NamespaceCondition'), ['lastTransitionTime'])),
    }, { name: C('NamespaceStatus') }),
  },
  name: isDNS1123Label,
  default(ns) {
    dflt(ensure(ns, 'status'), 'phase', 'Active');
    const name = ns.metadata?.name;
    if (typeof name === 'string' && name) ensure(ensure(ns, 'metadata'), 'labels')['kubernetes.io/metadata.name'] = name;
  },
  validate: (ns) => list(ns.spec?.finalizers).flatMap((f, i) =>
    invalidEach(index('spec.finalizers', i), f, isQualifiedName(String(f)))),
  columns: [column('Status', (o) => o.status?.phase ?? '', { description: 'The status of the namespace' }), ageColumn],
});

// ---- Pod -------------------------------------------------------------------------

export const pod = defineKind({
  ...core, kind: 'Pod', plural: 'pods', shortNames: ['po'], categories: ['all'], subresources: ['status', 'binding', 'log', 'eviction'],
  description: 'Pod is a collection of containers that can run on a host.',
  fields: { spec: PodSpec, status: PodStatus },
  default: defaultPod,
  validate: (p, old) => [...validatePodSpec(p.spec, 'spec'), ...(old ? validatePodSpecUpdate(p.spec, old.spec) : [])],
  columns: [
    column('Ready', (p, now) => podSummary(p, now).ready, { description: 'The aggregate readiness state of this pod for accepting traffic.' }),
    column('Status', (p, now) => podSummary(p, now).status, { description: 'The aggregate status of the containers in this pod.' }),
    column('Restarts', (p, now) => podSummary(p, now).restarts, {
      description: 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.',
    }),
    ageColumn,
    column('IP', (p) => none(list(p.status?.podIPs)[0]?.ip || p.status?.podIP), { wide: true, description: 'IP address allocated to the pod.' }),
    column('Node', (p) => none(p.spec?.nodeName), { wide: true, description: 'NodeName indicates in which node this pod is scheduled.' }),
    column('Nominated Node', (p) => none(p.status?.nominatedNodeName), { wide: true, description: 'nominatedNodeName is set only when this pod preempts other pods on the node.' }),
    column('Readiness Gates', (p) => readinessGates(p), { wide: true, description: 'If specified, all readiness gates will be evaluated for pod readiness.' }),
  ],
});

/** core/v1 Binding: the body of POST pods/{name}/binding. */
export const BINDING_SCHEMA = kindSchema({ ...core, kind: 'Binding' }, { target: ObjectReference }, {
  required: ['target'],
  description: 'Binding ties one object to another; for example, a pod is bound to a node by a scheduler.',
});

/** ValidateBinding: a target node name is required; kind, if set, is Node. */
export function validateBinding(binding: Obj): Cause[] {
  const t = rec(binding.target) ?? {};
  const out: Cause[] = [];
  if (t.kind && t.kind !== 'Node') out.push(invalid('target.kind', t.kind, "must be empty or 'Node'"));
  if (!t.name) out.push(required('target.name'));
  return out;
}

// ---- Service ----------------------------------------------------------------------

const ServicePort = obj({
  name: str({ description: 'The name of this port within the service. This must be a DNS_LABEL.' }),
  protocol: Protocol,
  appProtocol: str(),
  port: int({ description: 'The port that will be exposed by this service.' }),
  targetPort: intOrString('Number or name of the port to access on the pods targeted by the service.'),
  nodePort: int(),
}, { name: C('ServicePort'), required: ['port'] });

const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
const externallyAccessible = (spec: Obj) =>
  spec.type === 'LoadBalancer' || spec.type === 'NodePort' || (spec.type === 'ClusterIP' && list(spec.externalIPs).length > 0);

function validateServiceSpec(spec: Obj): Cause[] {
  const out: Cause[] = [];
  const type = spec.type;
  const ports = list(spec.ports);
  if (type !== 'ExternalName' && !ports.length) out.push(required('spec.ports'));
  const names = new Set<unknown>();
  for (const [p, i] of entries(spec.ports)) {
    const path = index('spec.ports', i);
    if (!p.name && ports.length > 1) out.push(required(child(path, 'name')));
    else if (p.name) {
      out.push(...invalidEach(child(path, 'name'), p.name, isDNS1123Label(String(p.name))));
      if (names.has(p.name)) out.push(duplicate(child(path, 'name'), p.name));
      names.add(p.name);
    }
    if (typeof p.port === 'number') out.push(...invalidEach(child(path, 'port'), p.port, isValidPortNum(p.port)));
    out.push(...validatePortNumOrName(p.targetPort, child(path, 'targetPort')));
    if (p.nodePort && type !== 'NodePort' && type !== 'LoadBalancer') {
      out.push(forbidden(child(path, 'nodePort'), `may not be used when \`type\` is '${type}'`));
    } else if (p.nodePort) {
      out.push(...invalidEach(child(path, 'nodePort'), p.nodePort, isValidPortNum(p.nodePort)));
    }
  }
  if (type === 'ExternalName') {
    if (!spec.externalName) out.push(required('spec.externalName'));
    else out.push(...invalidEach('spec.externalName', spec.externalName, isDNS1123Subdomain(String(spec.externalName).replace(/\.$/, ''))));
    if (spec.clusterIP && spec.clusterIP !== 'None') out.push(forbidden('spec.clusterIP', 'may not be set for ExternalName services'));
  }
  const ips = [spec.clusterIP, ...list(spec.clusterIPs)].filter((ip) => typeof ip === 'string' && ip !== '' && ip !== 'None');
  for (const ip of new Set(ips)) {
    if (!isValidIP(ip as unknown as string)) out.push(invalid('spec.clusterIPs[0]', ip, "must be empty, 'None', or a valid IP address"));
  }
  list(spec.externalIPs).forEach((ip, i) => {
    if (!isValidIP(String(ip))) out.push(invalid(index('spec.externalIPs', i), ip, 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'));
  });
  out.push(...validateLabels(spec.selector, 'spec.selector'));
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  if (typeof timeout === 'number' && (timeout <= 0 || timeout > 86400)) {
    out.push(invalid('spec.sessionAffinityConfig.clientIP.timeoutSeconds', timeout, 'must be greater than 0 and less than 86400'));
  }
  if (spec.externalTrafficPolicy && !externallyAccessible(spec)) {
    out.push(invalid('spec.externalTrafficPolicy', spec.externalTrafficPolicy, "may only be set when `type` is 'NodePort' or 'LoadBalancer'"));
  }
  return out;
}

function serviceExternalIP(svc: Obj): string {
  const spec = rec(svc.spec) ?? {};
  const external = list(spec.externalIPs) as unknown as string[];
  switch (spec.type) {
    case 'ClusterIP': case 'NodePort':
      return external.length ? external.join(',') : '<none>';
    case 'LoadBalancer': {
      const lb = list(svc.status?.loadBalancer?.ingress).map((i) => i.ip || i.hostname).filter(Boolean);
      let text = lb.join(',');
      if (text.length > 16) text = `${text.slice(0, 13)}...`;
      const all = [...(text ? text.split(',') : []), ...external];
      return all.length ? all.join(',') : '<pending>';
    }
    case 'ExternalName':
      return spec.externalName ?? '';
  }
  return '<unknown>';
}

const servicePorts = (svc: Obj) =>
  list(svc.spec?.ports).map((p) => (p.nodePort > 0 ? `${p.port}:${p.nodePort}/${p.protocol}` : `${p.port}/${p.protocol}`)).join(',') || '<none>';

export const service = defineKind({
  ...core, kind: 'Service', plural: 'services', shortNames: ['svc'], categories: ['all'], subresources: ['status'],
  description: 'Service is a named abstraction of software service (for example, mysql) consisting of local port that the proxy listens on, and the selector that determines which pods will answer requests sent through the proxy.',
  fields: {
    spec: obj({
      ports: listMap(ServicePort, ['port', 'protocol'], { description: 'The list of ports that are exposed by this service.' }),
      selector: map(str(), { mapType: 'atomic', description: 'Route service traffic to pods with label keys and values matching this selector.' }),
      clusterIP: str(),
      clusterIPs: strings(),
      type: oneOf(...SERVICE_TYPES),
      externalIPs: strings(),
      sessionAffinity: oneOf('ClientIP', 'None'),
      loadBalancerIP: str(),
      loadBalancerSourceRanges: strings(),
      externalName: str(),
      externalTrafficPolicy: oneOf('Cluster', 'Local'),
      healthCheckNodePort: int(),
      publishNotReadyAddresses: bool(),
      sessionAffinityConfig: obj({ clientIP: obj({ timeoutSeconds: int() }, { name: C('ClientIPConfig') }) }, { name: C('SessionAffinityConfig') }),
      ipFamilies: strings(),
      ipFamilyPolicy: oneOf('PreferDualStack', 'RequireDualStack', 'SingleStack'),
      allocateLoadBalancerNodePorts: bool(),
      loadBalancerClass: str(),
      internalTrafficPolicy: oneOf('Cluster', 'Local'),
      trafficDistribution: str(),
    }, { name: C('ServiceSpec') }),
    status: obj({
      loadBalancer: obj({
        ingress: atomic(obj({
          ip: str(), hostname: str(), ipMode: str(),
          ports: atomic(obj({ port: int(), protocol: Protocol, error: str() }, { name: C('PortStatus'), required: ['port', 'protocol'] })),
        }, { name: C('LoadBalancerIngress') })),
      }, { name: C('LoadBalancerStatus') }),
      conditions: conditions(Condition),
    }, { name: C('ServiceStatus') }),
  },
  name: isDNS1035Label,
  default(svc) {
    const spec = ensure(svc, 'spec');
    defaults(spec, { type: 'ClusterIP', sessionAffinity: 'None' });
    if (spec.sessionAffinity === 'None') delete spec.sessionAffinityConfig;
    if (spec.sessionAffinity === 'ClientIP' && typeof spec.sessionAffinityConfig?.clientIP?.timeoutSeconds !== 'number') {
      spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: 10800 } };
    }
    for (const [p] of entries(spec.ports)) {
      dflt(p, 'protocol', 'TCP');
      if (p.targetPort === undefined || p.targetPort === null || p.targetPort === 0 || p.targetPort === '') p.targetPort = p.port;
    }
    if (externallyAccessible(spec)) dflt(spec, 'externalTrafficPolicy', 'Cluster');
    if (spec.type !== 'ExternalName') dflt(spec, 'internalTrafficPolicy', 'Cluster');
    if (spec.type === 'LoadBalancer') dflt(spec, 'allocateLoadBalancerNodePorts', true);
  },
  validate(svc, old) {
    const out = validateServiceSpec(rec(svc.spec) ?? {});
    if (old && svc.spec?.type !== 'ExternalName' && old.spec?.type !== 'ExternalName') {
      const ip = svc.spec?.clusterIP;
      if (ip && old.spec?.clusterIP && ip !== old.spec.clusterIP) out.push(immutable('spec.clusterIP', ip));
    }
    return out;
  },
  columns: [
    column('Type', (s) => s.spec?.type ?? '', { description: 'The type of the service.' }),
    column('Cluster-IP', (s) => none(list(s.spec?.clusterIPs)[0] || s.spec?.clusterIP), { description: 'The IP address of the service.' }),
    column('External-IP', serviceExternalIP, { description: 'The external IP addresses of the service.' }),
    column('Port(s)', servicePorts, { description: 'The ports exposed by the service.' }),
    ageColumn,
    column('Selector', (s) => formatLabels(s.spec?.selector), { wide: true, description: 'Route service traffic to pods with label keys and values matching this selector.' }),
  ],
});

/**
 * What the Service registry carries over from the stored object on update
 * when the request leaves it unset (patchAllocatedValues): cluster IPs,
 * IP families and allocated node ports.
 */
export function servicePrepareForUpdate(svc: Obj, old: Obj): void {
  const spec = ensure(svc, 'spec');
  const oldSpec = rec(old.spec) ?? {};
  if (spec.type === 'ExternalName' || oldSpec.type === 'ExternalName') return;
  for (const f of ['clusterIP', 'clusterIPs', 'ipFamilies', 'ipFamilyPolicy']) dflt(spec, f, oldSpec[f]);
  if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') {
    for (const [p] of entries(spec.ports)) {
      if (p.nodePort) continue;
      const match = list(oldSpec.ports).find((o) => o.port === p.port && (o.protocol ?? 'TCP') === (p.protocol ?? 'TCP'));
      if (match?.nodePort) p.nodePort = match.nodePort;
    }
    if (spec.externalTrafficPolicy === 'Local') dflt(spec, 'healthCheckNodePort', oldSpec.healthCheckNodePort);
  }
}

// ---- Endpoints ----------------------------------------------------------------------

const EndpointAddress = obj({ ip: str(), hostname: str(), nodeName: str(), targetRef: ObjectReference },
  { name: C('EndpointAddress'), required: ['ip'], mapType: 'atomic' });

function formatEndpoints(ep: Obj): string {
  const shown: string[] = [];
  let count = 0;
  let more = false;
  const add = (text: string) => {
    if (shown.length === 3) more = true;
    else shown.push(text);
  };
  for (const ss of list(ep.subsets)) {
    const addrs = list(ss.addresses);
    const ports = list(ss.ports);
    if (!ports.length) {
      count += addrs.length;
      addrs.forEach((a) => add(a.ip));
      continue;
    }
    for (const port of ports) {
      count += addrs.length;
      addrs.forEach((a) => add(String(a.ip).includes(':') ? `[${a.ip}]:${port.port}` : `${a.ip}:${port.port}`));
    }
  }
  if (more) return `${shown.join(',')} + ${count - 3} more...`;
  return shown.join(',') || '<none>';
}

export const endpoints = defineKind({
  ...core, kind: 'Endpoints', plural: 'endpoints', shortNames: ['ep'],
  description: 'Endpoints is a collection of endpoints that implement the actual service.',
  fields: {
    subsets: atomic(obj({
      addresses: atomic(EndpointAddress),
      notReadyAddresses: atomic(EndpointAddress),
      ports: atomic(obj({ name: str(), port: int(), protocol: Protocol, appProtocol: str() },
        { name: C('EndpointPort'), required: ['port'], mapType: 'atomic' })),
    }, { name: C('EndpointSubset') })),
  },
  default(ep) {
    for (const [ss] of entries(ep.subsets)) for (const [p] of entries(ss.ports)) dflt(p, 'protocol', 'TCP');
  },
  validate(ep) {
    const out: Cause[] = [];
    for (const [ss, i] of entries(ep.subsets)) {
      const sp = index('subsets', i);
      for (const key of ['addresses', 'notReadyAddresses']) {
        for (const [a, j] of entries(ss[key])) {
          if (!isValidIP(String(a.ip ?? ''))) out.push(invalid(child(index(child(sp, key), j), 'ip'), a.ip ?? '', 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'));
          if (a.hostname) out.push(...invalidEach(child(index(child(sp, key), j), 'hostname'), a.hostname, isDNS1123Label(String(a.hostname))));
        }
      }
      const ports = list(ss.ports);
      for (const [p, j] of entries(ss.ports)) {
        const pp = index(child(sp, 'ports'), j);
        if (!p.name && ports.length > 1) out.push(required(child(pp, 'name')));
        else if (p.name) out.push(...invalidEach(child(pp, 'name'), p.name, isDNS1123Label(String(p.name))));
        if (typeof p.port === 'number') out.push(...invalidEach(child(pp, 'port'), p.port, isValidPortNum(p.port)));
      }
    }
    return out;
  },
  columns: [column('Endpoints', formatEndpoints, { description: 'Endpoints of the service.' }), ageColumn],
});

// ---- ConfigMap and Secret -------------------------------------------------------------

const MAX_DATA_SIZE = 1024 * 1024;

function validateDataKeys(data: unknown, path: string): { causes: Cause[]; size: number } {
  const causes: Cause[] = [];
  let size = 0;
  for (const [k, v] of Object.entries(rec(data) ?? {})) {
    causes.push(...invalidEach(index(path, k), k, isConfigMapKey(k)));
    size += typeof v === 'string' ? v.length : 0;
  }
  return { causes, size };
}

/** With `immutable: true` the data fields and the flag itself cannot change. */
function validateImmutableData(obj: Obj, old: Obj | undefined, fields: string[]): Cause[] {
  if (!old || old.immutable !== true) return [];
  const out: Cause[] = [];
  if (obj.immutable !== true) out.push(forbidden('immutable', 'field is immutable when `immutable` is set'));
  for (const f of fields) {
    if (!deepEqual(obj[f], old[f])) out.push(forbidden(f, 'field is immutable when `immutable` is set'));
  }
  return out;
}

const tooBig = (field: string): Cause => ({ reason: 'FieldValueTooLong', field, message: `Too long: must have at most ${MAX_DATA_SIZE} bytes` });
const countKeys = (...maps: unknown[]) => maps.reduce<number>((n, m) => n + Object.keys(rec(m) ?? {}).length, 0);

export const configMap = defineKind({
  ...core, kind: 'ConfigMap', plural: 'configmaps', shortNames: ['cm'],
  description: 'ConfigMap holds configuration data for pods to consume.',
  fields: {
    data: strMap('Data contains the configuration data.'),
    binaryData: map(bytes(), { description: 'BinaryData contains the binary data.' }),
    immutable: bool({ description: 'Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated (only object metadata can be modified).' }),
  },
  validate(cm, old) {
    const data = validateDataKeys(cm.data, 'data');
    const bin = validateDataKeys(cm.binaryData, 'binaryData');
    const out = [...data.causes, ...bin.causes];
    for (const k of Object.keys(rec(cm.binaryData) ?? {})) {
      if (rec(cm.data)?.[k] !== undefined) out.push(invalid(index('binaryData', k), k, 'duplicate of key present in data'));
    }
    if (data.size + bin.size > MAX_DATA_SIZE) out.push(tooBig(''));
    out.push(...validateImmutableData(cm, old, ['data', 'binaryData']));
    return out;
  },
  columns: [column('Data', (cm) => countKeys(cm.data, cm.binaryData), { type: 'integer', description: 'Number of data entries.' }), ageColumn],
});

/** Keys each well-known Secret type requires. */
const SECRET_TYPE_KEYS: Record<string, string[][]> = {
  'kubernetes.io/dockercfg': [['.dockercfg']],
  'kubernetes.io/dockerconfigjson': [['.dockerconfigjson']],
  'kubernetes.io/basic-auth': [['username', 'password']],
  'kubernetes.io/ssh-auth': [['ssh-privatekey']],
  'kubernetes.io/tls': [['tls.crt'], ['tls.key']],
};

export const secret = defineKind({
  ...core, kind: 'Secret', plural: 'secrets',
  description: 'Secret holds secret data of a certain type. The total bytes of the values in the Data field must be less than MaxSecretSize bytes.',
  fields: {
    data: map(bytes(), { description: 'Data contains the secret data. Each key must consist of alphanumeric characters, \'-\', \'_\' or \'.\'. The serialized form of the secret data is a base64 encoded string.' }),
    stringData: strMap('stringData allows specifying non-binary secret data in string form. It is provided as a write-only input field for convenience.'),
    type: str({ description: 'Used to facilitate programmatic handling of secret data.' }),
    immutable: bool(),
  },
  default(s) {
    dflt(s, 'type', 'Opaque');
    const sd = rec(s.stringData);
    if (sd) {
      const data = ensure(s, 'data');
      for (const [k, v] of Object.entries(sd)) if (typeof v === 'string') data[k] = Buffer.from(v, 'utf8').toString('base64');
      delete s.stringData;
    }
  },
  validate(s, old) {
    const { causes: out, size } = validateDataKeys(s.data, 'data'); // base64 values: the schema (format byte)
    if (size * 0.75 > MAX_DATA_SIZE) out.push(tooBig('data'));
    const data = rec(s.data) ?? {};
    for (const anyOf of SECRET_TYPE_KEYS[s.type] ?? []) {
      if (!anyOf.some((k) => data[k] !== undefined)) out.push(required(index('data', anyOf[0])));
    }
    if (s.type === 'kubernetes.io/service-account-token' && !s.metadata?.annotations?.['kubernetes.io/service-account.name']) {
      out.push(required('metadata.annotations[kubernetes.io/service-account.name]'));
    }
    if (old && s.type !== old.type) out.push(immutable('type', s.type ?? ''));
    out.push(...validateImmutableData(s, old, ['data']));
    return out;
  },
  columns: [
    column('Type', (s) => s.type ?? '', { description: 'The type of the secret' }),
    column('Data', (s) => countKeys(s.data), { type: 'integer', description: 'Number of data entries.' }),
    ageColumn,
  ],
});

// ---- Node -----------------------------------------------------------------------------

const Taint = obj({
  key: str(), value: str(), effect: oneOf('NoExecute', 'NoSchedule', 'PreferNoSchedule'), timeAdded: time(),
}, { name: C('Taint'), required: ['key', 'effect'] });

function nodeStatus(node: Obj): string {
  const ready = list(node.status?.conditions).find((c) => c.type === 'Ready');
  const parts = [ready ? (ready.status === 'True' ? 'Ready' : 'NotReady') : 'Unknown'];
  if (node.spec?.unschedulable === true) parts.push('SchedulingDisabled');
  return parts.join(',');
}

function nodeRoles(node: Obj): string {
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(rec(node.metadata?.labels) ?? {})) {
    if (k.startsWith('node-role.kubernetes.io/') && k.length > 'node-role.kubernetes.io/'.length) roles.add(k.slice('node-role.kubernetes.io/'.length));
    else if (k === 'kubernetes.io/role' && v) roles.add(String(v));
  }
  return [...roles].sort().join(',') || '<none>';
}

const nodeAddress = (node: Obj, type: string) => none(list(node.status?.addresses).find((a) => a.type === type)?.address);
const unknown = (v: unknown) => (v ? String(v) : '<unknown>');

const isCIDR = (v: string) => {
  const [ip, bits, ...rest] = v.split('/');
  const max = ip.includes(':') ? 128 : 32;
  return !rest.length && isValidIP(ip) && /^[0-9]+$/.test(bits ?? '') && Number(bits) <= max;
};

export const node = defineKind({
  ...core, kind: 'Node', plural: 'nodes', shortNames: ['no'], namespaced: false, subresources: ['status'],
  description: 'Node is a worker node in Kubernetes.',
  fields: {
    spec: obj({
      podCIDR: str(),
      podCIDRs: arr(str(), { listType: 'set', patchStrategy: 'merge' }),
      providerID: str(),
      unschedulable: bool({ description: 'Unschedulable controls node schedulability of new pods.' }),
      taints: atomic(Taint, 'If specified, the node\'s taints.'),
      configSource: any(),
      externalID: str(),
    }, { name: C('NodeSpec') }),
    status: obj({
      capacity: ResourceList,
      allocatable: ResourceList,
      phase: str(),
      conditions: conditions(conditionOf(C('NodeCondition'), ['lastHeartbeatTime', 'lastTransitionTime'])),
      addresses: listMap(obj({ type: str(), address: str() }, { name: C('NodeAddress'), required: ['type', 'address'] }), ['type'],
        { tolerateDuplicates: true }),
      daemonEndpoints: obj({ kubeletEndpoint: obj({ Port: int() }, { name: C('DaemonEndpoint'), required: ['Port'] }) },
        { name: C('NodeDaemonEndpoints') }),
      nodeInfo: obj({
        machineID: str(), systemUUID: str(), bootID: str(), kernelVersion: str(), osImage: str(), containerRuntimeVersion: str(),
        kubeletVersion: str(), kubeProxyVersion: str(), operatingSystem: str(), architecture: str(), swap: any(),
      }, { name: C('NodeSystemInfo') }),
      images: atomic(obj({ names: strings(), sizeBytes: int64() }, { name: C('ContainerImage') })),
      volumesInUse: strings(),
      volumesAttached: atomic(obj({ name: str(), devicePath: str() }, { name: C('AttachedVolume'), required: ['name', 'devicePath'] })),
      config: any(),
      runtimeHandlers: atomic(any()),
      features: any(),
    }, { name: C('NodeStatus') }),
  },
  validate(n, old) {
    const out: Cause[] = [];
    const seen = new Set<string>();
    for (const [t, i] of entries(n.spec?.taints)) {
      const p = index('spec.taints', i);
      if (t.key) out.push(...invalidEach(child(p, 'key'), t.key, isQualifiedName(String(t.key))));
      const id = `${t.key}:${t.effect}`;
      if (seen.has(id)) out.push(duplicate(p, t));
      seen.add(id);
    }
    const cidrs = [n.spec?.podCIDR, ...list(n.spec?.podCIDRs)].filter((c) => typeof c === 'string' && c);
    for (const c of new Set(cidrs)) if (!isCIDR(c as unknown as string)) out.push(invalid('spec.podCIDRs', c, 'must be a valid CIDR'));
    if (old) {
      // Once allocated, a node's pod CIDRs are fixed (pods hold addresses from them).
      const oldCIDRs = list(old.spec?.podCIDRs) as unknown as string[];
      const newCIDRs = list(n.spec?.podCIDRs) as unknown as string[];
      if ((old.spec?.podCIDR && n.spec?.podCIDR !== old.spec.podCIDR)
        || (oldCIDRs.length && (oldCIDRs.length !== newCIDRs.length || oldCIDRs.some((c, i) => c !== newCIDRs[i])))) {
        out.push(forbidden('spec.podCIDRs', 'node updates may not change podCIDR except from "" to valid'));
      }
      if (old.spec?.providerID && n.spec?.providerID !== old.spec.providerID) {
        out.push(forbidden('spec.providerID', 'node updates may not change providerID except from "" to valid'));
      }
    }
    return out;
  },
  columns: [
    column('Status', nodeStatus, { description: 'The status of the node' }),
    column('Roles', nodeRoles, { description: 'The roles of the node' }),
    ageColumn,
    column('Version', (n) => n.status?.nodeInfo?.kubeletVersion ?? '', { description: 'Kubelet Version reported by the node.' }),
    column('Internal-IP', (n) => nodeAddress(n, 'InternalIP'), { wide: true, description: 'List of addresses reachable to the node.' }),
    column('External-IP', (n) => nodeAddress(n, 'ExternalIP'), { wide: true, description: 'List of addresses reachable to the node.' }),
    column('OS-Image', (n) => unknown(n.status?.nodeInfo?.osImage), { wide: true, description: 'OS Image reported by the node.' }),
    column('Kernel-Version', (n) => unknown(n.status?.nodeInfo?.kernelVersion), { wide: true, description: 'Kernel Version reported by the node.' }),
    column('Container-Runtime', (n) => unknown(n.status?.nodeInfo?.containerRuntimeVersion), { wide: true, description: 'Container Runtime Version reported by the node.' }),
  ],
});

// ---- ServiceAccount ------------------------------------------------------------------

export const serviceAccount = defineKind({
  ...core, kind: 'ServiceAccount', plural: 'serviceaccounts', shortNames: ['sa'],
  // TokenRequest (apiserver/auth/token-request.ts).
  subresources: ['token'],
  description: 'ServiceAccount binds together: a name, understood by users, and perhaps by peripheral systems, for an identity; a principal that can be authenticated and authorized; a set of secrets.',
  fields: {
    secrets: arr(ObjectReference, { mergeKey: 'name', patchStrategy: 'merge' }),
    imagePullSecrets: atomic(LocalObjectReference),
    automountServiceAccountToken: bool(),
  },
  columns: [column('Secrets', (s) => list(s.secrets).length, { type: 'integer', description: 'Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.' }), ageColumn],
});

// ---- Event --------------------------------------------------------------------------

function eventTimes(e: Obj, now: number) {
  let first = since(e.firstTimestamp, now);
  if (!e.firstTimestamp) first = since(e.eventTime, now);
  let last = e.lastTimestamp ? since(e.lastTimestamp, now) : first;
  let count = Number(e.count ?? 0);
  if (rec(e.series)) {
    last = since(e.series.lastObservedTime, now);
    count = Number(e.series.count ?? 0);
  } else if (count === 0) count = 1;
  return { first, last, count };
}

const eventObject = (e: Obj) => {
  const io = rec(e.involvedObject) ?? {};
  const kind = String(io.kind ?? '').toLowerCase();
  return io.name ? `${kind}/${io.name}` : kind;
};

const eventSource = (e: Obj) => {
  const component = e.source?.component || e.reportingComponent || '';
  const instance = e.source?.host || e.reportingInstance || '';
  return instance ? `${component}, ${instance}` : component;
};

export const event = defineKind({
  ...core, kind: 'Event', plural: 'events', shortNames: ['ev'],
  description: 'Event is a report of an event somewhere in the cluster.',
  fields: {
    involvedObject: ObjectReference,
    reason: str(),
    message: str(),
    source: obj({ component: str(), host: str() }, { name: C('EventSource') }),
    firstTimestamp: time(),
    lastTimestamp: time(),
    count: int(),
    type: str(),
    eventTime: microTime(),
    series: obj({ count: int(), lastObservedTime: microTime() }, { name: C('EventSeries') }),
    action: str(),
    related: ObjectReference,
    reportingComponent: str(),
    reportingInstance: str(),
  },
  validate(e) {
    const ns = e.metadata?.namespace ?? '';
    const ins = e.involvedObject?.namespace ?? '';
    if ((ins === '' && ns !== '' && ns !== 'default') || (ins !== '' && ins !== ns)) {
      return [invalid('involvedObject.namespace', ins, 'does not match event.namespace')];
    }
    return [];
  },
  columns: [
    column('Last Seen', (e, now) => eventTimes(e, now).last, { description: 'The time at which the most recent occurrence of this event was recorded.' }),
    column('Type', (e) => e.type ?? '', { description: 'Type of this event (Normal, Warning), new types could be added in the future' }),
    column('Reason', (e) => e.reason ?? '', { description: 'This should be a short, machine understandable string that gives the reason for the transition into the object\'s current status.' }),
    column('Object', eventObject, { description: 'The object that this event is about.' }),
    column('Subobject', (e) => e.involvedObject?.fieldPath ?? '', { wide: true, description: 'If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.' }),
    column('Source', eventSource, { wide: true, description: 'The component reporting this event.' }),
    column('Message', (e) => String(e.message ?? '').trim(), { description: 'A human-readable description of the status of this operation.' }),
    column('First Seen', (e, now) => eventTimes(e, now).first, { wide: true, description: 'The time at which the event was first recorded.' }),
    column('Count', (e, now) => eventTimes(e, now).count, { wide: true, type: 'integer', description: 'The number of times this event has occurred.' }),
    column('Name', (e) => e.metadata?.name ?? '', { wide: true, format: 'name', description: 'Name must be unique within a namespace.' }),
  ],
});

// ---- PersistentVolume and PersistentVolumeClaim -------------------------------------------

const ACCESS_MODES = ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'];
const ACCESS_MODE_SHORT: Record<string, string> = { ReadWriteOnce: 'RWO', ReadOnlyMany: 'ROX', ReadWriteMany: 'RWX', ReadWriteOncePod: 'RWOP' };

/** GetAccessModesAsString: "RWO,ROX,RWX,RWOP" in that order. */
const accessModes = (modes: unknown) => {
  const set = new Set(list(modes) as unknown as string[]);
  return ACCESS_MODES.filter((m) => set.has(m)).map((m) => ACCESS_MODE_SHORT[m]).join(',');
};

function validateAccessModes(modes: unknown, path: string, requiredDetail = ''): Cause[] {
  const out: Cause[] = [];
  const ms = list(modes) as unknown as string[];
  if (!ms.length) out.push(required(path, requiredDetail));
  for (const m of ms) if (!ACCESS_MODES.includes(m)) out.push(notSupported(path, m, ACCESS_MODES));
  if (ms.includes('ReadWriteOncePod') && ms.length > 1) out.push(forbidden(path, 'may not use ReadWriteOncePod with other access modes'));
  return out;
}

const storageClass = (o: Obj) => o.metadata?.annotations?.['volume.beta.kubernetes.io/storage-class'] ?? o.spec?.storageClassName ?? '';
const unset = (v: unknown) => (v === undefined || v === null ? '<unset>' : String(v));
const phaseOrTerminating = (o: Obj) => (o.metadata?.deletionTimestamp ? 'Terminating' : o.status?.phase ?? '');
const storageClassColumn = column('StorageClass', storageClass, { description: 'StorageClass of the volume' });
const vacColumn = column('VolumeAttributesClass', (o) => unset(o.spec?.volumeAttributesClassName), { description: 'VolumeAttributesClass of the volume' });
const volumeModeColumn = column('VolumeMode', (o) => unset(o.spec?.volumeMode), { wide: true, description: 'Whether the volume is used with a filesystem or as a raw block device.' });
const accessModesColumn = (path: string, when: (o: Obj) => boolean = () => true) =>
  column('Access Modes', (o) => (when(o) ? accessModes(path.split('.').reduce<unknown>((v, k) => rec(v)?.[k], o)) : ''), { description: 'Access modes of the volume' });

const SecretReference = obj({ name: str(), namespace: str() }, { name: C('SecretReference'), mapType: 'atomic' });

const pvSources = {
  hostPath: HostPathVolumeSource,
  local: obj({ path: str(), fsType: str() }, { name: C('LocalVolumeSource'), required: ['path'] }),
  nfs: NFSVolumeSource,
  csi: obj({
    driver: str(), volumeHandle: str(), readOnly: bool(), fsType: str(), volumeAttributes: strMap(),
    controllerPublishSecretRef: SecretReference, nodeStageSecretRef: SecretReference, nodePublishSecretRef: SecretReference,
    controllerExpandSecretRef: SecretReference, nodeExpandSecretRef: SecretReference,
  }, { name: C('CSIPersistentVolumeSource'), required: ['driver', 'volumeHandle'] }),
  ...Object.fromEntries([
    'awsElasticBlockStore', 'azureDisk', 'azureFile', 'cephfs', 'cinder', 'fc', 'flexVolume', 'flocker', 'gcePersistentDisk',
    'glusterfs', 'iscsi', 'photonPersistentDisk', 'portworxVolume', 'quobyte', 'rbd', 'scaleIO', 'storageos', 'vsphereVolume',
  ].map((k) => [k, any()])),
};
const PV_SOURCES = Object.keys(pvSources);

export const persistentVolume = defineKind({
  ...core, kind: 'PersistentVolume', plural: 'persistentvolumes', shortNames: ['pv'], namespaced: false, subresources: ['status'],
  description: 'PersistentVolume (PV) is a storage resource provisioned by an administrator.',
  fields: {
    spec: obj({
      capacity: ResourceList,
      accessModes: strings('accessModes contains all ways the volume can be mounted.'),
      claimRef: ObjectReference,
      persistentVolumeReclaimPolicy: oneOf('Delete', 'Recycle', 'Retain'),
      storageClassName: str(),
      mountOptions: strings(),
      volumeMode: oneOf('Block', 'Filesystem'),
      nodeAffinity: obj({ required: NodeSelector }, { name: C('VolumeNodeAffinity') }),
      volumeAttributesClassName: str(),
      ...pvSources,
    }, { name: C('PersistentVolumeSpec') }),
    status: obj({
      phase: oneOf('Available', 'Bound', 'Failed', 'Pending', 'Released'),
      message: str(), reason: str(), lastPhaseTransitionTime: time(),
    }, { name: C('PersistentVolumeStatus') }),
  },
  default(pv) {
    const spec = ensure(pv, 'spec');
    defaults(spec, { persistentVolumeReclaimPolicy: 'Retain', volumeMode: 'Filesystem' });
    dflt(rec(spec.hostPath), 'type', '');
    dflt(ensure(pv, 'status'), 'phase', 'Pending');
  },
  validate(pv, old) {
    const spec = rec(pv.spec) ?? {};
    const out = validateAccessModes(spec.accessModes, 'spec.accessModes');
    const cap = rec(spec.capacity) ?? {};
    if (!Object.keys(cap).length) out.push(required('spec.capacity'));
    else if (cap.storage === undefined || Object.keys(cap).length > 1) out.push(notSupported('spec.capacity', Object.keys(cap).join(','), ['storage']));
    else if (!(quantityValue(cap.storage) > 0)) out.push(invalid('spec.capacity[storage]', String(cap.storage), 'must be greater than zero'));
    const sources = PV_SOURCES.filter((k) => spec[k] !== undefined && spec[k] !== null);
    if (!sources.length) out.push(required('spec', 'must specify a volume type'));
    for (const k of sources.slice(1)) out.push(forbidden(child('spec', k), 'may not specify more than 1 volume type'));
    if (rec(spec.local) && !rec(spec.nodeAffinity)) out.push(required('spec.nodeAffinity', 'Local volume requires node affinity'));
    if (spec.storageClassName) out.push(...invalidEach('spec.storageClassName', spec.storageClassName, isDNS1123Subdomain(String(spec.storageClassName))));
    if (old) {
      const oldSpec = rec(old.spec) ?? {};
      if (!PV_SOURCES.every((k) => deepEqual(spec[k], oldSpec[k]))) {
        out.push(forbidden('spec.persistentvolumesource', 'spec.persistentvolumesource is immutable after creation'));
      }
      out.push(...immutableFields(pv, old, ['spec.volumeMode']));
      if (rec(oldSpec.nodeAffinity)) out.push(...immutableFields(pv, old, ['spec.nodeAffinity']));
    }
    return out;
  },
  columns: [
    column('Capacity', (pv) => String(pv.spec?.capacity?.storage ?? ''), { description: 'capacity is the description of the persistent volume\'s resources and capacity.' }),
    accessModesColumn('spec.accessModes'),
    column('Reclaim Policy', (pv) => pv.spec?.persistentVolumeReclaimPolicy ?? '', { description: 'What happens to a persistent volume when released from its claim.' }),
    column('Status', phaseOrTerminating, { description: 'Phase indicates if a volume is available, bound to a claim, or released by a claim.' }),
    column('Claim', (pv) => (rec(pv.spec?.claimRef) ? `${pv.spec.claimRef.namespace ?? ''}/${pv.spec.claimRef.name ?? ''}` : ''), { description: 'ClaimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.' }),
    storageClassColumn,
    vacColumn,
    column('Reason', (pv) => pv.status?.reason ?? '', { description: 'Reason is a brief CamelCase string that describes any failure.' }),
    ageColumn,
    volumeModeColumn,
  ],
});

/** Defaults of a claim (also used for StatefulSet volumeClaimTemplates). */
export function defaultPVC(pvc: Obj): void {
  dflt(ensure(pvc, 'spec'), 'volumeMode', 'Filesystem');
  dflt(ensure(pvc, 'status'), 'phase', 'Pending');
}

/** ValidatePersistentVolumeClaimSpec. */
export function validatePVCSpec(specValue: unknown, path: string): Cause[] {
  const spec = rec(specValue) ?? {};
  const out = validateAccessModes(spec.accessModes, child(path, 'accessModes'), 'at least 1 access mode is required');
  out.push(...validateLabelSelector(spec.selector, child(path, 'selector')));
  const storage = spec.resources?.requests?.storage;
  if (storage === undefined || storage === null) out.push(required(index(child(path, 'resources'), 'storage')));
  else if (!(quantityValue(storage) > 0)) out.push(invalid(index(child(path, 'resources'), 'storage'), String(storage), 'must be greater than zero'));
  if (spec.storageClassName) out.push(...invalidEach(child(path, 'storageClassName'), spec.storageClassName, isDNS1123Subdomain(String(spec.storageClassName))));
  return out;
}

function validatePVCUpdate(pvc: Obj, old: Obj): Cause[] {
  const spec = rec(pvc.spec) ?? {};
  const oldSpec = rec(old.spec) ?? {};
  const out: Cause[] = [];
  const munged = structuredClone(oldSpec);
  const bound = old.status?.phase === 'Bound';
  if (bound) {
    munged.resources = { ...(rec(munged.resources) ?? {}), requests: spec.resources?.requests };
    munged.volumeAttributesClassName = spec.volumeAttributesClassName;
    const before = quantityValue(oldSpec.resources?.requests?.storage);
    if (quantityValue(spec.resources?.requests?.storage) < before) {
      out.push(forbidden('spec.resources.requests.storage', 'field can not be less than previous value'));
    }
  }
  if (!oldSpec.volumeName) munged.volumeName = spec.volumeName;
  if (!deepEqual(munged, spec)) {
    out.push(forbidden('spec', 'spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims'));
  }
  return out;
}

export const PVC_STATUS = obj({
  accessModes: strings(),
  capacity: ResourceList,
  phase: oneOf('Bound', 'Lost', 'Pending'),
  conditions: conditions(conditionOf(C('PersistentVolumeClaimCondition'), ['lastProbeTime', 'lastTransitionTime'])),
  allocatedResources: ResourceList,
  allocatedResourceStatuses: strMap(),
  currentVolumeAttributesClassName: str(),
  modifyVolumeStatus: obj({ targetVolumeAttributesClassName: str(), status: str() }, { name: C('ModifyVolumeStatus'), required: ['status'] }),
}, { name: C('PersistentVolumeClaimStatus') });

export const persistentVolumeClaim = defineKind({
  ...core, kind: 'PersistentVolumeClaim', plural: 'persistentvolumeclaims', shortNames: ['pvc'], subresources: ['status'],
  description: 'PersistentVolumeClaim is a user\'s request for and claim to a persistent volume',
  fields: { spec: PersistentVolumeClaimSpec, status: PVC_STATUS },
  default: defaultPVC,
  validate: (pvc, old) => [...validatePVCSpec(pvc.spec, 'spec'), ...(old ? validatePVCUpdate(pvc, old) : [])],
  columns: [
    column('Status', phaseOrTerminating, { description: 'Phase represents the current phase of PersistentVolumeClaim.' }),
    column('Volume', (c) => c.spec?.volumeName ?? '', { description: 'VolumeName is the binding reference to the PersistentVolume backing this claim.' }),
    column('Capacity', (c) => (c.spec?.volumeName ? String(c.status?.capacity?.storage ?? '') : ''), { description: 'Capacity represents the actual resources of the underlying volume.' }),
    accessModesColumn('status.accessModes', (c) => !!c.spec?.volumeName),
    storageClassColumn,
    vacColumn,
    ageColumn,
    volumeModeColumn,
  ],
});

export const CORE_KINDS: KindDef[] = [
  namespace, pod, service, endpoints, configMap, secret, node, serviceAccount, event, persistentVolume, persistentVolumeClaim,
];
