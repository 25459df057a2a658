// core/v1 PodSpec and everything around it: the schemas (containers, volumes,
// probes, affinity...), Kubernetes' defaults, ValidatePodSpec-like rules, the
// pod update rules, QoS class and kubectl's pod STATUS column.

import {
  CORE, any, atomic, bool, int, int64, intOrString, listMap, map, obj, oneOf, quantity, str, strMap, strings, time,
} from '../schema/dsl.ts';
import { LabelSelector, LocalObjectReference, ObjectMeta, TypedLocalObjectReference, conditionOf, conditions } from '../schema/meta.ts';
import type { Cause, Schema } from '../schema/types.ts';
import {
  child, duplicate, forbidden, index, invalid, invalidEach, isConfigMapKey, isDNS1123Label, isDNS1123Subdomain,
  isEnvVarName, isQualifiedName, isValidPortName, isValidPortNum, notFound, required, inclusiveRangeError,
} from '../schema/validate.ts';
import {
  type Obj, deepEqual, defaults, dflt, ensure, entries, get, isObj, list, nonNegative, oneOfValues, quantityValue, rec, requirementValues,
  selectorEmpty, selectorMatches, since, validateLabelSelector, validateLabels, validateAnnotations,
} from './common.ts';

const C = CORE;

// ---- schemas -------------------------------------------------------------------

const keySelector = (name: string) =>
  obj({ key: str(), name: str(), optional: bool() }, { name: C(name), required: ['key'], mapType: 'atomic' });
const optionalRef = (name: string) => obj({ name: str(), optional: bool() }, { name: C(name) });

export const ObjectFieldSelector = obj({ apiVersion: str(), fieldPath: str() },
  { name: C('ObjectFieldSelector'), required: ['fieldPath'], mapType: 'atomic' });
export const ResourceFieldSelector = obj({ containerName: str(), resource: str(), divisor: quantity() },
  { name: C('ResourceFieldSelector'), required: ['resource'], mapType: 'atomic' });

const EnvVar = obj({
  name: str({ description: 'Name of the environment variable.' }),
  value: str(),
  valueFrom: obj({
    configMapKeyRef: keySelector('ConfigMapKeySelector'),
    secretKeyRef: keySelector('SecretKeySelector'),
    fieldRef: ObjectFieldSelector,
    resourceFieldRef: ResourceFieldSelector,
  }, { name: C('EnvVarSource') }),
}, { name: C('EnvVar'), required: ['name'] });

const EnvFromSource = obj({
  prefix: str(),
  configMapRef: optionalRef('ConfigMapEnvSource'),
  secretRef: optionalRef('SecretEnvSource'),
}, { name: C('EnvFromSource') });

export const Protocol = str({ enum: ['SCTP', 'TCP', 'UDP'], default: 'TCP' });

const ContainerPort = obj({
  name: str(),
  hostPort: int(),
  containerPort: int({ description: 'Number of port to expose on the pod\'s IP address. This must be a valid port number, 0 < x < 65536.' }),
  protocol: Protocol,
  hostIP: str(),
}, { name: C('ContainerPort'), required: ['containerPort'] });

export const ResourceList = map(quantity());

export const ResourceRequirements = obj({
  limits: ResourceList,
  requests: ResourceList,
  claims: listMap(obj({ name: str(), request: str() }, { name: C('ResourceClaim'), required: ['name'] }), ['name'], { patchStrategy: null }),
}, { name: C('ResourceRequirements') });

const HTTPGetAction = obj({
  path: str(),
  port: intOrString(),
  host: str(),
  scheme: oneOf('HTTP', 'HTTPS'),
  httpHeaders: atomic(obj({ name: str(), value: str() }, { name: C('HTTPHeader'), required: ['name'] })),
}, { name: C('HTTPGetAction'), required: ['port'] });

const TCPSocketAction = obj({ port: intOrString(), host: str() }, { name: C('TCPSocketAction'), required: ['port'] });
const ExecAction = obj({ command: strings() }, { name: C('ExecAction') });
const handlers = { exec: ExecAction, httpGet: HTTPGetAction, tcpSocket: TCPSocketAction };

const Probe = obj({
  ...handlers,
  grpc: obj({ port: int(), service: str() }, { name: C('GRPCAction'), required: ['port'] }),
  initialDelaySeconds: int(),
  timeoutSeconds: int(),
  periodSeconds: int(),
  successThreshold: int(),
  failureThreshold: int(),
  terminationGracePeriodSeconds: int64(),
}, { name: C('Probe') });

const LifecycleHandler = obj({
  ...handlers,
  sleep: obj({ seconds: int64() }, { name: C('SleepAction'), required: ['seconds'] }),
}, { name: C('LifecycleHandler') });

const profile = (name: string) => obj({ type: str(), localhostProfile: str() }, { name: C(name), required: ['type'] });

/** Fields common to the pod and container security contexts. */
const securityFields = {
  seLinuxOptions: obj({ user: str(), role: str(), type: str(), level: str() }, { name: C('SELinuxOptions') }),
  windowsOptions: obj({ gmsaCredentialSpecName: str(), gmsaCredentialSpec: str(), runAsUserName: str(), hostProcess: bool() },
    { name: C('WindowsSecurityContextOptions') }),
  runAsUser: int64(),
  runAsGroup: int64(),
  runAsNonRoot: bool(),
  seccompProfile: profile('SeccompProfile'),
  appArmorProfile: profile('AppArmorProfile'),
};

const SecurityContext = obj({
  ...securityFields,
  capabilities: obj({ add: strings(), drop: strings() }, { name: C('Capabilities') }),
  privileged: bool(),
  readOnlyRootFilesystem: bool(),
  allowPrivilegeEscalation: bool(),
  procMount: str(),
}, { name: C('SecurityContext') });

const PodSecurityContext = obj({
  ...securityFields,
  supplementalGroups: atomic(int64()),
  supplementalGroupsPolicy: str(),
  fsGroup: int64(),
  fsGroupChangePolicy: str(),
  sysctls: atomic(obj({ name: str(), value: str() }, { name: C('Sysctl'), required: ['name', 'value'] })),
  seLinuxChangePolicy: str(),
}, { name: C('PodSecurityContext') });

const VolumeMount = obj({
  name: str(),
  readOnly: bool(),
  recursiveReadOnly: str(),
  mountPath: str(),
  subPath: str(),
  mountPropagation: str(),
  subPathExpr: str(),
}, { name: C('VolumeMount'), required: ['name', 'mountPath'] });

/** Fields of Container, shared with EphemeralContainer. */
const containerFields = {
  name: str({ description: 'Name of the container specified as a DNS_LABEL. Each container in a pod must have a unique name.' }),
  image: str({ description: 'Container image name.' }),
  command: strings('Entrypoint array. Not executed within a shell.'),
  args: strings('Arguments to the entrypoint.'),
  workingDir: str(),
  ports: listMap(ContainerPort, ['containerPort', 'protocol'], { tolerateDuplicates: true, description: 'List of ports to expose from the container.' }),
  envFrom: atomic(EnvFromSource),
  env: listMap(EnvVar, ['name'], { tolerateDuplicates: true, description: 'List of environment variables to set in the container.' }),
  resources: ResourceRequirements,
  resizePolicy: atomic(obj({ resourceName: str(), restartPolicy: str() }, { name: C('ContainerResizePolicy'), required: ['resourceName', 'restartPolicy'] })),
  restartPolicy: str(),
  volumeMounts: listMap(VolumeMount, ['mountPath']),
  volumeDevices: listMap(obj({ name: str(), devicePath: str() }, { name: C('VolumeDevice'), required: ['name', 'devicePath'] }), ['devicePath']),
  livenessProbe: Probe,
  readinessProbe: Probe,
  startupProbe: Probe,
  lifecycle: obj({ postStart: LifecycleHandler, preStop: LifecycleHandler }, { name: C('Lifecycle') }),
  terminationMessagePath: str(),
  terminationMessagePolicy: oneOf('FallbackToLogsOnError', 'File'),
  imagePullPolicy: oneOf('Always', 'IfNotPresent', 'Never'),
  securityContext: SecurityContext,
  stdin: bool(),
  stdinOnce: bool(),
  tty: bool(),
};

export const Container = obj(containerFields, { name: C('Container'), required: ['name'],
  description: 'A single application container that you want to run within a pod.' });
const EphemeralContainer = obj({ ...containerFields, targetContainerName: str() }, { name: C('EphemeralContainer'), required: ['name'] });

const KeyToPath = obj({ key: str(), path: str(), mode: int() }, { name: C('KeyToPath'), required: ['key', 'path'] });
const projection = (name: string, nameField: string) =>
  obj({ [nameField]: str(), items: atomic(KeyToPath), optional: bool() }, { name: C(name) });
const DownwardAPIVolumeFile = obj({ path: str(), fieldRef: ObjectFieldSelector, resourceFieldRef: ResourceFieldSelector, mode: int() },
  { name: C('DownwardAPIVolumeFile'), required: ['path'] });
const downwardAPIItems = atomic(DownwardAPIVolumeFile);

export const PersistentVolumeClaimSpec = obj({
  accessModes: strings('accessModes contains the desired access modes the volume should have.'),
  selector: LabelSelector,
  resources: obj({ limits: ResourceList, requests: ResourceList }, { name: C('VolumeResourceRequirements') }),
  volumeName: str(),
  storageClassName: str(),
  volumeMode: oneOf('Block', 'Filesystem'),
  dataSource: TypedLocalObjectReference,
  dataSourceRef: obj({ apiGroup: str(), kind: str(), name: str(), namespace: str() }, { name: C('TypedObjectReference'), required: ['kind', 'name'] }),
  volumeAttributesClassName: str(),
}, { name: C('PersistentVolumeClaimSpec') });

/** Deprecated in-tree volume plugins: accepted as free-form objects. */
const legacyVolumeSources = Object.fromEntries([
  'awsElasticBlockStore', 'azureDisk', 'azureFile', 'cephfs', 'cinder', 'fc', 'flexVolume', 'flocker', 'gcePersistentDisk',
  'gitRepo', 'glusterfs', 'iscsi', 'photonPersistentDisk', 'portworxVolume', 'quobyte', 'rbd', 'scaleIO', 'storageos', 'vsphereVolume',
].map((k) => [k, any()]));

export const HostPathVolumeSource = obj({
  path: str(),
  type: oneOf('', 'BlockDevice', 'CharDevice', 'Directory', 'DirectoryOrCreate', 'File', 'FileOrCreate', 'Socket'),
}, { name: C('HostPathVolumeSource'), required: ['path'] });

export const NFSVolumeSource = obj({ server: str(), path: str(), readOnly: bool() }, { name: C('NFSVolumeSource'), required: ['server', 'path'] });

const volumeSources: Record<string, Schema> = {
  emptyDir: obj({ medium: str(), sizeLimit: quantity() }, { name: C('EmptyDirVolumeSource') }),
  hostPath: HostPathVolumeSource,
  configMap: obj({ name: str(), items: atomic(KeyToPath), defaultMode: int(), optional: bool() }, { name: C('ConfigMapVolumeSource') }),
  secret: obj({ secretName: str(), items: atomic(KeyToPath), defaultMode: int(), optional: bool() }, { name: C('SecretVolumeSource') }),
  persistentVolumeClaim: obj({ claimName: str(), readOnly: bool() }, { name: C('PersistentVolumeClaimVolumeSource'), required: ['claimName'] }),
  downwardAPI: obj({ items: downwardAPIItems, defaultMode: int() }, { name: C('DownwardAPIVolumeSource') }),
  projected: obj({
    sources: atomic(obj({
      configMap: projection('ConfigMapProjection', 'name'),
      secret: projection('SecretProjection', 'name'),
      downwardAPI: obj({ items: downwardAPIItems }, { name: C('DownwardAPIProjection') }),
      serviceAccountToken: obj({ audience: str(), expirationSeconds: int64(), path: str() }, { name: C('ServiceAccountTokenProjection'), required: ['path'] }),
      clusterTrustBundle: any(),
    }, { name: C('VolumeProjection') })),
    defaultMode: int(),
  }, { name: C('ProjectedVolumeSource') }),
  nfs: NFSVolumeSource,
  csi: obj({ driver: str(), readOnly: bool(), fsType: str(), volumeAttributes: strMap(), nodePublishSecretRef: LocalObjectReference },
    { name: C('CSIVolumeSource'), required: ['driver'] }),
  ephemeral: obj({
    volumeClaimTemplate: obj({ metadata: ObjectMeta, spec: PersistentVolumeClaimSpec }, { name: C('PersistentVolumeClaimTemplate'), required: ['spec'] }),
  }, { name: C('EphemeralVolumeSource') }),
  image: obj({ reference: str(), pullPolicy: oneOf('Always', 'IfNotPresent', 'Never') }, { name: C('ImageVolumeSource') }),
  ...legacyVolumeSources,
};

/** The keys of a Volume that name its source (exactly one must be set). */
export const VOLUME_SOURCES = Object.keys(volumeSources);

const Volume = obj({ name: str(), ...volumeSources }, { name: C('Volume'), required: ['name'] });

const NodeSelectorRequirement = obj({
  key: str(),
  operator: oneOf('DoesNotExist', 'Exists', 'Gt', 'In', 'Lt', 'NotIn'),
  values: strings(),
}, { name: C('NodeSelectorRequirement'), required: ['key', 'operator'] });

const NodeSelectorTerm = obj({ matchExpressions: atomic(NodeSelectorRequirement), matchFields: atomic(NodeSelectorRequirement) },
  { name: C('NodeSelectorTerm'), mapType: 'atomic' });

export const NodeSelector = obj({ nodeSelectorTerms: atomic(NodeSelectorTerm) },
  { name: C('NodeSelector'), required: ['nodeSelectorTerms'], mapType: 'atomic' });

const PodAffinityTerm = obj({
  labelSelector: LabelSelector,
  namespaces: strings(),
  topologyKey: str(),
  namespaceSelector: LabelSelector,
  matchLabelKeys: strings(),
  mismatchLabelKeys: strings(),
}, { name: C('PodAffinityTerm'), required: ['topologyKey'] });

const WeightedPodAffinityTerm = obj({ weight: int(), podAffinityTerm: PodAffinityTerm },
  { name: C('WeightedPodAffinityTerm'), required: ['weight', 'podAffinityTerm'] });

const podAffinity = (name: string) => obj({
  requiredDuringSchedulingIgnoredDuringExecution: atomic(PodAffinityTerm),
  preferredDuringSchedulingIgnoredDuringExecution: atomic(WeightedPodAffinityTerm),
}, { name: C(name) });

const Affinity = obj({
  nodeAffinity: obj({
    requiredDuringSchedulingIgnoredDuringExecution: NodeSelector,
    preferredDuringSchedulingIgnoredDuringExecution: atomic(obj({ weight: int(), preference: NodeSelectorTerm },
      { name: C('PreferredSchedulingTerm'), required: ['weight', 'preference'] })),
  }, { name: C('NodeAffinity') }),
  podAffinity: podAffinity('PodAffinity'),
  podAntiAffinity: podAffinity('PodAntiAffinity'),
}, { name: C('Affinity') });

export const Toleration = obj({
  key: str(),
  operator: oneOf('Equal', 'Exists'),
  value: str(),
  effect: oneOf('NoExecute', 'NoSchedule', 'PreferNoSchedule'),
  tolerationSeconds: int64(),
}, { name: C('Toleration') });

const TopologySpreadConstraint = obj({
  maxSkew: int(),
  topologyKey: str(),
  whenUnsatisfiable: oneOf('DoNotSchedule', 'ScheduleAnyway'),
  labelSelector: LabelSelector,
  minDomains: int(),
  nodeAffinityPolicy: oneOf('Honor', 'Ignore'),
  nodeTaintsPolicy: oneOf('Honor', 'Ignore'),
  matchLabelKeys: strings(),
}, { name: C('TopologySpreadConstraint'), required: ['maxSkew', 'topologyKey', 'whenUnsatisfiable'] });

export const PodSpec = obj({
  volumes: listMap(Volume, ['name'], { patchStrategy: 'merge,retainKeys' }),
  initContainers: listMap(Container, ['name']),
  containers: listMap(Container, ['name'], { description: 'List of containers belonging to the pod. There must be at least one container in a Pod.' }),
  ephemeralContainers: listMap(EphemeralContainer, ['name']),
  restartPolicy: oneOf('Always', 'Never', 'OnFailure'),
  terminationGracePeriodSeconds: int64(),
  activeDeadlineSeconds: int64(),
  dnsPolicy: oneOf('ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'),
  nodeSelector: strMap('NodeSelector is a selector which must be true for the pod to fit on a node.'),
  serviceAccountName: str(),
  serviceAccount: str({ description: 'DeprecatedServiceAccount is a deprecated alias for ServiceAccountName.' }),
  automountServiceAccountToken: bool(),
  nodeName: str(),
  hostNetwork: bool(),
  hostPID: bool(),
  hostIPC: bool(),
  shareProcessNamespace: bool(),
  securityContext: PodSecurityContext,
  imagePullSecrets: listMap(LocalObjectReference, ['name'], { tolerateDuplicates: true }),
  hostname: str(),
  subdomain: str(),
  affinity: Affinity,
  schedulerName: str(),
  tolerations: atomic(Toleration),
  hostAliases: listMap(obj({ ip: str(), hostnames: strings() }, { name: C('HostAlias'), required: ['ip'] }), ['ip']),
  priorityClassName: str(),
  priority: int(),
  dnsConfig: obj({
    nameservers: strings(),
    searches: strings(),
    options: atomic(obj({ name: str(), value: str() }, { name: C('PodDNSConfigOption') })),
  }, { name: C('PodDNSConfig') }),
  readinessGates: atomic(obj({ conditionType: str() }, { name: C('PodReadinessGate'), required: ['conditionType'] })),
  runtimeClassName: str(),
  enableServiceLinks: bool(),
  preemptionPolicy: oneOf('Never', 'PreemptLowerPriority'),
  overhead: ResourceList,
  topologySpreadConstraints: listMap(TopologySpreadConstraint, ['topologyKey', 'whenUnsatisfiable']),
  setHostnameAsFQDN: bool(),
  os: obj({ name: str() }, { name: C('PodOS'), required: ['name'] }),
  hostUsers: bool(),
  schedulingGates: listMap(obj({ name: str() }, { name: C('PodSchedulingGate'), required: ['name'] }), ['name']),
  resourceClaims: listMap(obj({ name: str(), resourceClaimName: str(), resourceClaimTemplateName: str() },
    { name: C('PodResourceClaim'), required: ['name'] }), ['name'], { patchStrategy: 'merge,retainKeys' }),
  resources: ResourceRequirements,
}, { name: C('PodSpec'), required: ['containers'], description: 'PodSpec is a description of a pod.' });

export const PodTemplateSpec = obj({ metadata: ObjectMeta, spec: PodSpec }, { name: C('PodTemplateSpec'),
  description: 'PodTemplateSpec describes the data a pod should have when created from a template.' });

const ContainerState = obj({
  waiting: obj({ reason: str(), message: str() }, { name: C('ContainerStateWaiting') }),
  running: obj({ startedAt: time() }, { name: C('ContainerStateRunning') }),
  terminated: obj({
    exitCode: int(), signal: int(), reason: str(), message: str(), startedAt: time(), finishedAt: time(), containerID: str(),
  }, { name: C('ContainerStateTerminated') }),
}, { name: C('ContainerState') });

const ContainerStatus = obj({
  name: str(),
  state: ContainerState,
  lastState: ContainerState,
  ready: bool(),
  restartCount: int(),
  image: str(),
  imageID: str(),
  containerID: str(),
  started: bool(),
  allocatedResources: ResourceList,
  resources: ResourceRequirements,
  volumeMounts: atomic(obj({ name: str(), mountPath: str(), readOnly: bool(), recursiveReadOnly: str() }, { name: C('VolumeMountStatus') })),
  user: any(),
  allocatedResourcesStatus: any(),
}, { name: C('ContainerStatus') });

const podIPs = () => listMap(obj({ ip: str() }, { name: C('PodIP') }), ['ip']);

export const PodStatus = obj({
  observedGeneration: int64(),
  phase: oneOf('Failed', 'Pending', 'Running', 'Succeeded', 'Unknown'),
  conditions: conditions(conditionOf(C('PodCondition'), ['lastProbeTime', 'lastTransitionTime'], { observedGeneration: int64() })),
  message: str(),
  reason: str(),
  nominatedNodeName: str(),
  hostIP: str(),
  hostIPs: listMap(obj({ ip: str() }, { name: C('HostIP') }), ['ip']),
  podIP: str(),
  podIPs: podIPs(),
  startTime: time(),
  initContainerStatuses: atomic(ContainerStatus),
  containerStatuses: atomic(ContainerStatus),
  qosClass: oneOf('BestEffort', 'Burstable', 'Guaranteed'),
  ephemeralContainerStatuses: atomic(ContainerStatus),
  resize: str(),
  resourceClaimStatuses: any(),
}, { name: C('PodStatus') });

// ---- defaults --------------------------------------------------------------------

/** The tag of an image reference ("latest" when there is neither tag nor digest). */
export function imageTag(image: string): string {
  if (image.includes('@')) return '';
  const lastSlash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > lastSlash ? image.slice(colon + 1) : 'latest';
}

function defaultProbe(p: unknown) {
  const probe = rec(p);
  if (!probe) return;
  defaults(probe, { timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 });
  defaultHandler(probe);
}

function defaultHandler(h: Obj | undefined) {
  const g = rec(h?.httpGet);
  if (g) defaults(g, { path: '/', scheme: 'HTTP' });
}

function defaultContainer(c: Obj) {
  if (!c.imagePullPolicy) c.imagePullPolicy = typeof c.image === 'string' && imageTag(c.image) === 'latest' ? 'Always' : 'IfNotPresent';
  defaults(c, { terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', resources: {} });
  for (const [p] of entries(c.ports)) dflt(p, 'protocol', 'TCP');
  for (const [e] of entries(c.env)) {
    const f = rec(e.valueFrom?.fieldRef);
    if (f) dflt(f, 'apiVersion', 'v1');
  }
  defaultProbe(c.livenessProbe);
  defaultProbe(c.readinessProbe);
  defaultProbe(c.startupProbe);
  defaultHandler(rec(c.lifecycle?.postStart));
  defaultHandler(rec(c.lifecycle?.preStop));
}

function defaultVolume(v: Obj) {
  if (!VOLUME_SOURCES.some((k) => v[k] !== undefined && v[k] !== null)) v.emptyDir = {};
  for (const k of ['configMap', 'secret', 'downwardAPI', 'projected']) dflt(rec(v[k]), 'defaultMode', 420);
  dflt(rec(v.hostPath), 'type', '');
  for (const [f] of entries(v.downwardAPI?.items)) {
    if (isObj(f.fieldRef)) dflt(f.fieldRef, 'apiVersion', 'v1');
  }
  for (const [src] of entries(v.projected?.sources)) dflt(rec(src.serviceAccountToken), 'expirationSeconds', 3600);
  const claim = rec(v.ephemeral?.volumeClaimTemplate?.spec);
  if (claim) dflt(claim, 'volumeMode', 'Filesystem');
}

/** SetDefaults_PodSpec and the defaults of its containers and volumes (pods and templates). */
export function defaultPodSpec(spec: Obj): void {
  defaults(spec, {
    dnsPolicy: 'ClusterFirst', restartPolicy: 'Always', securityContext: {}, terminationGracePeriodSeconds: 30,
    schedulerName: 'default-scheduler',
  });
  for (const key of ['containers', 'initContainers', 'ephemeralContainers']) {
    for (const [c] of entries(spec[key])) defaultContainer(c);
  }
  for (const [v] of entries(spec.volumes)) defaultVolume(v);
}

/** Defaults of a pod template (spec.template of workloads). */
export function defaultPodTemplate(template: unknown): void {
  const t = rec(template);
  if (t) defaultPodSpec(ensure(t, 'spec'));
}

/** SetDefaults_Pod: requests default to limits, service links, host-network ports, then the spec defaults. */
export function defaultPod(pod: Obj): void {
  const spec = ensure(pod, 'spec');
  for (const key of ['containers', 'initContainers']) {
    for (const [c] of entries(spec[key])) {
      const limits = rec(c.resources?.limits);
      if (!limits) continue;
      const requests = ensure(ensure(c, 'resources'), 'requests');
      for (const [r, q] of Object.entries(limits)) dflt(requests, r, q);
    }
  }
  dflt(spec, 'enableServiceLinks', true);
  if (spec.hostNetwork === true) {
    for (const key of ['containers', 'initContainers']) {
      for (const [c] of entries(spec[key])) for (const [p] of entries(c.ports)) dflt(p, 'hostPort', p.containerPort);
    }
  }
  defaultPodSpec(spec);
  // What admission and the pod strategy add on create.
  if (!spec.serviceAccountName) spec.serviceAccountName = spec.serviceAccount || 'default';
  dflt(spec, 'serviceAccount', spec.serviceAccountName);
  dflt(spec, 'priority', 0);
  dflt(spec, 'preemptionPolicy', 'PreemptLowerPriority');
  const status = ensure(pod, 'status');
  dflt(status, 'phase', 'Pending');
  dflt(status, 'qosClass', podQOSClass(pod));
}

/** The pod's QoS class (GetPodQOS): Guaranteed, Burstable or BestEffort. */
export function podQOSClass(pod: unknown): 'Guaranteed' | 'Burstable' | 'BestEffort' {
  const spec = rec(get(pod, 'spec')) ?? {};
  const requests: Record<string, number> = {};
  const limits: Record<string, number> = {};
  let guaranteed = true;
  for (const c of [...list(spec.containers), ...list(spec.initContainers)]) {
    const add = (src: unknown, into: Record<string, number>) => {
      const found = new Set<string>();
      for (const [name, q] of Object.entries(rec(src) ?? {})) {
        if (name !== 'cpu' && name !== 'memory') continue;
        const v = quantityValue(q);
        if (v > 0) {
          found.add(name);
          into[name] = (into[name] ?? 0) + v;
        }
      }
      return found;
    };
    add(c?.resources?.requests, requests);
    const lim = add(c?.resources?.limits, limits);
    if (!lim.has('cpu') || !lim.has('memory')) guaranteed = false;
  }
  if (!Object.keys(requests).length && !Object.keys(limits).length) return 'BestEffort';
  if (guaranteed) {
    for (const [name, r] of Object.entries(requests)) if (limits[name] !== r) guaranteed = false;
  }
  return guaranteed && Object.keys(requests).length === Object.keys(limits).length ? 'Guaranteed' : 'Burstable';
}

// ---- validation -------------------------------------------------------------------

const STANDARD_RESOURCES = new Set(['cpu', 'memory', 'ephemeral-storage', 'storage']);

function validateResourceName(name: string, path: string): Cause[] {
  if (STANDARD_RESOURCES.has(name) || name.startsWith('hugepages-') || name.startsWith('requests.') || name.startsWith('limits.')) return [];
  const msgs = isQualifiedName(name);
  if (msgs.length) return invalidEach(path, name, msgs);
  if (!name.includes('/')) {
    return [invalid(path, name, 'must be a standard resource type or fully qualified')];
  }
  return [];
}

/** Resource limits/requests: names, non-negative quantities, requests ≤ limits. */
export function validateResources(res: unknown, path: string): Cause[] {
  const r = rec(res) ?? {};
  const out: Cause[] = [];
  for (const kind of ['limits', 'requests']) {
    for (const [name, q] of Object.entries(rec(r[kind]) ?? {})) {
      const p = index(child(path, kind), name);
      out.push(...validateResourceName(name, p));
      if (quantityValue(q) < 0) out.push(invalid(p, String(q), 'must be greater than or equal to 0'));
    }
  }
  const limits = rec(r.limits) ?? {};
  for (const [name, q] of Object.entries(rec(r.requests) ?? {})) {
    if (limits[name] === undefined) continue;
    if (quantityValue(q) > quantityValue(limits[name])) {
      out.push(invalid(index(child(path, 'requests'), name), String(q), `must be less than or equal to ${name} limit of ${limits[name]}`));
    }
  }
  return out;
}

/** A port given as an int-or-string: a port number or an IANA service name. */
export function validatePortNumOrName(port: unknown, path: string): Cause[] {
  if (typeof port === 'number') return invalidEach(path, port, isValidPortNum(port));
  if (typeof port === 'string') {
    if (/^[0-9]+$/.test(port)) return invalidEach(path, port, isValidPortNum(Number(port)));
    return invalidEach(path, port, isValidPortName(port));
  }
  return [];
}

function validateHandler(h: Obj, path: string, extra: string[] = []): Cause[] {
  const set = ['exec', 'httpGet', 'tcpSocket', ...extra].filter((k) => h[k] !== undefined && h[k] !== null);
  if (!set.length) return [required(path, 'must specify a handler type')];
  const out: Cause[] = [];
  for (const k of set.slice(1)) out.push(forbidden(child(path, k), 'may not specify more than 1 handler type'));
  const g = rec(h.httpGet);
  if (g) out.push(...validatePortNumOrName(g.port, child(path, 'httpGet', 'port')));
  const t = rec(h.tcpSocket);
  if (t) out.push(...validatePortNumOrName(t.port, child(path, 'tcpSocket', 'port')));
  const e = rec(h.exec);
  if (e && !list(e.command).length) out.push(required(child(path, 'exec', 'command')));
  return out;
}

function validateProbe(probe: unknown, path: string, mustSucceedOnce: boolean): Cause[] {
  const p = rec(probe);
  if (!p) return [];
  const out = validateHandler(p, path, ['grpc']);
  for (const f of ['initialDelaySeconds', 'timeoutSeconds', 'periodSeconds', 'successThreshold', 'failureThreshold']) {
    out.push(...nonNegative(p[f], child(path, f)));
  }
  if (mustSucceedOnce && typeof p.successThreshold === 'number' && p.successThreshold !== 1) {
    out.push(invalid(child(path, 'successThreshold'), p.successThreshold, 'must be 1'));
  }
  if (typeof p.terminationGracePeriodSeconds === 'number' && p.terminationGracePeriodSeconds <= 0) {
    out.push(invalid(child(path, 'terminationGracePeriodSeconds'), p.terminationGracePeriodSeconds, 'must be greater than 0'));
  }
  return out;
}

interface PodContext {
  volumes: Set<string>;
  portNames: Set<string>;
  hostNetwork: boolean;
}

function validateEnv(env: unknown, path: string): Cause[] {
  const out: Cause[] = [];
  for (const [e, i] of entries(env)) {
    const p = index(path, i);
    if (e.name) out.push(...invalidEach(child(p, 'name'), e.name, isEnvVarName(String(e.name))));
    const from = rec(e.valueFrom);
    if (!from) continue;
    const sources = ['fieldRef', 'resourceFieldRef', 'configMapKeyRef', 'secretKeyRef'].filter((k) => from[k] !== undefined && from[k] !== null);
    const vp = child(p, 'valueFrom');
    if (e.value) out.push(invalid(vp, '', 'may not be specified when `value` is not empty'));
    if (!sources.length) out.push(invalid(vp, '', 'must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`'));
    else if (sources.length > 1) out.push(invalid(vp, '', 'may not have more than one field specified at a time'));
    for (const k of ['configMapKeyRef', 'secretKeyRef']) {
      const ref = rec(from[k]);
      if (!ref) continue;
      if (!ref.name) out.push(required(child(vp, k, 'name')));
      if (ref.key) out.push(...invalidEach(child(vp, k, 'key'), ref.key, isConfigMapKey(String(ref.key))));
    }
  }
  return out;
}

function validateContainer(c: Obj, path: string, ctx: PodContext, o: { probes: boolean; init: boolean }): Cause[] {
  const out: Cause[] = [];
  if (c.name) out.push(...invalidEach(child(path, 'name'), c.name, isDNS1123Label(String(c.name))));
  if (!c.image) out.push(required(child(path, 'image')));
  else if (typeof c.image === 'string' && c.image.trim() !== c.image) out.push(invalid(child(path, 'image'), c.image, 'must not have leading or trailing whitespace'));
  for (const [port, i] of entries(c.ports)) {
    const p = index(child(path, 'ports'), i);
    if (port.name !== undefined && port.name !== '') {
      out.push(...invalidEach(child(p, 'name'), port.name, isValidPortName(String(port.name))));
      if (ctx.portNames.has(port.name)) out.push(duplicate(child(p, 'name'), port.name));
      ctx.portNames.add(port.name);
    }
    if (typeof port.containerPort === 'number') out.push(...invalidEach(child(p, 'containerPort'), port.containerPort, isValidPortNum(port.containerPort)));
    if (port.hostPort !== undefined && port.hostPort !== 0) {
      out.push(...invalidEach(child(p, 'hostPort'), port.hostPort, isValidPortNum(port.hostPort)));
      if (ctx.hostNetwork && port.hostPort !== port.containerPort) {
        out.push(invalid(child(p, 'hostPort'), port.hostPort, 'must match `containerPort` when `hostNetwork` is true'));
      }
    }
  }
  out.push(...validateEnv(c.env, child(path, 'env')));
  for (const [m, i] of entries(c.volumeMounts)) {
    const p = index(child(path, 'volumeMounts'), i);
    if (m.name && !ctx.volumes.has(m.name)) out.push(notFound(child(p, 'name'), m.name));
    if (m.subPath && m.subPathExpr) out.push(invalid(child(p, 'subPathExpr'), m.subPathExpr, 'subPathExpr and subPath are mutually exclusive'));
  }
  out.push(...validateResources(c.resources, child(path, 'resources')));
  if (o.probes) {
    out.push(...validateProbe(c.livenessProbe, child(path, 'livenessProbe'), true));
    out.push(...validateProbe(c.readinessProbe, child(path, 'readinessProbe'), false));
    out.push(...validateProbe(c.startupProbe, child(path, 'startupProbe'), true));
  } else {
    for (const f of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
      if (c[f]) out.push(forbidden(child(path, f), `may not be set for init containers without restartPolicy=Always`));
    }
  }
  if (o.init) out.push(...oneOfValues(c.restartPolicy, ['Always'], child(path, 'restartPolicy')));
  else if (c.restartPolicy) out.push(forbidden(child(path, 'restartPolicy'), 'may not be set for non-init containers'));
  for (const h of ['postStart', 'preStop']) {
    const handler = rec(c.lifecycle?.[h]);
    if (handler) out.push(...validateHandler(handler, child(path, 'lifecycle', h), ['sleep']));
  }
  return out;
}

function validateVolumes(volumes: unknown, path: string): { causes: Cause[]; names: Set<string> } {
  const out: Cause[] = [];
  const names = new Set<string>();
  for (const [v, i] of entries(volumes)) {
    const p = index(path, i);
    if (v.name) {
      out.push(...invalidEach(child(p, 'name'), v.name, isDNS1123Label(String(v.name))));
      names.add(v.name);
    }
    const sources = VOLUME_SOURCES.filter((k) => v[k] !== undefined && v[k] !== null);
    if (!sources.length) out.push(required(p, 'must specify a volume type'));
    for (const k of sources.slice(1)) out.push(forbidden(child(p, k), 'may not specify more than 1 volume type'));
    if (rec(v.configMap) && !v.configMap.name) out.push(required(child(p, 'configMap', 'name')));
    if (rec(v.secret) && !v.secret.secretName) out.push(required(child(p, 'secret', 'secretName')));
    for (const k of ['configMap', 'secret', 'downwardAPI', 'projected']) {
      const mode = v[k]?.defaultMode;
      if (typeof mode === 'number' && (mode < 0 || mode > 0o777)) {
        out.push(invalid(child(p, k, 'defaultMode'), mode, 'must be a number between 0 and 0777 (octal), both inclusive'));
      }
    }
    // A token's lifetime, as TokenRequest will insist (the node agent requests it when the pod starts).
    for (const [src, j] of entries(v.projected?.sources)) {
      const exp = rec(src.serviceAccountToken)?.expirationSeconds;
      const ep = child(index(child(p, 'projected', 'sources'), j), 'serviceAccountToken', 'expirationSeconds');
      if (typeof exp === 'number' && exp < 600) out.push(invalid(ep, exp, 'may not specify a duration less than 10 minutes'));
      if (typeof exp === 'number' && exp > 2 ** 32) out.push(invalid(ep, exp, 'may not specify a duration larger than 2^32 seconds'));
    }
  }
  return { causes: out, names };
}

/** ValidateNodeSelectorRequirement (core): In/NotIn need values, Exists/DoesNotExist none, Gt/Lt exactly one. */
function validateNodeSelectorRequirement(r: Obj, path: string): Cause[] {
  const out = requirementValues(r, path) ?? [];
  if ((r.operator === 'Gt' || r.operator === 'Lt') && list(r.values).length !== 1) {
    out.push(required(child(path, 'values'), "must be specified single value when `operator` is 'Lt' or 'Gt'"));
  }
  if (r.key) out.push(...invalidEach(child(path, 'key'), r.key, isQualifiedName(String(r.key))));
  return out;
}

function validateNodeSelectorTerm(term: unknown, path: string): Cause[] {
  const t = rec(term) ?? {};
  const out: Cause[] = [];
  for (const f of ['matchExpressions', 'matchFields']) {
    for (const [r, i] of entries(t[f])) out.push(...validateNodeSelectorRequirement(r, index(child(path, f), i)));
  }
  return out;
}

const weightInRange = (w: unknown, path: string): Cause[] =>
  typeof w === 'number' && (w < 1 || w > 100) ? [invalid(path, w, 'must be in the range 1-100')] : [];

function validatePodAffinityTerm(t: Obj, path: string): Cause[] {
  const out = validateLabelSelector(t.labelSelector, child(path, 'labelSelector'));
  out.push(...validateLabelSelector(t.namespaceSelector, child(path, 'namespaceSelector')));
  list(t.namespaces).forEach((ns, i) => {
    if (typeof ns === 'string') out.push(...invalidEach(index(child(path, 'namespaces'), i), ns, isDNS1123Label(ns)));
  });
  if (t.topologyKey) out.push(...invalidEach(child(path, 'topologyKey'), t.topologyKey, isQualifiedName(String(t.topologyKey))));
  return out;
}

function validateAffinity(affinity: unknown, path: string): Cause[] {
  const a = rec(affinity);
  if (!a) return [];
  const out: Cause[] = [];
  const na = rec(a.nodeAffinity);
  if (na) {
    const req = rec(na.requiredDuringSchedulingIgnoredDuringExecution);
    const rp = child(path, 'nodeAffinity', 'requiredDuringSchedulingIgnoredDuringExecution');
    if (req) {
      if (Array.isArray(req.nodeSelectorTerms) && !req.nodeSelectorTerms.length) {
        out.push(required(child(rp, 'nodeSelectorTerms'), 'must have at least one node selector term'));
      }
      for (const [t, i] of entries(req.nodeSelectorTerms)) out.push(...validateNodeSelectorTerm(t, index(child(rp, 'nodeSelectorTerms'), i)));
    }
    const pp = child(path, 'nodeAffinity', 'preferredDuringSchedulingIgnoredDuringExecution');
    for (const [t, i] of entries(na.preferredDuringSchedulingIgnoredDuringExecution)) {
      out.push(...weightInRange(t.weight, child(index(pp, i), 'weight')));
      out.push(...validateNodeSelectorTerm(t.preference, child(index(pp, i), 'preference')));
    }
  }
  for (const kind of ['podAffinity', 'podAntiAffinity']) {
    const pa = rec(a[kind]);
    if (!pa) continue;
    const rp = child(path, kind, 'requiredDuringSchedulingIgnoredDuringExecution');
    for (const [t, i] of entries(pa.requiredDuringSchedulingIgnoredDuringExecution)) out.push(...validatePodAffinityTerm(t, index(rp, i)));
    const pp = child(path, kind, 'preferredDuringSchedulingIgnoredDuringExecution');
    for (const [t, i] of entries(pa.preferredDuringSchedulingIgnoredDuringExecution)) {
      out.push(...weightInRange(t.weight, child(index(pp, i), 'weight')));
      out.push(...validatePodAffinityTerm(rec(t.podAffinityTerm) ?? {}, child(index(pp, i), 'podAffinityTerm')));
    }
  }
  return out;
}

/** ValidateTolerations. */
export function validateTolerations(tolerations: unknown, path: string): Cause[] {
  const out: Cause[] = [];
  for (const [t, i] of entries(tolerations)) {
    const p = index(path, i);
    if (t.key) out.push(...invalidEach(child(p, 'key'), t.key, isQualifiedName(String(t.key))));
    if (!t.key && t.operator !== 'Exists') {
      out.push(invalid(child(p, 'operator'), t.operator ?? '', 'operator must be Exists when `key` is empty, which means "match all values and all keys"'));
    }
    if (t.tolerationSeconds !== undefined && t.tolerationSeconds !== null && t.effect !== 'NoExecute') {
      out.push(invalid(child(p, 'effect'), t.effect ?? '', 'effect must be \'NoExecute\' when `tolerationSeconds` is set'));
    }
    if (t.operator === 'Exists' && t.value) out.push(invalid(child(p, 'operator'), t.value, "value must be empty when `operator` is 'Exists'"));
  }
  return out;
}

export interface PodSpecOptions {
  /** Allowed restart policies (templates of workloads: only Always). */
  restartPolicies?: string[];
  /** The workload kind whose templates may not set activeDeadlineSeconds ("ReplicaSet"...). */
  activeDeadlineForbiddenIn?: string;
  /** Volume names provided outside the pod spec (StatefulSet volumeClaimTemplates). */
  extraVolumes?: string[];
}

/** ValidatePodSpec (the commonly hit rules). */
export function validatePodSpec(specValue: unknown, path: string, o: PodSpecOptions = {}): Cause[] {
  const spec = rec(specValue) ?? {};
  const out: Cause[] = [];
  const vols = validateVolumes(spec.volumes, child(path, 'volumes'));
  out.push(...vols.causes);
  for (const v of o.extraVolumes ?? []) vols.names.add(v);
  const ctx: PodContext = { volumes: vols.names, portNames: new Set(), hostNetwork: spec.hostNetwork === true };
  if (Array.isArray(spec.containers) && !spec.containers.length) out.push(required(child(path, 'containers')));
  // Duplicates within one list are the schema's (list-map); names must also be unique across lists.
  const earlier = new Set<unknown>();
  for (const [key, init] of [['initContainers', true], ['containers', false], ['ephemeralContainers', false]] as const) {
    const p = child(path, key);
    for (const [c, i] of entries(spec[key])) {
      if (key === 'ephemeralContainers') {
        if (!c.image) out.push(required(child(index(p, i), 'image')));
      } else {
        out.push(...validateContainer(c, index(p, i), ctx, { probes: !init || c.restartPolicy === 'Always', init }));
      }
      if (earlier.has(c.name)) out.push(duplicate(child(index(p, i), 'name'), c.name));
    }
    for (const [c] of entries(spec[key])) earlier.add(c.name);
  }
  const all = ['Always', 'OnFailure', 'Never'];
  if (!spec.restartPolicy) out.push(required(child(path, 'restartPolicy')));
  else if (o.restartPolicies && all.includes(spec.restartPolicy)) out.push(...oneOfValues(spec.restartPolicy, o.restartPolicies, child(path, 'restartPolicy')));
  if (spec.dnsPolicy === 'None' && !rec(spec.dnsConfig)?.nameservers?.length) {
    out.push(required(child(path, 'dnsConfig', 'nameservers'), 'must provide at least one DNS nameserver when `dnsPolicy` is None'));
  }
  out.push(...validateLabels(spec.nodeSelector, child(path, 'nodeSelector')));
  out.push(...validateAffinity(spec.affinity, child(path, 'affinity')));
  out.push(...validateTolerations(spec.tolerations, child(path, 'tolerations')));
  for (const f of ['serviceAccountName', 'nodeName', 'priorityClassName', 'subdomain']) {
    if (spec[f]) out.push(...invalidEach(child(path, f), spec[f], f === 'subdomain' ? isDNS1123Label(spec[f]) : isDNS1123Subdomain(String(spec[f]))));
  }
  if (spec.hostname) out.push(...invalidEach(child(path, 'hostname'), spec.hostname, isDNS1123Label(String(spec.hostname))));
  out.push(...nonNegative(spec.terminationGracePeriodSeconds, child(path, 'terminationGracePeriodSeconds')));
  if (o.activeDeadlineForbiddenIn && spec.activeDeadlineSeconds !== undefined && spec.activeDeadlineSeconds !== null) {
    out.push(forbidden(child(path, 'activeDeadlineSeconds'), `activeDeadlineSeconds in ${o.activeDeadlineForbiddenIn} is not Supported`));
  } else if (typeof spec.activeDeadlineSeconds === 'number' && (spec.activeDeadlineSeconds < 1 || spec.activeDeadlineSeconds > 2147483647)) {
    out.push(invalid(child(path, 'activeDeadlineSeconds'), spec.activeDeadlineSeconds, inclusiveRangeError(1, 2147483647)));
  }
  for (const [t, i] of entries(spec.topologySpreadConstraints)) {
    const p = index(child(path, 'topologySpreadConstraints'), i);
    if (typeof t.maxSkew === 'number' && t.maxSkew <= 0) out.push(invalid(child(p, 'maxSkew'), t.maxSkew, 'must be greater than zero'));
    out.push(...validateLabelSelector(t.labelSelector, child(p, 'labelSelector')));
  }
  return out;
}

/**
 * ValidatePodTemplateSpec plus the workload rules: template labels valid, the
 * selector must match them, and the allowed restart policies.
 */
export function validatePodTemplate(template: unknown, path: string, o: PodSpecOptions & { selector?: unknown } = {}): Cause[] {
  const t = rec(template);
  if (!t) return []; // required by the schema
  const meta = rec(t.metadata) ?? {};
  const out = validateLabels(meta.labels, child(path, 'metadata', 'labels'));
  out.push(...validateAnnotations(meta.annotations, child(path, 'metadata', 'annotations')));
  // An invalid selector is reported on its own; matching is only checked for a valid, non-empty one.
  const checkMatch = rec(o.selector) && !selectorEmpty(o.selector) && !validateLabelSelector(o.selector, '').length;
  if (checkMatch && !selectorMatches(o.selector, meta.labels)) {
    out.push(invalid(child(path, 'metadata', 'labels'), meta.labels ?? {}, '`selector` does not match template `labels`'));
  }
  out.push(...validatePodSpec(t.spec, child(path, 'spec'), o));
  return out;
}

const UPDATABLE_POD_FIELDS = [
  '`spec.containers[*].image`',
  '`spec.initContainers[*].image`',
  '`spec.activeDeadlineSeconds`',
  '`spec.tolerations` (only additions to existing tolerations)',
  '`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
];

/** ValidatePodUpdate's spec rules: only images, activeDeadlineSeconds, toleration additions and gate removals. */
export function validatePodSpecUpdate(specValue: unknown, oldValue: unknown): Cause[] {
  const spec = rec(specValue) ?? {};
  const old = rec(oldValue) ?? {};
  const out: Cause[] = [];
  const ads = spec.activeDeadlineSeconds;
  if (typeof ads === 'number') {
    if (typeof old.activeDeadlineSeconds === 'number' && old.activeDeadlineSeconds < ads) {
      out.push(invalid('spec.activeDeadlineSeconds', ads, 'must be less than or equal to previous value'));
    }
  } else if (typeof old.activeDeadlineSeconds === 'number') {
    out.push(invalid('spec.activeDeadlineSeconds', null, 'must not update from a positive integer to nil value'));
  }
  const newTolerations = list(spec.tolerations);
  const sameToleration = (a: Obj, b: Obj) => deepEqual({ ...a, tolerationSeconds: undefined }, { ...b, tolerationSeconds: undefined });
  if (!list(old.tolerations).every((t) => newTolerations.some((n) => sameToleration(t, n)))) {
    out.push(forbidden('spec.tolerations', 'existing toleration can not be modified except its tolerationSeconds'));
  }
  const oldGates = new Set(list(old.schedulingGates).map((g) => g.name));
  for (const g of list(spec.schedulingGates)) {
    if (!oldGates.has(g.name)) out.push(forbidden('spec.schedulingGates', `only deletion is allowed, but found new scheduling gate '${g.name}'`));
  }
  // Everything else must be unchanged: copy the mutable fields onto the old spec and compare.
  const munged = structuredClone(old);
  for (const key of ['containers', 'initContainers']) {
    const mc = list(munged[key]);
    const nc = list(spec[key]);
    if (mc.length === nc.length) mc.forEach((c, i) => { if (isObj(c) && isObj(nc[i])) c.image = nc[i].image; });
  }
  munged.activeDeadlineSeconds = spec.activeDeadlineSeconds;
  munged.tolerations = spec.tolerations;
  munged.schedulingGates = spec.schedulingGates;
  if (typeof old.terminationGracePeriodSeconds === 'number' && old.terminationGracePeriodSeconds < 0 && spec.terminationGracePeriodSeconds === 1) {
    munged.terminationGracePeriodSeconds = 1;
  }
  if (!deepEqual(munged, spec)) {
    const changed = [...new Set([...Object.keys(spec), ...Object.keys(old)])].filter((k) => !deepEqual(munged[k], spec[k]));
    out.push(forbidden('spec', `pod updates may not change fields other than ${UPDATABLE_POD_FIELDS.join(',')}\n  changed: ${changed.map((k) => `spec.${k}`).join(', ')}`));
  }
  return out;
}

// ---- printing ------------------------------------------------------------------------

const isRestartableInit = (c: Obj | undefined) => c?.restartPolicy === 'Always';
const hasTrueCondition = (status: Obj, type: string) =>
  list(status.conditions).some((c) => c.type === type && c.status === 'True');

const latest = (a: string, b: unknown) => (typeof b === 'string' && (!a || Date.parse(b) > Date.parse(a)) ? b : a);

/** The READY, STATUS and RESTARTS cells of `kubectl get pods` (printPod). */
export function podSummary(pod: Obj, now: number): { ready: string; status: string; restarts: string } {
  const spec = rec(pod.spec) ?? {};
  const status = rec(pod.status) ?? {};
  let restarts = 0;
  let restartableInitRestarts = 0;
  let total = list(spec.containers).length;
  let ready = 0;
  let lastRestart = '';
  let lastRestartableInitRestart = '';
  let reason: string = status.reason || status.phase || '';
  for (const c of list(status.conditions)) {
    if (c.type === 'PodScheduled' && c.reason === 'SchedulingGated') reason = 'SchedulingGated';
  }
  const initByName = new Map(list(spec.initContainers).map((c) => [c.name, c]));
  total += list(spec.initContainers).filter(isRestartableInit).length;
  let initializing = false;
  const initStatuses = list(status.initContainerStatuses);
  for (let i = 0; i < initStatuses.length; i++) {
    const cs = initStatuses[i];
    restarts += Number(cs.restartCount ?? 0);
    const finished = cs.lastState?.terminated?.finishedAt;
    lastRestart = latest(lastRestart, finished);
    const restartable = isRestartableInit(initByName.get(cs.name));
    if (restartable) {
      restartableInitRestarts += Number(cs.restartCount ?? 0);
      lastRestartableInitRestart = latest(lastRestartableInitRestart, finished);
    }
    const term = rec(cs.state?.terminated);
    const waiting = rec(cs.state?.waiting);
    if (term && term.exitCode === 0) continue;
    if (restartable && cs.started === true) {
      if (cs.ready) ready++;
      continue;
    }
    if (term) {
      reason = term.reason ? `Init:${term.reason}` : term.signal ? `Init:Signal:${term.signal}` : `Init:ExitCode:${term.exitCode ?? 0}`;
    } else if (waiting?.reason && waiting.reason !== 'PodInitializing') {
      reason = `Init:${waiting.reason}`;
    } else {
      reason = `Init:${i}/${list(spec.initContainers).length}`;
    }
    initializing = true;
    break;
  }
  if (!initializing || hasTrueCondition(status, 'Initialized')) {
    restarts = restartableInitRestarts;
    lastRestart = lastRestartableInitRestart;
    let hasRunning = false;
    const statuses = list(status.containerStatuses);
    for (let i = statuses.length - 1; i >= 0; i--) {
      const cs = statuses[i];
      restarts += Number(cs.restartCount ?? 0);
      lastRestart = latest(lastRestart, cs.lastState?.terminated?.finishedAt);
      const waiting = rec(cs.state?.waiting);
      const term = rec(cs.state?.terminated);
      if (waiting?.reason) reason = waiting.reason;
      else if (term?.reason) reason = term.reason;
      else if (term) reason = term.signal ? `Signal:${term.signal}` : `ExitCode:${term.exitCode ?? 0}`;
      else if (cs.ready && cs.state?.running) {
        hasRunning = true;
        ready++;
      }
    }
    if (reason === 'Completed' && hasRunning) reason = hasTrueCondition(status, 'Ready') ? 'Running' : 'NotReady';
  }
  const deleting = !!pod.metadata?.deletionTimestamp;
  if (deleting && status.reason === 'NodeLost') reason = 'Unknown';
  else if (deleting && status.phase !== 'Succeeded' && status.phase !== 'Failed') reason = 'Terminating';
  const restartText = restarts !== 0 && lastRestart ? `${restarts} (${since(lastRestart, now)} ago)` : String(restarts);
  return { ready: `${ready}/${total}`, status: reason, restarts: restartText };
}

/** The READINESS GATES cell: "<none>" or "true/total". */
export function readinessGates(pod: Obj): string {
  const gates = list(pod.spec?.readinessGates);
  if (!gates.length) return '<none>';
  const conds = list(pod.status?.conditions);
  const ok = gates.filter((g) => conds.find((c) => c.type === g.conditionType)?.status === 'True').length;
  return `${ok}/${gates.length}`;
}

