import t from 'tap';
import { KINDS } from '../api/kinds/index.ts';
import { documentHash, openApiV2, openApiV3Document, openApiV3Hash, openApiV3Index } from '../api/schema/openapi.ts';

type J = Record<string, any>;

const CORE = '#/components/schemas/io.k8s.api.core.v1.';

/** Follows a v3 `$ref` or `allOf: [{$ref}]` to the referenced component. */
function deref(doc: J, s: J): J {
  const ref = s.$ref ?? s.allOf?.[0]?.$ref;
  if (!ref) return s;
  const name = ref.replace('#/components/schemas/', '').replace('#/definitions/', '');
  return doc.components?.schemas?.[name] ?? doc.definitions?.[name];
}

t.test('the v3 index lists one document per group-version with its content hash', async (t) => {
  const idx = openApiV3Index();
  t.same(Object.keys(idx.paths), ['api/v1', 'apis/apps/v1', 'apis/batch/v1', 'apis/coordination.k8s.io/v1', 'apis/autoscaling/v2', 'apis/rbac.authorization.k8s.io/v1', 'apis/discovery.k8s.io/v1', 'apis/storage.k8s.io/v1', 'apis/policy/v1', 'apis/networking.k8s.io/v1', 'apis/scheduling.k8s.io/v1']);
  for (const [p, { serverRelativeURL }] of Object.entries(idx.paths)) {
    const hash = openApiV3Hash(p)!;
    t.match(hash, /^[0-9A-F]{128}$/);
    t.equal(serverRelativeURL, `/openapi/v3/${p}?hash=${hash}`);
    t.equal(documentHash(openApiV3Document(p)), hash);
  }
  t.equal(openApiV3Document('/openapi/v3/apis/apps/v1?hash=abc'), openApiV3Document('apis/apps/v1'), 'prefix and query are ignored');
  t.equal(openApiV3Document('apis/extensions/v1beta1'), undefined);
});

t.test('v3 group-version documents have Kubernetes-named schemas with GVK and merge extensions', async (t) => {
  const core = openApiV3Document('api/v1') as J;
  t.equal(core.openapi, '3.0.0');
  const schemas = core.components.schemas;
  const pod = schemas['io.k8s.api.core.v1.Pod'];
  t.same(pod['x-kubernetes-group-version-kind'], [{ group: '', kind: 'Pod', version: 'v1' }]);
  t.same(schemas['io.k8s.api.core.v1.PodList']['x-kubernetes-group-version-kind'], [{ group: '', kind: 'PodList', version: 'v1' }]);
  t.equal(deref(core, pod.properties.metadata), schemas['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta']);
  t.equal(pod.properties.spec.allOf[0].$ref, `${CORE}PodSpec`);
  const spec = schemas['io.k8s.api.core.v1.PodSpec'];
  t.same(spec.required, ['containers']);
  t.match(spec.properties.containers, {
    type: 'array', items: { $ref: `${CORE}Container` },
    'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-patch-strategy': 'merge',
  });
  t.match(spec.properties.volumes, { 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-patch-strategy': 'merge,retainKeys' });
  t.match(spec.properties.tolerations, { 'x-kubernetes-list-type': 'atomic' });
  t.notOk('x-kubernetes-patch-merge-key' in spec.properties.tolerations);
  const container = schemas['io.k8s.api.core.v1.Container'];
  t.match(container.properties.ports, { 'x-kubernetes-list-map-keys': ['containerPort', 'protocol'], 'x-kubernetes-patch-merge-key': 'containerPort' });
  t.match(container.properties.env, { 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-list-type': 'map' });
  t.match(container.properties.volumeMounts, { 'x-kubernetes-patch-merge-key': 'mountPath' });
  t.same(container.properties.resources, { $ref: `${CORE}ResourceRequirements` });
  t.same(schemas['io.k8s.api.core.v1.ResourceRequirements'].properties.limits.additionalProperties, { $ref: '#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity' });
  t.same(schemas['io.k8s.api.core.v1.ContainerPort'].properties.protocol, { type: 'string', enum: ['SCTP', 'TCP', 'UDP'], default: 'TCP' });
  t.same(schemas['io.k8s.api.core.v1.HTTPGetAction'].properties.port, { $ref: '#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString' });
  t.match(schemas['io.k8s.apimachinery.pkg.util.intstr.IntOrString'], { format: 'int-or-string', 'x-kubernetes-int-or-string': true, oneOf: [{ type: 'integer' }, { type: 'string' }] });
  t.match(schemas['io.k8s.apimachinery.pkg.api.resource.Quantity'], { oneOf: [{ type: 'string' }, { type: 'number' }] });
  t.match(schemas['io.k8s.apimachinery.pkg.apis.meta.v1.Time'], { type: 'string', format: 'date-time' });
  const meta = schemas['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta'];
  t.match(meta.properties.ownerReferences, { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['uid'], 'x-kubernetes-patch-merge-key': 'uid' });
  t.match(meta.properties.finalizers, { 'x-kubernetes-list-type': 'set', 'x-kubernetes-patch-strategy': 'merge' });
  t.same(meta.properties.labels, { type: 'object', additionalProperties: { type: 'string' }, description: meta.properties.labels.description });
  t.equal(schemas['io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector']['x-kubernetes-map-type'], 'atomic');
  t.match(schemas['io.k8s.api.core.v1.ServiceSpec'].properties.ports, { 'x-kubernetes-list-map-keys': ['port', 'protocol'], 'x-kubernetes-patch-merge-key': 'port' });
  t.match(schemas['io.k8s.api.core.v1.PodStatus'].properties.conditions, { 'x-kubernetes-list-map-keys': ['type'], 'x-kubernetes-patch-merge-key': 'type' });
  t.match(schemas['io.k8s.api.core.v1.Binding'], { 'x-kubernetes-group-version-kind': [{ group: '', kind: 'Binding', version: 'v1' }] });
  t.match(schemas['io.k8s.api.core.v1.NodeSpec'].properties.taints, { 'x-kubernetes-list-type': 'atomic' });
  t.equal(schemas['io.k8s.api.apps.v1.Deployment'], undefined, 'other groups are not in api/v1');

  const apps = openApiV3Document('apis/apps/v1') as J;
  const dep = apps.components.schemas['io.k8s.api.apps.v1.Deployment'];
  t.same(dep['x-kubernetes-group-version-kind'], [{ group: 'apps', kind: 'Deployment', version: 'v1' }]);
  t.same(deref(apps, dep.properties.spec).required, ['selector', 'template']);
  t.ok(apps.components.schemas['io.k8s.api.core.v1.PodTemplateSpec'], 'referenced core schemas are included');
  t.match(apps.components.schemas['io.k8s.api.autoscaling.v1.Scale'], { 'x-kubernetes-group-version-kind': [{ group: 'autoscaling', kind: 'Scale', version: 'v1' }] });
  for (const [name, s] of Object.entries(apps.components.schemas as J)) {
    for (const [field, p] of Object.entries((s.properties ?? {}) as J)) {
      const ref = p.$ref ?? p.allOf?.[0]?.$ref ?? p.items?.$ref ?? p.additionalProperties?.$ref;
      if (ref) t.ok(deref(apps, { $ref: ref }), `${name}.${field} resolves`);
    }
  }
});

t.test('v3 paths: operations with GVK, and PATCH declaring strategic merge and fieldValidation', async (t) => {
  const apps = openApiV3Document('apis/apps/v1') as J;
  const item = apps.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}'];
  t.same(item.parameters.map((p: J) => p.name), ['namespace', 'name', 'pretty']);
  const patch = item.patch;
  t.same(patch['x-kubernetes-group-version-kind'], { group: 'apps', kind: 'Deployment', version: 'v1' });
  t.equal(patch['x-kubernetes-action'], 'patch');
  t.equal(patch.operationId, 'patchAppsV1NamespacedDeployment');
  t.ok(patch.requestBody.content['application/strategic-merge-patch+json']);
  t.ok(patch.requestBody.content['application/apply-patch+yaml']);
  t.ok(patch.parameters.some((p: J) => p.name === 'fieldValidation' && p.in === 'query'));
  t.equal(patch.responses['200'].content['application/json'].schema.$ref, '#/components/schemas/io.k8s.api.apps.v1.Deployment');
  t.ok(apps.paths['/apis/apps/v1/deployments'].get, 'list across namespaces');
  t.equal(apps.paths['/apis/apps/v1/namespaces/{namespace}/deployments'].post.operationId, 'createAppsV1NamespacedDeployment');
  t.same(apps.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale'].patch['x-kubernetes-group-version-kind'], { group: 'autoscaling', kind: 'Scale', version: 'v1' });
  t.same(apps.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status'].put['x-kubernetes-group-version-kind'], { group: 'apps', kind: 'Deployment', version: 'v1' });
  const core = openApiV3Document('api/v1') as J;
  t.ok(core.paths['/api/v1/nodes/{name}/status'].patch, 'cluster-scoped paths have no namespace');
  t.equal(core.paths['/api/v1/namespaces/{namespace}/pods/{name}/binding'].post['x-kubernetes-group-version-kind'].kind, 'Binding');
  t.equal(core.paths['/api/v1/namespaces/{namespace}/pods/{name}/log'].get.responses['200'].content['text/plain'].schema.type, 'string');
  const rbac = openApiV3Document('apis/rbac.authorization.k8s.io/v1') as J;
  t.equal(rbac.paths['/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}'].patch.operationId, 'patchRbacAuthorizationV1ClusterRole');
  // Every kind has exactly the PATCH operations kubectl looks for.
  for (const k of KINDS) {
    const doc = openApiV3Document(k.group ? `apis/${k.group}/${k.version}` : `api/${k.version}`) as J;
    const patches = Object.values(doc.paths as J).map((p: J) => p.patch).filter((op) => op?.['x-kubernetes-group-version-kind']?.kind === k.kind);
    t.ok(patches.length >= 1, `${k.kind} has PATCH operations`);
    for (const op of patches) t.ok(op.parameters.some((p: J) => p.name === 'fieldValidation'), `${k.kind} ${op.operationId} supports fieldValidation`);
  }
});

t.test('the v2 document has the same definitions, with GVK and merge keys', async (t) => {
  const v2 = openApiV2() as J;
  t.equal(v2.swagger, '2.0');
  const defs = v2.definitions;
  for (const k of KINDS) {
    const name = `io.k8s.api.${k.group ? k.group.split('.')[0] : 'core'}.${k.version}.${k.kind}`;
    t.same(defs[name]?.['x-kubernetes-group-version-kind'], [{ group: k.group, kind: k.kind, version: k.version }], name);
  }
  t.same(defs['io.k8s.api.apps.v1.Deployment'].properties.spec, { $ref: '#/definitions/io.k8s.api.apps.v1.DeploymentSpec', description: 'Specification of the desired behavior of the Deployment.' });
  t.match(defs['io.k8s.api.core.v1.PodSpec'].properties.containers, { items: { $ref: '#/definitions/io.k8s.api.core.v1.Container' }, 'x-kubernetes-patch-merge-key': 'name', 'x-kubernetes-patch-strategy': 'merge' });
  t.match(defs['io.k8s.apimachinery.pkg.util.intstr.IntOrString'], { type: 'string', format: 'int-or-string' });
  t.match(defs['io.k8s.apimachinery.pkg.api.resource.Quantity'], { type: 'string' });
  const patch = v2.paths['/api/v1/namespaces/{namespace}/pods/{name}'].patch;
  t.same(patch['x-kubernetes-group-version-kind'], { group: '', kind: 'Pod', version: 'v1' });
  t.ok(patch.consumes.includes('application/strategic-merge-patch+json'));
  t.ok(patch.parameters.some((p: J) => p.in === 'body' && p.schema.$ref === '#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch'));
  t.ok(patch.parameters.some((p: J) => p.name === 'fieldValidation' && p.in === 'query' && p.type === 'string'));
  const refs = JSON.stringify(v2).match(/#\/definitions\/[^"]+/g) ?? [];
  for (const r of new Set(refs)) t.ok(defs[r.slice('#/definitions/'.length)], `${r} resolves`);
  t.equal(JSON.stringify(v2).includes('#/components/'), false, 'no v3 references in v2');
});

t.test('documents are built once', async (t) => {
  t.equal(openApiV2(), openApiV2());
  t.equal(openApiV3Document('api/v1'), openApiV3Document('api/v1'));
});
