import t from 'tap';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import {
  KINDS, apiVersionOf, formatLabelSelector, humanDuration, kindByApiVersion, kindByGVK, kindByName, kindByResource, prepareForUpdate,
  scaleOf, selectorMatches, validateBinding, validateObject,
} from '../api/kinds/index.ts';
import type { Cause, KindDef, KubeObject } from '../api/schema/types.ts';
import { validateSchema } from '../api/schema/validate.ts';

const NOW = Date.parse('2025-01-01T12:00:00Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();

function kindOf(o: KubeObject): KindDef {
  const k = kindByApiVersion(String(o.apiVersion), String(o.kind));
  if (!k) throw new Error(`no kind for ${o.apiVersion} ${o.kind}`);
  return k;
}

/** Causes reported by both the schema and the kind's validation (the HTTP layer concatenates the two). */
const overlaps: string[] = [];
/** Validations that reported problems from both the schema and the kind (where an overlap could show). */
let bothReported = 0;

function validated(k: KindDef, obj: KubeObject, old?: KubeObject): Cause[] {
  const schema = new Set(validateSchema(k.schema, obj).map((c) => `${c.reason} ${c.field}`));
  const semantic = k.validate(obj, old);
  if (schema.size && semantic.length) bothReported++;
  for (const c of semantic) if (schema.has(`${c.reason} ${c.field}`)) overlaps.push(`${k.kind}: ${c.reason} ${c.field}`);
  return validateObject(k, obj, old);
}

/** What the server does on create: defaults, then schema + semantic validation. */
function create(o: KubeObject): { obj: KubeObject; causes: Cause[] } {
  const obj = structuredClone(o);
  const k = kindOf(obj);
  k.default(obj);
  return { obj, causes: validated(k, obj) };
}

function update(old: KubeObject, change: (o: any) => void): Cause[] {
  const stored = create(old).obj;
  const next = structuredClone(stored);
  change(next);
  const k = kindOf(next);
  k.default(next);
  return validated(k, next, stored);
}

const ns = (o: KubeObject): KubeObject => ({ ...o, metadata: { namespace: 'default', ...o.metadata } });

const podSpec = {
  containers: [{
    name: 'web', image: 'nginx:1.27', ports: [{ containerPort: 80, name: 'http' }],
    env: [{ name: 'MODE', value: 'prod' }, { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }],
    envFrom: [{ configMapRef: { name: 'settings' } }],
    resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: 1, memory: '128Mi' } },
    volumeMounts: [{ name: 'cache', mountPath: '/cache' }, { name: 'config', mountPath: '/etc/app', readOnly: true }],
    livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, initialDelaySeconds: 5 },
    readinessProbe: { tcpSocket: { port: 80 } },
    startupProbe: { exec: { command: ['true'] }, failureThreshold: 30 },
    securityContext: { runAsNonRoot: true, capabilities: { drop: ['ALL'] }, allowPrivilegeEscalation: false },
  }],
  initContainers: [{ name: 'init', image: 'busybox', command: ['sh', '-c', 'echo hi'] }],
  volumes: [{ name: 'cache', emptyDir: {} }, { name: 'config', configMap: { name: 'settings' } },
    { name: 'data', persistentVolumeClaim: { claimName: 'data' } }, { name: 'host', hostPath: { path: '/var/log', type: 'Directory' } },
    { name: 'creds', secret: { secretName: 'db' } }],
  nodeSelector: { 'kubernetes.io/os': 'linux' },
  affinity: {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] }] },
      preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 10, preference: { matchExpressions: [{ key: 'disk', operator: 'Exists' }] } }],
    },
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { labelSelector: { matchLabels: { app: 'web' } }, topologyKey: 'kubernetes.io/hostname' } }],
    },
  },
  tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'web', effect: 'NoSchedule' },
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
  topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { app: 'web' } } }],
  serviceAccountName: 'web',
  securityContext: { fsGroup: 2000 },
  terminationGracePeriodSeconds: 10,
  priorityClassName: 'high',
};

const template = { metadata: { labels: { app: 'web' } }, spec: podSpec };
const selector = { matchLabels: { app: 'web' } };

/** A valid example of every kind. */
const EXAMPLES: KubeObject[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a', labels: { team: 'a' } } },
  ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-0', labels: { app: 'web' }, annotations: { 'example.com/owner': 'me' } }, spec: podSpec }),
  ns({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' }] } }),
  ns({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'edge' }, spec: { type: 'LoadBalancer', selector: { app: 'web' }, ports: [{ port: 80, nodePort: 30080 }] } }),
  ns({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'db' }, spec: { type: 'ExternalName', externalName: 'db.example.com' } }),
  ns({ apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'web' }, subsets: [{ addresses: [{ ip: '10.0.0.5', targetRef: { kind: 'Pod', name: 'web-0', namespace: 'default' } }], ports: [{ name: 'http', port: 80 }] }] }),
  ns({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' }, data: { 'app.properties': 'a=b', LOG_LEVEL: 'info' }, binaryData: { blob: 'AAEC' } }),
  ns({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, data: { password: 'czNjcjN0' }, stringData: { user: 'admin' } }),
  ns({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tls' }, type: 'kubernetes.io/tls', data: { 'tls.crt': 'Y2VydA==', 'tls.key': 'a2V5' } }),
  {
    apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1', labels: { 'node-role.kubernetes.io/control-plane': '', 'kubernetes.io/hostname': 'node-1' } },
    spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'], taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] },
    status: {
      capacity: { cpu: '4', memory: '16Gi', pods: '110' }, allocatable: { cpu: '3800m', memory: '15Gi', pods: '110' },
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: ago(10_000), lastTransitionTime: ago(3_600_000) }],
      addresses: [{ type: 'InternalIP', address: '192.168.1.10' }, { type: 'Hostname', address: 'node-1' }],
      nodeInfo: { kubeletVersion: 'v1.32.0', osImage: 'Debian GNU/Linux 12', kernelVersion: '6.1.0', containerRuntimeVersion: 'flotilla://0.1', operatingSystem: 'linux', architecture: 'amd64' },
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
    },
  },
  ns({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'web' }, imagePullSecrets: [{ name: 'registry' }] }),
  ns({ apiVersion: 'v1', kind: 'Event', metadata: { name: 'web-0.17a1b2c3d4e5f6a7' }, involvedObject: { kind: 'Pod', name: 'web-0', namespace: 'default', fieldPath: 'spec.containers{web}' }, reason: 'Pulled', message: 'Pulled image', type: 'Normal', source: { component: 'kubelet', host: 'node-1' }, firstTimestamp: ago(60_000), lastTimestamp: ago(30_000), count: 2 }),
  { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'pv-1' }, spec: { capacity: { storage: '10Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: '/data/pv-1' }, storageClassName: 'manual' } },
  ns({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, storageClassName: 'manual' } }),
  ns({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { replicas: 3, selector, template, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: '10%' } } } }),
  ns({ apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web-5d9c8f' }, spec: { replicas: 2, selector, template } }),
  ns({
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'db' },
    spec: {
      serviceName: 'db', replicas: 3, selector: { matchLabels: { app: 'db' } },
      template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'pg', image: 'postgres:16', volumeMounts: [{ name: 'data', mountPath: '/var/lib/postgresql' }] }] } },
      volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } } } }],
    },
  }),
  ns({
    apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent' },
    spec: { selector: { matchLabels: { app: 'agent' } }, template: { metadata: { labels: { app: 'agent' } }, spec: { hostNetwork: true, containers: [{ name: 'agent', image: 'agent:1', ports: [{ containerPort: 9100, hostPort: 9100 }] }] } } },
  }),
  ns({ apiVersion: 'apps/v1', kind: 'ControllerRevision', metadata: { name: 'db-7f8d9c', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 'u1', controller: true }] }, data: { spec: { template: {} } }, revision: 1 }),
  ns({
    apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'pi', uid: '0f3c-11' },
    spec: { backoffLimit: 4, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'pi', image: 'perl:5.34', command: ['perl', '-Mbignum=bpi', '-wle', 'print bpi(2000)'] }] } } },
  }),
  ns({
    apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'report' },
    spec: { schedule: '*/5 * * * *', timeZone: 'Europe/Paris', jobTemplate: { spec: { template: { spec: { restartPolicy: 'OnFailure', containers: [{ name: 'r', image: 'report:1' }] } } } } },
  }),
  ns({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'kube-scheduler' }, spec: { holderIdentity: 'node-1_abc', leaseDurationSeconds: 15, acquireTime: '2025-01-01T11:00:00.000000Z', renewTime: '2025-01-01T11:59:59.123456Z', leaseTransitions: 2 } }),
  ns({
    apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'web' },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, minReplicas: 2, maxReplicas: 10,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } } },
        { type: 'Resource', resource: { name: 'memory', target: { type: 'AverageValue', averageValue: '500Mi' } } }],
      behavior: { scaleDown: { stabilizationWindowSeconds: 300 } },
    },
  }),
  ns({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-abc12', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4',
    endpoints: [{ addresses: ['127.64.1.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-1', targetRef: { kind: 'Pod', namespace: 'default', name: 'web-0', uid: 'u1' } }],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  }),
  ns({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'pod-reader' }, rules: [{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list', 'watch'] }] }),
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'system:metrics' }, rules: [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }, { apiGroups: ['apps'], resources: ['*'], verbs: ['*'] }] },
  ns({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'read-pods' }, subjects: [{ kind: 'User', name: 'jane' }, { kind: 'ServiceAccount', name: 'web', namespace: 'default' }], roleRef: { kind: 'Role', name: 'pod-reader', apiGroup: 'rbac.authorization.k8s.io' } }),
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'metrics' }, subjects: [{ kind: 'Group', name: 'system:monitoring' }, { kind: 'ServiceAccount', name: 'prom', namespace: 'monitoring' }], roleRef: { kind: 'ClusterRole', name: 'system:metrics' } },
  { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: 'local', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } }, provisioner: 'flotilla.io/local-path', volumeBindingMode: 'WaitForFirstConsumer' },
  ns({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'web' }, spec: { minAvailable: '50%', selector: { matchLabels: { app: 'web' } } } }),
  ns({ apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'compute' }, spec: { hard: { pods: '10', 'requests.cpu': '4', 'limits.memory': '8Gi', 'count/deployments.apps': '5' } } }),
  ns({ apiVersion: 'v1', kind: 'LimitRange', metadata: { name: 'defaults' }, spec: { limits: [{ type: 'Container', default: { cpu: '500m', memory: '256Mi' }, defaultRequest: { cpu: '100m', memory: '64Mi' }, max: { cpu: '2' }, min: { cpu: '10m' }, maxLimitRequestRatio: { cpu: '10' } }, { type: 'Pod', max: { memory: '1Gi' } }] } }),
  ns({
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'web' },
    spec: {
      ingressClassName: 'flotilla', tls: [{ hosts: ['web.example.com'], secretName: 'web-tls' }],
      rules: [{ host: '*.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }],
    },
  }),
  { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'flotilla', annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } }, spec: { controller: 'flotilla.io/ingress' } },
  { apiVersion: 'scheduling.k8s.io/v1', kind: 'PriorityClass', metadata: { name: 'high' }, value: 1000, description: 'for important pods' },
];

t.test('every kind has a valid example that passes schema and semantic validation after defaulting', async (t) => {
  const covered = new Set(EXAMPLES.map((e) => `${e.apiVersion}/${e.kind}`));
  for (const k of KINDS) t.ok(covered.has(`${apiVersionOf(k)}/${k.kind}`), `${k.kind} has an example`);
  for (const e of EXAMPLES) {
    t.same(validateSchema(kindOf(e).schema, e), [], `${e.kind} ${e.metadata?.name}: raw manifest is schema-valid`);
    t.same(create(e).causes, [], `${e.kind} ${e.metadata?.name}: valid after defaulting`);
  }
});

t.test('defaulting is idempotent and keeps objects valid on a no-op update', async (t) => {
  for (const e of EXAMPLES) {
    const once = create(e).obj;
    const twice = structuredClone(once);
    kindOf(twice).default(twice);
    t.same(twice, once, `${e.kind} defaults are stable`);
    t.same(update(e, () => {}), [], `${e.kind} no-op update`);
  }
});

t.test('registry: names, scopes, subresources, categories, scale', async (t) => {
  t.equal(KINDS.length, 32);
  const row = (k: KindDef) => [k.plural, k.singular, k.shortNames.join(','), k.namespaced, k.subresources.join(','), k.categories.join(',')];
  t.same(row(kindByName('po')!), ['pods', 'pod', 'po', true, 'status,binding,log,eviction', 'all']);
  t.same(row(kindByName('svc')!), ['services', 'service', 'svc', true, 'status', 'all']);
  t.same(row(kindByName('ns')!), ['namespaces', 'namespace', 'ns', false, 'status,finalize', '']);
  t.same(row(kindByName('no')!), ['nodes', 'node', 'no', false, 'status', '']);
  t.same(row(kindByName('pv')!), ['persistentvolumes', 'persistentvolume', 'pv', false, 'status', '']);
  t.same(row(kindByName('pvc')!), ['persistentvolumeclaims', 'persistentvolumeclaim', 'pvc', true, 'status', '']);
  t.same(row(kindByName('deploy')!), ['deployments', 'deployment', 'deploy', true, 'status,scale', 'all']);
  t.same(row(kindByName('rs')!), ['replicasets', 'replicaset', 'rs', true, 'status,scale', 'all']);
  t.same(row(kindByName('sts')!), ['statefulsets', 'statefulset', 'sts', true, 'status,scale', 'all']);
  t.same(row(kindByName('ds')!), ['daemonsets', 'daemonset', 'ds', true, 'status', 'all']);
  t.same(row(kindByName('jobs')!), ['jobs', 'job', '', true, 'status', 'all']);
  t.same(row(kindByName('hpa')!), ['horizontalpodautoscalers', 'horizontalpodautoscaler', 'hpa', true, 'status', 'all']);
  t.same(row(kindByName('clusterrolebindings')!), ['clusterrolebindings', 'clusterrolebinding', '', false, '', '']);
  for (const [n, short] of [['configmaps', 'cm'], ['endpoints', 'ep'], ['serviceaccounts', 'sa'], ['events', 'ev']]) {
    t.equal(kindByName(short)?.plural, n);
  }
  const all = KINDS.filter((k) => k.categories.includes('all')).map((k) => k.plural).sort();
  t.same(all, ['cronjobs', 'daemonsets', 'deployments', 'horizontalpodautoscalers', 'jobs', 'pods', 'replicasets', 'services', 'statefulsets']);
  for (const p of ['deployments', 'replicasets', 'statefulsets']) {
    t.same(kindByResource('apps', 'v1', p)!.scale, { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' });
  }
  t.equal(kindByResource('', 'v1', 'pods')!.hasStatus, true);
  t.equal(kindByResource('', 'v1', 'configmaps')!.hasStatus, false);
  t.equal(kindByResource('', 'v1', 'pods')!.listKind, 'PodList');
});

t.test('kindByName, kindByResource, kindByGVK', async (t) => {
  for (const n of ['po', 'pods', 'pod', 'Pod', 'PODS', ' pod ', 'pods.v1']) t.equal(kindByName(n)?.kind, 'Pod', n);
  for (const n of ['deploy', 'deployments', 'Deployment', 'deployments.apps', 'deployment.apps', 'deployments.v1.apps', 'deploy.apps']) {
    t.equal(kindByName(n)?.kind, 'Deployment', n);
  }
  t.equal(kindByName('hpa')?.group, 'autoscaling');
  t.equal(kindByName('horizontalpodautoscalers.autoscaling')?.version, 'v2');
  t.equal(kindByName('roles.rbac.authorization.k8s.io')?.kind, 'Role');
  t.equal(kindByName('leases.coordination.k8s.io')?.kind, 'Lease');
  t.equal(kindByName('deployments.batch'), undefined);
  t.equal(kindByName('widgets'), undefined);
  t.equal(kindByResource('apps', 'v1', 'deployments')?.kind, 'Deployment');
  t.equal(kindByResource('', 'v1', 'deployments'), undefined);
  t.equal(kindByGVK('batch', 'v1', 'Job')?.plural, 'jobs');
  t.equal(kindByGVK('apps', 'v1', 'Pod'), undefined);
  t.equal(kindByApiVersion('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding')?.namespaced, false);
});

// ---- a realistic manifest -----------------------------------------------------------------

const NGINX = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
        resources:
          requests:
            cpu: "250m"
            memory: "64Mi"
          limits:
            cpu: "500m"
            memory: "128Mi"
        livenessProbe:
          httpGet:
            path: /
            port: 80
          initialDelaySeconds: 3
          periodSeconds: 3
---
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  type: NodePort
  selector:
    app: nginx
  ports:
    - protocol: TCP
      port: 80
      targetPort: 80
      nodePort: 30007
`;

t.test('the nginx Deployment + Service manifest as kubectl users write it validates cleanly', async (t) => {
  const docs = parseAllDocuments(NGINX).map((d) => ns(d.toJSON() as KubeObject));
  t.equal(docs.length, 2);
  for (const d of docs) {
    t.same(validateSchema(kindOf(d).schema, d), [], `${d.kind} schema`);
    t.same(create(d).causes, [], `${d.kind} after defaults`);
  }
  const dep = create(docs[0]).obj as any;
  t.equal(dep.spec.template.spec.containers[0].imagePullPolicy, 'IfNotPresent');
  t.equal(dep.spec.template.spec.containers[0].ports[0].protocol, 'TCP');
  t.same(dep.spec.template.spec.containers[0].livenessProbe, { httpGet: { path: '/', port: 80, scheme: 'HTTP' }, initialDelaySeconds: 3, periodSeconds: 3, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 });
  const svc = create(docs[1]).obj as any;
  t.same(svc.spec.ports, [{ protocol: 'TCP', port: 80, targetPort: 80, nodePort: 30007 }]);
  t.equal(svc.spec.externalTrafficPolicy, 'Cluster');
});

// ---- typical mistakes ---------------------------------------------------------------------

function causesOf(o: KubeObject): Cause[] {
  return create(o).causes;
}

const deploymentYaml = (patch: (d: any) => void = () => {}) => {
  const d = ns(parseAllDocuments(NGINX)[0].toJSON() as KubeObject);
  patch(d);
  return d;
};

t.test('unknown fields', async (t) => {
  const d = deploymentYaml((d) => { d.spec.foo = 1; d.spec.template.spec.containers[0].imagePolicy = 'x'; });
  const c = validateSchema(kindOf(d).schema, d).filter((x) => x.reason === 'FieldValueUnknown').sort((a, b) => a.field.length - b.field.length);
  t.same(c, [
    { reason: 'FieldValueUnknown', field: 'spec.foo', message: 'unknown field "spec.foo"' },
    { reason: 'FieldValueUnknown', field: 'spec.template.spec.containers[0].imagePolicy', message: 'unknown field "spec.template.spec.containers[0].imagePolicy"' },
  ]);
});

t.test('wrong types', async (t) => {
  const d = deploymentYaml((d) => { d.spec.replicas = 'three'; d.metadata.labels.version = 2; d.spec.paused = 'yes'; d.spec.template.spec.containers[0].ports = { containerPort: 80 }; });
  const c = validateSchema(kindOf(d).schema, d);
  t.same(c.find((x) => x.field === 'spec.replicas'), {
    reason: 'FieldValueTypeInvalid', field: 'spec.replicas', message: 'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
  });
  t.same(c.find((x) => x.field === 'metadata.labels[version]')?.message, 'Invalid value: "integer": metadata.labels[version] in body must be of type string: "integer"');
  t.equal(c.find((x) => x.field === 'spec.paused')?.reason, 'FieldValueTypeInvalid');
  t.match(c.find((x) => x.field === 'spec.template.spec.containers[0].ports')?.message, /must be of type array: "object"/);
  const fractional = deploymentYaml((d) => { d.spec.replicas = 1.5; });
  t.match(validateSchema(kindOf(fractional).schema, fractional)[0].message, /must be of type integer: "number"/);
});

t.test('invalid names and labels', async (t) => {
  const c = causesOf(deploymentYaml((d) => { d.metadata.name = 'Nginx_1'; }));
  t.same(c, [{
    reason: 'FieldValueInvalid', field: 'metadata.name',
    message: "Invalid value: \"Nginx_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
  }]);
  t.same(causesOf({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a.b' } }).map((x) => x.message), ['Invalid value: "a.b": must not contain dots']);
  t.match(causesOf(ns({ apiVersion: 'v1', kind: 'Service', metadata: { name: '1web' }, spec: { ports: [{ port: 80 }] } }))[0].message, /a DNS-1035 label must consist of/);
  t.same(causesOf(ns({ apiVersion: 'v1', kind: 'ConfigMap', metadata: {} })), [{ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' }]);
  t.same(causesOf(ns({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'cfg-' } })), [], 'generateName with a trailing dash');
  t.same(causesOf({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }), [{ reason: 'FieldValueRequired', field: 'metadata.namespace', message: 'Required value' }]);
  t.same(causesOf({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n', namespace: 'default' } }), [{ reason: 'FieldValueForbidden', field: 'metadata.namespace', message: 'Forbidden: not allowed on this type' }]);
  const labels = causesOf(deploymentYaml((d) => { d.metadata.labels = { 'bad key!': 'ok', good: 'bad value!', 'a/b/c': 'x' }; }));
  t.same(labels.map((x) => x.field), ['metadata.labels', 'metadata.labels', 'metadata.labels']);
  t.match(labels[0].message, /^Invalid value: "bad key!": name part must consist of alphanumeric characters/);
  t.match(labels[1].message, /^Invalid value: "bad value!": a valid label must be an empty string or consist of alphanumeric characters/);
  t.match(labels[2].message, /a qualified name must consist of/);
  t.same(causesOf(ns({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'system:Weird Name' }, rules: [] })), [], 'RBAC names are path segments');
  t.same(causesOf(ns({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'a/b' }, rules: [] })).map((x) => x.message), ['Invalid value: "a/b": may not contain \'/\'']);
});

t.test('containers: image required, unique names, ports, probes, env, mounts', async (t) => {
  const missing = causesOf(deploymentYaml((d) => { delete d.spec.template.spec.containers[0].image; }));
  t.same(missing, [{ reason: 'FieldValueRequired', field: 'spec.template.spec.containers[0].image', message: 'Required value' }]);
  const dup = causesOf(deploymentYaml((d) => { d.spec.template.spec.containers.push({ name: 'nginx', image: 'busybox' }); }));
  t.same(dup, [{ reason: 'FieldValueDuplicate', field: 'spec.template.spec.containers[1].name', message: 'Duplicate value: "nginx"' }]);
  const cross = causesOf(ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { initContainers: [{ name: 'a', image: 'x' }], containers: [{ name: 'a', image: 'x' }] } }));
  t.same(cross, [{ reason: 'FieldValueDuplicate', field: 'spec.containers[0].name', message: 'Duplicate value: "a"' }]);
  const noContainers = causesOf(ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: {} }));
  t.same(noContainers, [{ reason: 'FieldValueRequired', field: 'spec.containers', message: 'Required value' }]);
  const port = causesOf(deploymentYaml((d) => { d.spec.template.spec.containers[0].ports = [{ containerPort: 70000, name: 'Web_Port' }]; }));
  t.ok(port.some((x) => x.field === 'spec.template.spec.containers[0].ports[0].containerPort' && x.message === 'Invalid value: 70000: must be between 1 and 65535, inclusive'));
  t.ok(port.some((x) => x.field === 'spec.template.spec.containers[0].ports[0].name' && /alpha-numeric/.test(x.message)));
  const name = causesOf(deploymentYaml((d) => { d.spec.template.spec.containers[0].name = 'Web'; }));
  t.equal(name[0].field, 'spec.template.spec.containers[0].name');
  t.match(name[0].message, /a lowercase RFC 1123 label must consist of/);
  const probe = causesOf(deploymentYaml((d) => { d.spec.template.spec.containers[0].livenessProbe = { httpGet: { port: 0 }, successThreshold: 2 }; }));
  t.same(probe.map((x) => x.field).sort(), ['spec.template.spec.containers[0].livenessProbe.httpGet.port', 'spec.template.spec.containers[0].livenessProbe.successThreshold']);
  const noHandler = causesOf(deploymentYaml((d) => { d.spec.template.spec.containers[0].readinessProbe = { periodSeconds: 5 }; }));
  t.same(noHandler, [{ reason: 'FieldValueRequired', field: 'spec.template.spec.containers[0].readinessProbe', message: 'Required value: must specify a handler type' }]);
  const env = causesOf(deploymentYaml((d) => { d.spec.template.spec.containers[0].env = [{ name: 'A=B', value: 'x' }, { name: 'C', value: 'v', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }]; }));
  t.same(env.map((x) => x.field), ['spec.template.spec.containers[0].env[0].name', 'spec.template.spec.containers[0].env[1].valueFrom']);
  const mount = causesOf(deploymentYaml((d) => { d.spec.template.spec.containers[0].volumeMounts = [{ name: 'nope', mountPath: '/x' }]; }));
  t.same(mount, [{ reason: 'FieldValueNotFound', field: 'spec.template.spec.containers[0].volumeMounts[0].name', message: 'Not found: "nope"' }]);
  const dupMount = causesOf(ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { volumes: [{ name: 'v', emptyDir: {} }], containers: [{ name: 'a', image: 'x', volumeMounts: [{ name: 'v', mountPath: '/x' }, { name: 'v', mountPath: '/x' }] }] } }));
  t.same(dupMount, [{ reason: 'FieldValueDuplicate', field: 'spec.containers[0].volumeMounts[1].mountPath', message: 'Duplicate value: "/x"' }]);
  const dupEnv = causesOf(ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'x', env: [{ name: 'A', value: '1' }, { name: 'A', value: '2' }] }] } }));
  t.same(dupEnv, [], 'duplicate env names are tolerated, as in Kubernetes');
});

t.test('quantities', async (t) => {
  const bad = causesOf(deploymentYaml((d) => { d.spec.template.spec.containers[0].resources = { limits: { memory: '1GB', cpu: '-1' }, requests: { cpu: '2' } }; }));
  t.same(bad.find((x) => x.field === 'spec.template.spec.containers[0].resources.limits[memory]'), {
    reason: 'FieldValueInvalid', field: 'spec.template.spec.containers[0].resources.limits[memory]',
    message: "Invalid value: \"1GB\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
  });
  t.ok(bad.some((x) => x.field === 'spec.template.spec.containers[0].resources.limits[cpu]' && x.message === 'Invalid value: "-1": must be greater than or equal to 0'));
  t.ok(bad.some((x) => x.field === 'spec.template.spec.containers[0].resources.requests[cpu]' && x.message === 'Invalid value: "2": must be less than or equal to cpu limit of -1'));
  const ok = causesOf(deploymentYaml((d) => { d.spec.template.spec.containers[0].resources = { limits: { cpu: 2, memory: '1.5Gi', 'ephemeral-storage': '1e9', 'nvidia.com/gpu': 1 } }; }));
  t.same(ok, []);
  const nonStandard = causesOf(deploymentYaml((d) => { d.spec.template.spec.containers[0].resources = { limits: { gpu: 1 } }; }));
  t.same(nonStandard.map((x) => x.message), ['Invalid value: "gpu": must be a standard resource type or fully qualified']);
  const pvc = causesOf(ns({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'c' }, spec: { accessModes: ['ReadWriteMany', 'Sometimes'], resources: { requests: { storage: '0' } } } }));
  t.same(pvc.map((x) => [x.field, x.reason]), [['spec.accessModes', 'FieldValueNotSupported'], ['spec.resources[storage]', 'FieldValueInvalid']]);
});

t.test('enums, ranges and cross-field rules', async (t) => {
  const enumCause = causesOf(ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { restartPolicy: 'Sometimes', containers: [{ name: 'a', image: 'x' }] } }));
  t.same(enumCause, [{ reason: 'FieldValueNotSupported', field: 'spec.restartPolicy', message: 'Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"' }]);
  const deployRestart = causesOf(deploymentYaml((d) => { d.spec.template.spec.restartPolicy = 'OnFailure'; }));
  t.same(deployRestart, [{ reason: 'FieldValueNotSupported', field: 'spec.template.spec.restartPolicy', message: 'Unsupported value: "OnFailure": supported values: "Always"' }]);
  const jobRestart = causesOf(ns({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j', uid: 'u' }, spec: { template: { spec: { containers: [{ name: 'a', image: 'x' }] } } } }));
  t.same(jobRestart, [{ reason: 'FieldValueNotSupported', field: 'spec.template.spec.restartPolicy', message: 'Unsupported value: "Always": supported values: "OnFailure", "Never"' }]);
  const replicas = causesOf(deploymentYaml((d) => { d.spec.replicas = -1; }));
  t.same(replicas, [{ reason: 'FieldValueInvalid', field: 'spec.replicas', message: 'Invalid value: -1: must be greater than or equal to 0' }]);
  const strategy = causesOf(deploymentYaml((d) => { d.spec.strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: '0%' } }; }));
  t.same(strategy, [{ reason: 'FieldValueInvalid', field: 'spec.strategy.rollingUpdate.maxUnavailable', message: 'Invalid value: "0%": may not be 0 when `maxSurge` is 0' }]);
  const percent = causesOf(deploymentYaml((d) => { d.spec.strategy = { rollingUpdate: { maxSurge: 'lots' } }; }));
  t.match(percent[0].message, /a valid percent string must be a numeric string followed by an ending '%'/);
  const recreate = causesOf(deploymentYaml((d) => { d.spec.strategy = { type: 'Recreate', rollingUpdate: { maxSurge: 1 } }; }));
  t.same(recreate, [{ reason: 'FieldValueForbidden', field: 'spec.strategy.rollingUpdate', message: "Forbidden: may not be specified when strategy `type` is 'Recreate'" }]);
  const svc = causesOf(ns({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 80 }, { port: 80, name: 'b' }, { port: 443, name: 'b', nodePort: 30000 }] } }));
  t.same(svc.map((x) => [x.field, x.reason]), [
    ['spec.ports[1]', 'FieldValueDuplicate'],
    ['spec.ports[0].name', 'FieldValueRequired'],
    ['spec.ports[2].name', 'FieldValueDuplicate'],
    ['spec.ports[2].nodePort', 'FieldValueForbidden'],
  ]);
  t.same(causesOf(ns({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: {} })), [{ reason: 'FieldValueRequired', field: 'spec.ports', message: 'Required value' }]);
  const tol = causesOf(ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'x' }], tolerations: [{ operator: 'Equal', value: 'v' }, { key: 'k', operator: 'Exists', value: 'v' }] } }));
  t.same(tol.map((x) => x.field), ['spec.tolerations[0].operator', 'spec.tolerations[1].operator']);
  const affinity = causesOf(ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'x' }], affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'k', operator: 'In' }, { key: 'k', operator: 'Exists', values: ['x'] }] }] } } } } }));
  t.same(affinity.map((x) => x.message), ["Required value: must be specified when `operator` is 'In' or 'NotIn'", "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"]);
  const hpa = causesOf(ns({ apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'h' }, spec: { scaleTargetRef: { kind: 'Deployment', name: 'web' }, minReplicas: 5, maxReplicas: 2 } }));
  t.same(hpa, [{ reason: 'FieldValueInvalid', field: 'spec.maxReplicas', message: 'Invalid value: 2: must be greater than or equal to `minReplicas`' }]);
  const lease = causesOf(ns({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l' }, spec: { leaseDurationSeconds: 0 } }));
  t.same(lease, [{ reason: 'FieldValueInvalid', field: 'spec.leaseDurationSeconds', message: 'Invalid value: 0: must be greater than 0' }]);
  const rb = causesOf(ns({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'b' }, subjects: [{ kind: 'Robot', name: 'r' }], roleRef: { kind: 'Secret', name: 'x' } }));
  t.same(rb.map((x) => x.message), ['Unsupported value: "Secret": supported values: "Role", "ClusterRole"', 'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"']);
  const crbSubject = causesOf({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'b' }, subjects: [{ kind: 'ServiceAccount', name: 'sa' }], roleRef: { kind: 'ClusterRole', name: 'x' } });
  t.same(crbSubject, [{ reason: 'FieldValueRequired', field: 'subjects[0].namespace', message: 'Required value' }]);
  const rule = causesOf(ns({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'r' }, rules: [{ verbs: [] }, { verbs: ['get'], nonResourceURLs: ['/x'] }] }));
  t.same(rule.map((x) => x.field), ['rules[0].verbs', 'rules[0].apiGroups', 'rules[0].resources', 'rules[1].nonResourceURLs']);
  const pv = causesOf({ apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'pv' }, spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: '/a' }, nfs: { server: 's', path: '/' } } });
  t.same(pv, [{ reason: 'FieldValueForbidden', field: 'spec.nfs', message: 'Forbidden: may not specify more than 1 volume type' }]);
});

t.test('selectors must match template labels', async (t) => {
  const c = causesOf(deploymentYaml((d) => { d.spec.template.metadata.labels = { app: 'other' }; }));
  t.same(c, [{
    reason: 'FieldValueInvalid', field: 'spec.template.metadata.labels',
    message: 'Invalid value: {"app":"other"}: `selector` does not match template `labels`',
  }]);
  const empty = causesOf(deploymentYaml((d) => { d.spec.selector = {}; }));
  t.same(empty, [{ reason: 'FieldValueInvalid', field: 'spec.selector', message: 'Invalid value: {}: empty selector is invalid for deployment' }]);
  const missing = causesOf(deploymentYaml((d) => { delete d.spec.selector; }));
  t.same(missing, [{ reason: 'FieldValueRequired', field: 'spec.selector', message: 'Required value' }]);
  const expr = causesOf(deploymentYaml((d) => { d.spec.selector = { matchExpressions: [{ key: 'app', operator: 'In', values: ['nginx', 'web'] }, { key: 'tier', operator: 'DoesNotExist' }] }; }));
  t.same(expr, []);
  const badOp = causesOf(deploymentYaml((d) => { d.spec.selector = { matchLabels: { app: 'nginx' }, matchExpressions: [{ key: 'app', operator: 'Like', values: ['x'] }] }; }));
  t.same(badOp.map((x) => x.message), ['Invalid value: "Like": not a valid selector operator']);
  const sts = causesOf(ns({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's' }, spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'c' } }, spec: { containers: [{ name: 'a', image: 'x' }] } } } }));
  t.equal(sts[0].message, 'Invalid value: {"a":"c"}: `selector` does not match template `labels`');
  const ds = causesOf(ns({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'd' }, spec: { selector: { matchLabels: { a: 'b' } }, template: { spec: { containers: [{ name: 'a', image: 'x' }] } } } }));
  t.equal(ds[0].field, 'spec.template.metadata.labels');
});

t.test('immutable fields on update', async (t) => {
  const dep = EXAMPLES.find((e) => e.kind === 'Deployment')!;
  t.same(update(dep, (d) => { d.spec.selector = { matchLabels: { app: 'web2' } }; d.spec.template.metadata.labels = { app: 'web2' }; }), [{
    reason: 'FieldValueInvalid', field: 'spec.selector', message: 'Invalid value: {"matchLabels":{"app":"web2"}}: field is immutable',
  }]);
  t.same(update(dep, (d) => { d.spec.replicas = 7; d.spec.template.spec.containers[0].image = 'nginx:1.28'; }), [], 'mutable fields change freely');
  const rs = EXAMPLES.find((e) => e.kind === 'ReplicaSet')!;
  t.equal(update(rs, (d) => { d.spec.selector.matchLabels.tier = 'x'; d.spec.template.metadata.labels.tier = 'x'; })[0].message, 'Invalid value: {"matchLabels":{"app":"web","tier":"x"}}: field is immutable');
  t.same(update(rs, (d) => { d.metadata.name = 'other'; }), [{ reason: 'FieldValueInvalid', field: 'metadata.name', message: 'Invalid value: "other": field is immutable' }]);

  const sts = EXAMPLES.find((e) => e.kind === 'StatefulSet')!;
  t.same(update(sts, (d) => { d.spec.serviceName = 'other'; }), [{
    reason: 'FieldValueForbidden', field: 'spec',
    message: "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
  }]);
  t.same(update(sts, (d) => { d.spec.replicas = 5; d.spec.updateStrategy = { type: 'OnDelete' }; }), []);

  const pod = EXAMPLES.find((e) => e.kind === 'Pod')!;
  t.same(update(pod, (p) => { p.spec.containers[0].image = 'nginx:1.28'; p.spec.activeDeadlineSeconds = 600; p.spec.tolerations.push({ key: 'x', operator: 'Exists' }); p.metadata.labels.extra = 'y'; }), []);
  const podChange = update(pod, (p) => { p.spec.containers[0].resources.limits.cpu = 2; });
  t.equal(podChange.length, 1);
  t.equal(podChange[0].reason, 'FieldValueForbidden');
  t.equal(podChange[0].field, 'spec');
  t.match(podChange[0].message, /^Forbidden: pod updates may not change fields other than `spec.containers\[\*\].image`,/);
  t.match(podChange[0].message, /changed: spec.containers/);
  t.same(update(pod, (p) => { p.spec.tolerations = []; }).map((x) => x.field), ['spec.tolerations']);

  const job = EXAMPLES.find((e) => e.kind === 'Job')!;
  const jobChange = update(job, (j) => { j.spec.template.spec.containers[0].image = 'perl:5.36'; });
  t.same(jobChange.map((x) => [x.field, x.reason]), [['spec.template', 'FieldValueInvalid']]);
  t.match(jobChange[0].message, /: field is immutable$/);
  t.same(update(job, (j) => { j.spec.completions = 3; }).map((x) => x.message), ['Invalid value: 3: field is immutable']);
  t.same(update(job, (j) => { j.spec.suspend = true; j.spec.template.spec.nodeSelector = { zone: 'a' }; }), [], 'scheduling directives of a suspended job that never started');

  const svc = EXAMPLES.find((e) => e.metadata?.name === 'web' && e.kind === 'Service')!;
  const withIP = { ...svc, spec: { ...(svc as any).spec, clusterIP: '10.96.0.10' } };
  t.same(update(withIP, (s) => { s.spec.clusterIP = '10.96.0.11'; }), [{ reason: 'FieldValueInvalid', field: 'spec.clusterIP', message: 'Invalid value: "10.96.0.11": field is immutable' }]);
  const carried = structuredClone(create(withIP).obj) as any;
  delete carried.spec.clusterIP;
  prepareForUpdate(kindByName('svc')!, carried, create(withIP).obj);
  t.equal(carried.spec.clusterIP, '10.96.0.10', 'prepareForUpdate carries the allocated clusterIP');

  const pvc = { ...EXAMPLES.find((e) => e.kind === 'PersistentVolumeClaim')!, status: { phase: 'Bound' } };
  const stored = create(pvc).obj as any;
  stored.status.phase = 'Bound';
  const grow = structuredClone(stored);
  grow.spec.resources.requests.storage = '2Gi';
  t.same(validateObject(kindByName('pvc')!, grow, stored), [], 'bound claims may grow');
  const shrink = structuredClone(stored);
  shrink.spec.resources.requests.storage = '500Mi';
  t.same(validateObject(kindByName('pvc')!, shrink, stored).map((x) => x.message), ['Forbidden: field can not be less than previous value']);
  const other = structuredClone(stored);
  other.spec.accessModes = ['ReadWriteMany'];
  t.same(validateObject(kindByName('pvc')!, other, stored).map((x) => x.message), ['Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims']);

  const cm = ns({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: '1' }, immutable: true });
  t.same(update(cm, (c) => { c.data.a = '2'; }), [{ reason: 'FieldValueForbidden', field: 'data', message: 'Forbidden: field is immutable when `immutable` is set' }]);
  t.same(update(cm, (c) => { c.metadata.labels = { x: 'y' }; }), []);
  const secret = EXAMPLES.find((e) => e.kind === 'Secret')!;
  t.same(update(secret, (s) => { s.type = 'kubernetes.io/basic-auth'; s.data.username = 'dQ=='; }), [{ reason: 'FieldValueInvalid', field: 'type', message: 'Invalid value: "kubernetes.io/basic-auth": field is immutable' }]);
  const rb = EXAMPLES.find((e) => e.kind === 'RoleBinding')!;
  t.same(update(rb, (b) => { b.roleRef.name = 'other'; }).map((x) => [x.field, x.message]), [['roleRef', 'Invalid value: {"kind":"Role","name":"other","apiGroup":"rbac.authorization.k8s.io"}: cannot change roleRef']]);
  const cr = EXAMPLES.find((e) => e.kind === 'ControllerRevision')!;
  t.same(update(cr, (c) => { c.data = { x: 1 }; }).map((x) => x.field), ['data']);
  const node = EXAMPLES.find((e) => e.kind === 'Node')!;
  t.same(update(node, (n) => { n.spec.podCIDR = '10.244.2.0/24'; n.spec.podCIDRs = ['10.244.2.0/24']; }).map((x) => x.field), ['spec.podCIDRs']);
  t.same(update(node, (n) => { n.spec.unschedulable = true; n.metadata.deletionTimestamp = undefined; }), []);
});

t.test('secrets, configmaps and bindings', async (t) => {
  t.same(causesOf(ns({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { key: 'not base64!' } })).map((x) => [x.field, x.message]), [
    ['data[key]', 'Invalid value: "not base64!": illegal base64 data at input byte 3'],
  ]);
  t.same(causesOf(ns({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { '../x': 'YQ==' } })).map((x) => x.field), ['data[../x]', 'data[../x]']);
  t.same(causesOf(ns({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, type: 'kubernetes.io/tls', data: { 'tls.crt': 'YQ==' } })), [{ reason: 'FieldValueRequired', field: 'data[tls.key]', message: 'Required value' }]);
  t.same(causesOf(ns({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: '1' }, binaryData: { a: 'YQ==' } })).map((x) => x.message), ['Invalid value: "a": duplicate of key present in data']);
  t.same(validateBinding({ target: { kind: 'Node', name: 'node-1' } }), []);
  t.same(validateBinding({ target: { kind: 'Pod' } }).map((x) => x.field), ['target.kind', 'target.name']);
});

// ---- defaults -----------------------------------------------------------------------------

t.test('defaulting', async (t) => {
  const pod = create(ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [
    { name: 'a', image: 'nginx', ports: [{ containerPort: 80 }], resources: { limits: { cpu: '1', memory: '1Gi' } } },
    { name: 'b', image: 'registry.local:5000/app@sha256:abcd' }, { name: 'c', image: 'registry.local:5000/app:v2' },
  ], volumes: [{ name: 'v' }, { name: 's', secret: { secretName: 's' } }] } })).obj as any;
  t.match(pod.spec, {
    restartPolicy: 'Always', dnsPolicy: 'ClusterFirst', terminationGracePeriodSeconds: 30, schedulerName: 'default-scheduler',
    securityContext: {}, enableServiceLinks: true, serviceAccountName: 'default', priority: 0,
  });
  t.same(pod.spec.containers.map((c: any) => c.imagePullPolicy), ['Always', 'IfNotPresent', 'IfNotPresent']);
  t.equal(pod.spec.containers[0].terminationMessagePath, '/dev/termination-log');
  t.equal(pod.spec.containers[0].terminationMessagePolicy, 'File');
  t.same(pod.spec.containers[0].ports, [{ containerPort: 80, protocol: 'TCP' }]);
  t.same(pod.spec.containers[0].resources.requests, { cpu: '1', memory: '1Gi' }, 'requests default to limits');
  t.same(pod.spec.volumes, [{ name: 'v', emptyDir: {} }, { name: 's', secret: { secretName: 's', defaultMode: 420 } }]);
  t.same(pod.status, { phase: 'Pending', qosClass: 'Burstable' });
  t.equal(create(EXAMPLES[1]).obj.status && (create(EXAMPLES[1]).obj as any).status.qosClass, 'Burstable');
  const guaranteed = create(ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'g' }, spec: { containers: [{ name: 'a', image: 'x', resources: { limits: { cpu: '500m', memory: '1Gi' } } }] } })).obj as any;
  t.equal(guaranteed.status.qosClass, 'Guaranteed');
  t.equal((create(ns({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'b' }, spec: { containers: [{ name: 'a', image: 'x' }] } })).obj as any).status.qosClass, 'BestEffort');

  const svc = create(ns({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 8080 }] } })).obj as any;
  t.same(svc.spec, { ports: [{ port: 8080, protocol: 'TCP', targetPort: 8080 }], type: 'ClusterIP', sessionAffinity: 'None', internalTrafficPolicy: 'Cluster' });
  const lb = create(ns({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { type: 'LoadBalancer', sessionAffinity: 'ClientIP', ports: [{ port: 80, targetPort: 'http' }] } })).obj as any;
  t.match(lb.spec, { externalTrafficPolicy: 'Cluster', allocateLoadBalancerNodePorts: true, sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } } });
  t.equal(lb.spec.ports[0].targetPort, 'http');

  const dep = create(ns({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { selector, template } })).obj as any;
  t.match(dep.spec, { replicas: 1, revisionHistoryLimit: 10, progressDeadlineSeconds: 600, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } } });
  t.equal(dep.spec.template.spec.restartPolicy, 'Always', 'pod template defaults');
  t.equal(dep.spec.template.spec.serviceAccountName, 'web');
  t.notOk('enableServiceLinks' in dep.spec.template.spec, 'pod-only defaults stay off templates');
  const recreate = create(ns({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { selector, template, strategy: { type: 'Recreate' } } })).obj as any;
  t.same(recreate.spec.strategy, { type: 'Recreate' });
  t.equal((create(ns({ apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'r' }, spec: { selector, template } })).obj as any).spec.replicas, 1);
  const sts = create(EXAMPLES.find((e) => e.kind === 'StatefulSet')!).obj as any;
  t.match(sts.spec, { podManagementPolicy: 'OrderedReady', revisionHistoryLimit: 10, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 0 } }, persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' } });
  t.match(sts.spec.volumeClaimTemplates[0], { spec: { volumeMode: 'Filesystem' }, status: { phase: 'Pending' } });
  const ds = create(EXAMPLES.find((e) => e.kind === 'DaemonSet')!).obj as any;
  t.same(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
  const job = create(EXAMPLES.find((e) => e.kind === 'Job')!).obj as any;
  t.match(job.spec, { completions: 1, parallelism: 1, backoffLimit: 4, completionMode: 'NonIndexed', suspend: false, podReplacementPolicy: 'TerminatingOrFailed' });
  t.same(job.spec.selector, { matchLabels: { 'batch.kubernetes.io/controller-uid': '0f3c-11' } });
  t.match(job.spec.template.metadata.labels, { 'job-name': 'pi', 'batch.kubernetes.io/job-name': 'pi', 'controller-uid': '0f3c-11', 'batch.kubernetes.io/controller-uid': '0f3c-11' });
  const job2 = create(ns({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j', uid: 'u' }, spec: { parallelism: 3, template: { spec: { restartPolicy: 'OnFailure', containers: [{ name: 'a', image: 'x' }] } } } })).obj as any;
  t.equal(job2.spec.completions, undefined, 'completions stay unset when parallelism is given');
  t.equal(job2.spec.backoffLimit, 6);
  t.equal((create(ns({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { user: 'admin' } })).obj as any).data.user, 'YWRtaW4=', 'stringData is merged into data');
  const secret = create(ns({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' } })).obj as any;
  t.equal(secret.type, 'Opaque');
  const pvc = create(EXAMPLES.find((e) => e.kind === 'PersistentVolumeClaim')!).obj as any;
  t.equal(pvc.spec.volumeMode, 'Filesystem');
  t.equal(pvc.status.phase, 'Pending');
  const pv = create(EXAMPLES.find((e) => e.kind === 'PersistentVolume')!).obj as any;
  t.match(pv, { spec: { persistentVolumeReclaimPolicy: 'Retain', volumeMode: 'Filesystem' }, status: { phase: 'Pending' } });
  const nsObj = create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' } }).obj as any;
  t.same(nsObj.status, { phase: 'Active' });
  t.same(nsObj.metadata.labels, { 'kubernetes.io/metadata.name': 'team-a' });
  const hpa = create(ns({ apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'h' }, spec: { scaleTargetRef: { kind: 'Deployment', name: 'web' }, maxReplicas: 3, behavior: {} } })).obj as any;
  t.equal(hpa.spec.minReplicas, 1);
  t.same(hpa.spec.metrics, [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } }]);
  t.same(hpa.spec.behavior.scaleUp, { selectPolicy: 'Max', stabilizationWindowSeconds: 0, policies: [{ type: 'Pods', value: 4, periodSeconds: 15 }, { type: 'Percent', value: 100, periodSeconds: 15 }] });
  t.same(hpa.spec.behavior.scaleDown, { selectPolicy: 'Max', policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }] });
  const crb = create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'b' }, subjects: [{ kind: 'User', name: 'u' }], roleRef: { kind: 'ClusterRole', name: 'view' } }).obj as any;
  t.equal(crb.roleRef.apiGroup, 'rbac.authorization.k8s.io');
  t.equal(crb.subjects[0].apiGroup, 'rbac.authorization.k8s.io');
  const ep = create(EXAMPLES.find((e) => e.kind === 'Endpoints')!).obj as any;
  t.equal(ep.subsets[0].ports[0].protocol, 'TCP');
});

// ---- printing ------------------------------------------------------------------------------

t.test('humanDuration matches duration.HumanDuration', async (t) => {
  const s = 1000;
  const m = 60 * s;
  const h = 60 * m;
  const d = 24 * h;
  const cases: [number, string][] = [
    [-3 * s, '<invalid>'], [-1500, '0s'], [0, '0s'], [5 * s, '5s'], [119 * s, '119s'], [2 * m, '2m'], [3 * m + 2 * s, '3m2s'],
    [9 * m + 59 * s, '9m59s'], [10 * m + 30 * s, '10m'], [179 * m, '179m'], [3 * h, '3h'], [4 * h + 30 * m, '4h30m'], [7 * h + 59 * m, '7h59m'],
    [8 * h + 5 * m, '8h'], [47 * h, '47h'], [48 * h, '2d'], [2 * d + 3 * h, '2d3h'], [7 * d + 23 * h, '7d23h'], [8 * d + 5 * h, '8d'],
    [45 * d, '45d'], [729 * d, '729d'], [730 * d, '2y'], [740 * d, '2y10d'], [8 * 365 * d, '8y'], [20 * 365 * d + 100 * d, '20y'],
  ];
  for (const [ms, want] of cases) t.equal(humanDuration(ms), want, `${ms}ms`);
});

function cells(o: KubeObject, wide = false): Record<string, unknown> {
  const k = kindOf(o);
  return Object.fromEntries(k.columns.filter((c) => wide || c.priority === 0).map((c) => [c.name, c.cell(o, NOW)]));
}

t.test('table columns like kubectl get', async (t) => {
  const pod = {
    ...create(EXAMPLES[1]).obj, metadata: { name: 'web-0', namespace: 'default', creationTimestamp: ago(3 * 60_000 + 2_000) },
    status: {
      phase: 'Running', podIP: '10.244.1.7', podIPs: [{ ip: '10.244.1.7' }],
      conditions: [{ type: 'Ready', status: 'True' }, { type: 'Initialized', status: 'True' }],
      initContainerStatuses: [{ name: 'init', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } }],
      containerStatuses: [{ name: 'web', ready: true, restartCount: 2, state: { running: { startedAt: ago(60_000) } }, lastState: { terminated: { exitCode: 1, finishedAt: ago(65_000) } } }],
    },
  } as KubeObject;
  (pod as any).spec.nodeName = 'node-1';
  t.same(cells(pod, true), { Ready: '1/1', Status: 'Running', Restarts: '2 (65s ago)', Age: '3m2s', IP: '10.244.1.7', Node: 'node-1', 'Nominated Node': '<none>', 'Readiness Gates': '<none>' });
  t.same(kindByName('pods')!.columns.map((c) => [c.name, c.priority]), [['Ready', 0], ['Status', 0], ['Restarts', 0], ['Age', 0], ['IP', 1], ['Node', 1], ['Nominated Node', 1], ['Readiness Gates', 1]]);
  const pending = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', creationTimestamp: ago(5_000) }, spec: { containers: [{ name: 'a' }, { name: 'b' }] }, status: { phase: 'Pending' } };
  t.same(cells(pending), { Ready: '0/2', Status: 'Pending', Restarts: '0', Age: '5s' });
  const crash = { ...pending, status: { phase: 'Running', containerStatuses: [{ name: 'a', ready: false, restartCount: 5, state: { waiting: { reason: 'CrashLoopBackOff' } } }] } };
  t.equal(cells(crash).Status, 'CrashLoopBackOff');
  const init = { ...pending, spec: { initContainers: [{ name: 'i' }], containers: [{ name: 'a' }] }, status: { phase: 'Pending', initContainerStatuses: [{ name: 'i', state: { running: {} } }] } };
  t.equal(cells(init).Status, 'Init:0/1');
  const done = { ...pending, status: { phase: 'Succeeded', containerStatuses: [{ name: 'a', state: { terminated: { exitCode: 0, reason: 'Completed' } } }] } };
  t.equal(cells(done).Status, 'Completed');
  const killed = { ...pending, status: { phase: 'Failed', containerStatuses: [{ name: 'a', state: { terminated: { exitCode: 137, signal: 9 } } }] } };
  t.equal(cells(killed).Status, 'Signal:9');
  t.equal(cells({ ...pending, metadata: { ...pending.metadata, deletionTimestamp: ago(0) } }).Status, 'Terminating');

  const dep = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', creationTimestamp: ago(45 * 86_400_000) }, spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template }, status: { readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2 } };
  t.same(cells(dep, true), { Ready: '2/3', 'Up-to-date': 3, Available: 2, Age: '45d', Containers: 'web', Images: 'nginx:1.27', Selector: 'app=web' });
  const rs = { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'r', creationTimestamp: ago(51 * 3_600_000) }, spec: { replicas: 3, selector: { matchLabels: { app: 'web', tier: 'fe' } }, template }, status: { replicas: 3, readyReplicas: 1 } };
  t.same(cells(rs, true), { Desired: 3, Current: 3, Ready: 1, Age: '2d3h', Containers: 'web', Images: 'nginx:1.27', Selector: 'app=web,tier=fe' });
  const sts = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's', creationTimestamp: ago(4 * 3_600_000) }, spec: { replicas: 3 }, status: { readyReplicas: 3 } };
  t.same(cells(sts), { Ready: '3/3', Age: '4h' });
  const ds = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'd', creationTimestamp: ago(0) }, spec: { template: { spec: { nodeSelector: { 'kubernetes.io/os': 'linux' } } } }, status: { desiredNumberScheduled: 3, currentNumberScheduled: 3, numberReady: 2, updatedNumberScheduled: 3, numberAvailable: 2 } };
  t.same(cells(ds), { Desired: 3, Current: 3, Ready: 2, 'Up-to-date': 3, Available: 2, 'Node Selector': 'kubernetes.io/os=linux', Age: '0s' });

  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's', creationTimestamp: ago(10_000) }, spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], selector: { app: 'web' }, ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }] } };
  t.same(cells(svc, true), { Type: 'ClusterIP', 'Cluster-IP': '10.96.0.10', 'External-IP': '<none>', 'Port(s)': '80/TCP,53/UDP', Age: '10s', Selector: 'app=web' });
  const lb = { ...svc, spec: { ...svc.spec, type: 'LoadBalancer', ports: [{ port: 80, nodePort: 30080, protocol: 'TCP' }] } };
  t.same(cells(lb)['External-IP'], '<pending>');
  t.same(cells(lb)['Port(s)'], '80:30080/TCP');
  t.same(cells({ ...lb, status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }] } } })['External-IP'], '203.0.113.7');
  t.same(cells({ ...svc, spec: { type: 'ExternalName', externalName: 'db.example.com' } }), { Type: 'ExternalName', 'Cluster-IP': '<none>', 'External-IP': 'db.example.com', 'Port(s)': '<none>', Age: '10s' });

  const node = { ...EXAMPLES.find((e) => e.kind === 'Node')!, metadata: { ...EXAMPLES.find((e) => e.kind === 'Node')!.metadata, creationTimestamp: ago(3 * 86_400_000) } };
  t.same(cells(node, true), { Status: 'Ready', Roles: 'control-plane', Age: '3d', Version: 'v1.32.0', 'Internal-IP': '192.168.1.10', 'External-IP': '<none>', 'OS-Image': 'Debian GNU/Linux 12', 'Kernel-Version': '6.1.0', 'Container-Runtime': 'flotilla://0.1' });
  t.equal(cells({ ...node, spec: { unschedulable: true }, status: { conditions: [{ type: 'Ready', status: 'Unknown' }] } }).Status, 'NotReady,SchedulingDisabled');
  t.equal(cells({ ...node, metadata: { name: 'n' }, status: {} }).Roles, '<none>');

  t.same(cells({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', creationTimestamp: ago(1000) }, data: { a: '1', b: '2' }, binaryData: { c: 'YQ==' } }), { Data: 3, Age: '1s' });
  t.same(cells({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, type: 'Opaque', data: { a: 'YQ==' } }), { Type: 'Opaque', Data: 1, Age: '<unknown>' });
  t.same(cells({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n', creationTimestamp: ago(0) }, status: { phase: 'Active' } }), { Status: 'Active', Age: '0s' });
  t.same(cells({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l', creationTimestamp: ago(0) }, spec: { holderIdentity: 'node-1' } }), { Holder: 'node-1', Age: '0s' });
  t.same(cells({ apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'e', creationTimestamp: ago(0) }, subsets: [{ addresses: [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }, { ip: '10.0.0.3' }, { ip: '10.0.0.4' }], ports: [{ port: 80 }] }] }), { Endpoints: '10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...', Age: '0s' });
  t.same(cells({ apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'e', creationTimestamp: ago(0) } }), { Endpoints: '<none>', Age: '0s' });

  const ev = EXAMPLES.find((e) => e.kind === 'Event')!;
  t.same(cells(ev, true), { 'Last Seen': '30s', Type: 'Normal', Reason: 'Pulled', Object: 'pod/web-0', Subobject: 'spec.containers{web}', Source: 'kubelet, node-1', Message: 'Pulled image', 'First Seen': '60s', Count: 2, Name: 'web-0.17a1b2c3d4e5f6a7' });
  const job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j', creationTimestamp: ago(120_000) }, spec: { completions: 3, template: { spec: { containers: [{ name: 'a', image: 'x' }] } } }, status: { succeeded: 1, startTime: ago(100_000) } };
  t.same(cells(job), { Status: 'Running', Completions: '1/3', Duration: '100s', Age: '2m' });
  t.same(cells({ ...job, status: { succeeded: 3, startTime: ago(100_000), completionTime: ago(40_000), conditions: [{ type: 'Complete', status: 'True' }] } }), { Status: 'Complete', Completions: '3/3', Duration: '60s', Age: '2m' });
  t.equal(cells({ ...job, spec: { parallelism: 2 } }).Completions, '1/1 of 2');

  const pv = { ...create(EXAMPLES.find((e) => e.kind === 'PersistentVolume')!).obj, metadata: { name: 'pv-1', creationTimestamp: ago(0) } } as any;
  pv.spec.claimRef = { namespace: 'default', name: 'data' };
  pv.status = { phase: 'Bound' };
  t.same(cells(pv, true), { Capacity: '10Gi', 'Access Modes': 'RWO', 'Reclaim Policy': 'Retain', Status: 'Bound', Claim: 'default/data', StorageClass: 'manual', VolumeAttributesClass: '<unset>', Reason: '', Age: '0s', VolumeMode: 'Filesystem' });
  const pvc = { ...create(EXAMPLES.find((e) => e.kind === 'PersistentVolumeClaim')!).obj, metadata: { name: 'data', creationTimestamp: ago(0) } } as any;
  t.same(cells(pvc), { Status: 'Pending', Volume: '', Capacity: '', 'Access Modes': '', StorageClass: 'manual', VolumeAttributesClass: '<unset>', Age: '0s' });
  pvc.spec.volumeName = 'pv-1';
  pvc.status = { phase: 'Bound', capacity: { storage: '10Gi' }, accessModes: ['ReadWriteOnce', 'ReadWriteMany'] };
  t.same(cells(pvc), { Status: 'Bound', Volume: 'pv-1', Capacity: '10Gi', 'Access Modes': 'RWO,RWX', StorageClass: 'manual', VolumeAttributesClass: '<unset>', Age: '0s' });

  const hpa = { ...create(EXAMPLES.find((e) => e.kind === 'HorizontalPodAutoscaler')!).obj, metadata: { name: 'web', creationTimestamp: ago(0) } } as any;
  t.same(cells(hpa), { Reference: 'Deployment/web', Targets: 'cpu: <unknown>/60%, memory: <unknown>/500Mi', MinPods: 2, MaxPods: 10, Replicas: 0, Age: '0s' });
  hpa.status = { currentReplicas: 3, currentMetrics: [{ type: 'Resource', resource: { name: 'cpu', current: { averageUtilization: 42 } } }] };
  t.equal(cells(hpa).Targets, 'cpu: 42%/60%, memory: <unknown>/500Mi');
  t.equal(cells(hpa).Replicas, 3);

  t.same(cells({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'r', creationTimestamp: '2024-05-06T07:08:09Z' } }), { 'Created At': '2024-05-06T07:08:09Z' });
  t.same(cells({ ...EXAMPLES.find((e) => e.kind === 'RoleBinding')!, metadata: { name: 'b', creationTimestamp: ago(0) } }, true), { Role: 'Role/pod-reader', Age: '0s', Users: 'jane', Groups: '', ServiceAccounts: 'default/web' });
  t.same(cells({ ...EXAMPLES.find((e) => e.kind === 'ControllerRevision')!, metadata: { ...EXAMPLES.find((e) => e.kind === 'ControllerRevision')!.metadata, creationTimestamp: ago(0) } }), { Controller: 'statefulset.apps/db', Revision: 1, Age: '0s' });
});

t.test('label selectors and scale', async (t) => {
  const sel = { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['fe', 'be'] }, { key: 'canary', operator: 'DoesNotExist' }, { key: 'zone', operator: 'Exists' }, { key: 'env', operator: 'NotIn', values: ['dev'] }] };
  t.equal(formatLabelSelector(sel), 'app=web,!canary,env notin (dev),tier in (be,fe),zone');
  t.equal(formatLabelSelector({}), '<none>');
  t.ok(selectorMatches(sel, { app: 'web', tier: 'fe', zone: 'a' }));
  t.notOk(selectorMatches(sel, { app: 'web', tier: 'fe', zone: 'a', canary: 'true' }));
  t.notOk(selectorMatches(sel, { app: 'web', tier: 'fe', zone: 'a', env: 'dev' }));
  t.notOk(selectorMatches(sel, { app: 'web', tier: 'db', zone: 'a' }));
  t.ok(selectorMatches({}, { any: 'thing' }), 'empty selector matches everything');
  t.notOk(selectorMatches(undefined, { any: 'thing' }), 'no selector matches nothing');
  const dep = { ...create(EXAMPLES.find((e) => e.kind === 'Deployment')!).obj, status: { replicas: 2 } } as KubeObject;
  (dep.metadata as any).uid = 'u-1';
  t.same(scaleOf(kindByName('deploy')!, dep), {
    apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: 'web', namespace: 'default', uid: 'u-1' },
    spec: { replicas: 3 }, status: { replicas: 2, selector: 'app=web' },
  });
  t.equal(scaleOf(kindByName('cm')!, EXAMPLES[6]), undefined);
});

t.test('a Pod manifest from YAML with every common field', async (t) => {
  const pod = parseYaml(`
apiVersion: v1
kind: Pod
metadata:
  name: full
  namespace: default
  labels: {app: full}
  annotations:
    prometheus.io/scrape: "true"
spec:
  hostname: full
  subdomain: svc
  hostAliases: [{ip: 127.0.0.1, hostnames: [foo.local]}]
  dnsConfig: {nameservers: [1.1.1.1], searches: [ns1.svc.cluster.local], options: [{name: ndots, value: "2"}]}
  imagePullSecrets: [{name: regcred}]
  readinessGates: [{conditionType: example.com/ready}]
  schedulingGates: [{name: example.com/wait}]
  runtimeClassName: runc
  os: {name: linux}
  shareProcessNamespace: true
  containers:
  - name: app
    image: app:v1
    workingDir: /app
    stdin: true
    tty: true
    lifecycle:
      preStop: {exec: {command: [sleep, "5"]}}
      postStart: {httpGet: {port: 8080, httpHeaders: [{name: X-Hello, value: world}]}}
    startupProbe: {grpc: {port: 9000}}
    volumeMounts: [{name: dl, mountPath: /dl, subPath: x}, {name: proj, mountPath: /proj}]
    resources: {limits: {hugepages-2Mi: 100Mi, memory: 100Mi}}
    securityContext: {privileged: false, seccompProfile: {type: RuntimeDefault}, runAsUser: 1000}
  volumes:
  - name: dl
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  - name: proj
    projected:
      sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3600}
      - configMap: {name: c, items: [{key: a, path: a}]}
  - name: eph
    ephemeral:
      volumeClaimTemplate:
        spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`) as KubeObject;
  t.same(validateSchema(kindOf(pod).schema, pod), []);
  t.same(create(pod).causes, []);
});

t.test('schema and semantic validation never report the same problem twice', async (t) => {
  // The tests above record overlaps as they validate; run on its own (tap
  // --grep) this one has seen nothing yet, so it validates a corpus of its
  // own: for every kind, bad metadata, and each top-level field of the wrong type.
  const wrong = (type: string | undefined): unknown => (type === 'string' ? { not: 'a string' } : type === 'array' ? 'not-a-list' : type === 'object' ? 42 : ['not', 'scalar']);
  const crashed: string[] = [];
  for (const k of KINDS) {
    const base: KubeObject = {
      apiVersion: apiVersionOf(k), kind: k.kind,
      metadata: { name: 'Not_A.Name!', ...(k.namespaced ? { namespace: 'Bad_NS' } : {}), labels: { 'bad key!': 'x'.repeat(70) }, annotations: { '': 'v' } },
    };
    const variants: KubeObject[] = [base];
    for (const [field, schema] of Object.entries(k.schema.properties ?? {})) {
      if (field === 'apiVersion' || field === 'kind' || field === 'metadata') continue;
      variants.push({ ...base, [field]: wrong((schema as { type?: string }).type) });
    }
    for (const v of variants) {
      try {
        validated(k, v);
      } catch (e) {
        crashed.push(`${k.kind} ${JSON.stringify(Object.keys(v))}: ${(e as Error).message}`);
      }
    }
  }
  t.ok(bothReported >= KINDS.length, `${bothReported} validations had problems reported by both the schema and the kind`);
  t.same(overlaps, []);
  t.same(crashed, [], 'no kind\'s validation throws on a badly typed object');
});
