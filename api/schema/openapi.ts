// OpenAPI documents generated from the kind registry, shaped like the ones
// kube-apiserver serves:
//  - /openapi/v3: an index of one document per group-version, each with
//    `components.schemas` named like Kubernetes' (io.k8s.api.core.v1.Pod...)
//    and `paths` whose operations carry x-kubernetes-group-version-kind.
//    kubectl reads these for `explain`, for client-side apply's strategic merge
//    patch (patch strategies and merge keys), and to learn that the server
//    validates fields itself (the fieldValidation query parameter of PATCH).
//  - /openapi/v2: one swagger 2.0 document with `definitions` named the same way.
// Everything here is pure; documents are built once and cached.

import { createHash } from 'node:crypto';
import { BINDING_SCHEMA as BINDING } from '../kinds/core.ts';
import { KINDS } from '../kinds/index.ts';
import { canonicalSchema, schemaName } from './dsl.ts';
import { ListMeta, Scale, definitionName } from './meta.ts';
import type { KindDef, Schema } from './types.ts';

type Json = Record<string, unknown>;
type Version = 2 | 3;

export const OPENAPI_INFO = { title: 'Kubernetes', version: 'v1.32.0' };

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';

/** Bodies of the named scalar types (their use sites only carry a description). */
function scalarDefinition(name: string, v: Version): Json | undefined {
  switch (name) {
    case INT_OR_STRING:
      return v === 3
        ? { description: 'IntOrString is a type that can hold an int32 or a string.', format: 'int-or-string', oneOf: [{ type: 'integer' }, { type: 'string' }], 'x-kubernetes-int-or-string': true }
        : { description: 'IntOrString is a type that can hold an int32 or a string.', type: 'string', format: 'int-or-string' };
    case QUANTITY:
      return v === 3
        ? { description: 'Quantity is a fixed-point representation of a number, e.g. "100m", "1Gi".', oneOf: [{ type: 'string' }, { type: 'number' }] }
        : { description: 'Quantity is a fixed-point representation of a number, e.g. "100m", "1Gi".', type: 'string' };
    case `${META}.Time`:
      return { description: 'Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON.', type: 'string', format: 'date-time' };
    case `${META}.MicroTime`:
      return { description: 'MicroTime is version of Time with microsecond level precision.', type: 'string', format: 'date-time' };
    case `${META}.FieldsV1`:
      return { description: 'FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format.', type: 'object' };
  }
  return undefined;
}

const PATCH_DEFINITION = { description: 'Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.', type: 'object' };

/** Converts schemas, collecting named ones as definitions. */
class Converter {
  readonly defs: Record<string, Json> = {};
  constructor(readonly v: Version) {}

  ref(name: string): Json {
    return { $ref: this.v === 3 ? `#/components/schemas/${name}` : `#/definitions/${name}` };
  }

  /** A use site of `s`: a reference for named schemas, else the inline schema. */
  use(s: Schema): Json {
    const name = s.type === 'int-or-string' ? INT_OR_STRING : s.type === 'quantity' ? QUANTITY : schemaName(s);
    if (!name) return this.body(s);
    const scalar = scalarDefinition(name, this.v);
    const canonical = scalar ? undefined : (canonicalSchema(name) ?? s);
    if (!(name in this.defs)) {
      this.defs[name] = {}; // placeholder against recursion
      this.defs[name] = scalar ?? this.body(canonical!);
    }
    // A field's own description (one that is not the type's) goes beside the reference, as Kubernetes does.
    const description = s.description && s.description !== canonical?.description ? s.description : undefined;
    if (!description) return this.ref(name);
    return this.v === 3 ? { allOf: [this.ref(name)], description } : { ...this.ref(name), description };
  }

  /** Registers a schema under a given name (kind schemas and lists). */
  define(name: string, body: Json): void {
    this.defs[name] = body;
  }

  body(s: Schema): Json {
    const out: Json = {};
    if (s.description) out.description = s.description;
    switch (s.type) {
      case 'string':
        out.type = 'string';
        if (s.format === 'date-time' || s.format === 'byte') out.format = s.format;
        if (s.enum) out.enum = s.enum;
        if (s.pattern) out.pattern = s.pattern;
        if (s.maxLength !== undefined) out.maxLength = s.maxLength;
        if (s.default !== undefined) out.default = s.default;
        return out;
      case 'integer':
      case 'number':
        out.type = s.type;
        out.format = s.type === 'integer' ? (s.format ?? 'int32') : 'double';
        if (s.minimum !== undefined) out.minimum = s.minimum;
        if (s.maximum !== undefined) out.maximum = s.maximum;
        if ('default' in s && s.default !== undefined) out.default = s.default;
        return out;
      case 'boolean':
        out.type = 'boolean';
        if (s.default !== undefined) out.default = s.default;
        return out;
      case 'int-or-string':
      case 'quantity':
        return this.use(s);
      case 'any':
        out.type = 'object';
        out['x-kubernetes-preserve-unknown-fields'] = true;
        return out;
      case 'object': {
        out.type = 'object';
        if (s.properties) {
          out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, p]) => [k, this.use(p)]));
          if (s.required?.length) out.required = s.required;
        }
        if (s.additionalProperties) out.additionalProperties = this.use(s.additionalProperties);
        if (s.mapType) out['x-kubernetes-map-type'] = s.mapType;
        return out;
      }
      case 'array': {
        out.type = 'array';
        out.items = this.use(s.items);
        if (s.listType) out['x-kubernetes-list-type'] = s.listType;
        if (s.listType === 'map') out['x-kubernetes-list-map-keys'] = s.listMapKeys ?? (s.mergeKey ? [s.mergeKey] : []);
        if (s.mergeKey) out['x-kubernetes-patch-merge-key'] = s.mergeKey;
        if (s.patchStrategy) out['x-kubernetes-patch-strategy'] = s.patchStrategy;
        return out;
      }
    }
  }
}

// ---- helpers over the registry ----------------------------------------------------------

const gvPath = (group: string, version: string) => (group ? `apis/${group}/${version}` : `api/${version}`);
const gvkOf = (group: string, version: string, kind: string) => ({ group, kind, version });

/** Group-versions served, in registry order. */
function groupVersions(): { group: string; version: string; kinds: KindDef[] }[] {
  const out: { group: string; version: string; kinds: KindDef[] }[] = [];
  for (const k of KINDS) {
    let gv = out.find((g) => g.group === k.group && g.version === k.version);
    if (!gv) out.push((gv = { group: k.group, version: k.version, kinds: [] }));
    gv.kinds.push(k);
  }
  return out;
}

const pascal = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** "listAppsV1NamespacedDeployment"-style operation ids. */
function operationId(verb: string, k: KindDef, namespaced: boolean, suffix = ''): string {
  const group = k.group ? k.group.replace(/\.k8s\.io$/, '').split('.').map(pascal).join('') : 'Core';
  return `${verb}${group}${pascal(k.version)}${namespaced ? 'Namespaced' : ''}${k.kind}${suffix}`;
}

/** Adds the kind and its List to the converter's definitions. */
function defineKind(c: Converter, k: KindDef): void {
  const name = definitionName(k.group, k.version, k.kind);
  const gvk = [gvkOf(k.group, k.version, k.kind)];
  c.define(name, { ...c.body(k.schema), 'x-kubernetes-group-version-kind': gvk });
  c.define(`${name}List`, {
    description: `${k.listKind} is a list of ${k.kind} objects.`,
    type: 'object',
    required: ['items'],
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object.' },
      kind: { type: 'string', description: 'Kind is a string value representing the REST resource this object represents.' },
      metadata: c.use(ListMeta),
      items: { type: 'array', items: c.ref(name), description: `List of ${k.plural}.` },
    },
    'x-kubernetes-group-version-kind': [gvkOf(k.group, k.version, k.listKind)],
  });
}

/** The sub-schemas and GVK of a subresource's object (Scale, Binding) or of the kind itself. */
function subresourceObject(k: KindDef, sub: string): { name: string; gvk: Json } {
  if (sub === 'scale') return { name: 'io.k8s.api.autoscaling.v1.Scale', gvk: gvkOf('autoscaling', 'v1', 'Scale') };
  if (sub === 'binding') return { name: 'io.k8s.api.core.v1.Binding', gvk: gvkOf('', 'v1', 'Binding') };
  return { name: definitionName(k.group, k.version, k.kind), gvk: gvkOf(k.group, k.version, k.kind) };
}

interface Operation {
  method: 'get' | 'put' | 'post' | 'patch' | 'delete';
  action: string;
  id: string;
  description: string;
  /** Definition name of the request body (put/post/patch). */
  body?: string;
  /** Definition name of the 200/201 response; 'string' for logs; none for deletes. */
  response?: string;
  gvk: Json;
  query: string[];
}

interface PathItem {
  path: string;
  params: string[];
  ops: Operation[];
}

const QUERY: Record<string, { type: string; description: string }> = {
  pretty: { type: 'string', description: "If 'true', then the output is pretty printed." },
  dryRun: { type: 'string', description: 'When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed' },
  fieldManager: { type: 'string', description: 'fieldManager is a name associated with the actor or entity that is making these changes.' },
  fieldValidation: { type: 'string', description: 'fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.' },
  force: { type: 'boolean', description: 'Force is going to "force" Apply requests. It means user will re-acquire conflicting fields owned by other people.' },
  labelSelector: { type: 'string', description: 'A selector to restrict the list of returned objects by their labels. Defaults to everything.' },
  fieldSelector: { type: 'string', description: 'A selector to restrict the list of returned objects by their fields. Defaults to everything.' },
  limit: { type: 'integer', description: 'limit is a maximum number of responses to return for a list call.' },
  continue: { type: 'string', description: 'The continue option should be set when retrieving more results from the server.' },
  resourceVersion: { type: 'string', description: 'resourceVersion sets a constraint on what resource versions a request may be served from.' },
  resourceVersionMatch: { type: 'string', description: 'resourceVersionMatch determines how resourceVersion is applied to list calls.' },
  timeoutSeconds: { type: 'integer', description: 'Timeout for the list/watch call.' },
  watch: { type: 'boolean', description: 'Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.' },
  allowWatchBookmarks: { type: 'boolean', description: 'allowWatchBookmarks requests watch events with type "BOOKMARK".' },
  sendInitialEvents: { type: 'boolean', description: 'sendInitialEvents=true may be set together with watch=true.' },
  gracePeriodSeconds: { type: 'integer', description: 'The duration in seconds before the object should be deleted.' },
  propagationPolicy: { type: 'string', description: "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'." },
  orphanDependents: { type: 'boolean', description: 'Deprecated: please use the PropagationPolicy.' },
  container: { type: 'string', description: 'The container for which to stream logs.' },
  follow: { type: 'boolean', description: 'Follow the log stream of the pod.' },
  previous: { type: 'boolean', description: 'Return previous terminated container logs.' },
  tailLines: { type: 'integer', description: 'If set, the number of lines from the end of the logs to show.' },
  sinceSeconds: { type: 'integer', description: 'A relative time in seconds before the current time from which to show logs.' },
  timestamps: { type: 'boolean', description: 'If true, add an RFC3339 timestamp at the beginning of every line of log output.' },
};

const LIST_QUERY = ['allowWatchBookmarks', 'continue', 'fieldSelector', 'labelSelector', 'limit', 'resourceVersion', 'resourceVersionMatch', 'sendInitialEvents', 'timeoutSeconds', 'watch'];
const WRITE_QUERY = ['dryRun', 'fieldManager', 'fieldValidation'];
const DELETE_QUERY = ['dryRun', 'gracePeriodSeconds', 'orphanDependents', 'propagationPolicy'];

/** The REST paths of one kind and its subresources. */
function pathItems(k: KindDef): PathItem[] {
  const base = `/${gvPath(k.group, k.version)}`;
  const ns = k.namespaced;
  const collection = ns ? `${base}/namespaces/{namespace}/${k.plural}` : `${base}/${k.plural}`;
  const nsParams = ns ? ['namespace'] : [];
  const self = subresourceObject(k, '');
  const list = `${self.name}List`;
  const items: PathItem[] = [
    {
      path: collection,
      params: nsParams,
      ops: [
        { method: 'get', action: 'list', id: operationId('list', k, ns), description: `list or watch objects of kind ${k.kind}`, response: list, gvk: self.gvk, query: LIST_QUERY },
        { method: 'post', action: 'post', id: operationId('create', k, ns), description: `create a ${k.kind}`, body: self.name, response: self.name, gvk: self.gvk, query: WRITE_QUERY },
        { method: 'delete', action: 'deletecollection', id: operationId('deleteCollection', k, ns), description: `delete collection of ${k.kind}`, gvk: self.gvk, query: [...DELETE_QUERY, ...LIST_QUERY] },
      ],
    },
    {
      path: `${collection}/{name}`,
      params: [...nsParams, 'name'],
      ops: [
        { method: 'get', action: 'get', id: operationId('read', k, ns), description: `read the specified ${k.kind}`, response: self.name, gvk: self.gvk, query: [] },
        { method: 'put', action: 'put', id: operationId('replace', k, ns), description: `replace the specified ${k.kind}`, body: self.name, response: self.name, gvk: self.gvk, query: WRITE_QUERY },
        { method: 'patch', action: 'patch', id: operationId('patch', k, ns), description: `partially update the specified ${k.kind}`, body: `${META}.Patch`, response: self.name, gvk: self.gvk, query: [...WRITE_QUERY, 'force'] },
        { method: 'delete', action: 'delete', id: operationId('delete', k, ns), description: `delete a ${k.kind}`, gvk: self.gvk, query: DELETE_QUERY },
      ],
    },
  ];
  if (ns) {
    items.push({
      path: `${base}/${k.plural}`,
      params: [],
      ops: [{ method: 'get', action: 'list', id: operationId('list', k, false, 'ForAllNamespaces'), description: `list or watch objects of kind ${k.kind}`, response: list, gvk: self.gvk, query: LIST_QUERY }],
    });
  }
  for (const sub of k.subresources) {
    const suffix = pascal(sub);
    const path = `${collection}/{name}/${sub}`;
    const params = [...nsParams, 'name'];
    const obj = subresourceObject(k, sub === 'status' ? '' : sub);
    if (sub === 'status' || sub === 'scale') {
      items.push({
        path, params, ops: [
          { method: 'get', action: 'get', id: operationId('read', k, ns, suffix), description: `read ${sub} of the specified ${k.kind}`, response: obj.name, gvk: obj.gvk, query: [] },
          { method: 'put', action: 'put', id: operationId('replace', k, ns, suffix), description: `replace ${sub} of the specified ${k.kind}`, body: obj.name, response: obj.name, gvk: obj.gvk, query: WRITE_QUERY },
          { method: 'patch', action: 'patch', id: operationId('patch', k, ns, suffix), description: `partially update ${sub} of the specified ${k.kind}`, body: `${META}.Patch`, response: obj.name, gvk: obj.gvk, query: [...WRITE_QUERY, 'force'] },
        ],
      });
    } else if (sub === 'binding') {
      items.push({
        path, params, ops: [
          { method: 'post', action: 'post', id: operationId('create', k, ns, suffix), description: `create binding of a ${k.kind}`, body: obj.name, response: obj.name, gvk: obj.gvk, query: WRITE_QUERY },
        ],
      });
    } else if (sub === 'log') {
      items.push({
        path, params, ops: [
          { method: 'get', action: 'get', id: operationId('read', k, ns, 'Log'), description: `read log of the specified ${k.kind}`, response: 'string', gvk: self.gvk, query: ['container', 'follow', 'previous', 'sinceSeconds', 'tailLines', 'timestamps'] },
        ],
      });
    }
  }
  return items;
}

const PATCH_TYPES = ['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'];

function pathParam(name: string, v: Version): Json {
  const description = name === 'namespace' ? 'object name and auth scope, such as for teams and projects' : 'name of the resource';
  return v === 3
    ? { name, in: 'path', required: true, description, schema: { type: 'string', uniqueItems: true } }
    : { name, in: 'path', required: true, description, type: 'string', uniqueItems: true };
}

function queryParam(name: string, v: Version): Json {
  const q = QUERY[name];
  return v === 3
    ? { name, in: 'query', description: q.description, schema: { type: q.type, uniqueItems: true } }
    : { name, in: 'query', description: q.description, type: q.type, uniqueItems: true };
}

function operation(c: Converter, op: Operation, tag: string): Json {
  const v = c.v;
  const out: Json = { description: op.description, operationId: op.id, tags: [tag] };
  const params = op.query.map((q) => queryParam(q, v));
  const bodyTypes = op.method === 'patch' ? PATCH_TYPES : ['*/*'];
  if (op.body && v === 2) params.unshift({ name: 'body', in: 'body', required: true, schema: c.ref(op.body) });
  if (params.length) out.parameters = params;
  if (op.body && v === 3) {
    out.requestBody = { required: true, content: Object.fromEntries(bodyTypes.map((t) => [t, { schema: c.ref(op.body!) }])) };
  }
  if (v === 2) {
    out.consumes = op.method === 'patch' ? PATCH_TYPES : ['*/*'];
    out.produces = op.response === 'string' ? ['text/plain', 'application/json'] : ['application/json', 'application/yaml'];
    out.schemes = ['https'];
  }
  const responseSchema = op.response === 'string' ? { type: 'string' } : op.response ? c.ref(op.response) : c.ref(`${META}.Status`);
  const ok = v === 3
    ? { description: 'OK', content: { [op.response === 'string' ? 'text/plain' : 'application/json']: { schema: responseSchema } } }
    : { description: 'OK', schema: responseSchema };
  const responses: Json = { 200: ok, 401: { description: 'Unauthorized' } };
  if (op.method === 'post' || op.method === 'put' || op.method === 'patch') responses[201] = { ...ok, description: 'Created' };
  out.responses = responses;
  out['x-kubernetes-action'] = op.action;
  out['x-kubernetes-group-version-kind'] = op.gvk;
  return out;
}

/** Supporting meta definitions referenced by operations. */
function defineSupport(c: Converter, kinds: KindDef[]): void {
  c.define(`${META}.Patch`, PATCH_DEFINITION);
  c.define(`${META}.Status`, {
    description: 'Status is a return value for calls that don\'t return other objects.',
    type: 'object',
    properties: {
      apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: c.use(ListMeta),
      status: { type: 'string' }, message: { type: 'string' }, reason: { type: 'string' },
      details: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }, code: { type: 'integer', format: 'int32' },
    },
    'x-kubernetes-group-version-kind': [gvkOf('', 'v1', 'Status')],
  });
  if (kinds.some((k) => k.subresources.includes('scale'))) {
    c.define('io.k8s.api.autoscaling.v1.Scale', { ...c.body(Scale), 'x-kubernetes-group-version-kind': [gvkOf('autoscaling', 'v1', 'Scale')] });
  }
  if (kinds.some((k) => k.subresources.includes('binding'))) {
    c.define('io.k8s.api.core.v1.Binding', { ...c.body(BINDING), 'x-kubernetes-group-version-kind': [gvkOf('', 'v1', 'Binding')] });
  }
}

/** The paths object of `kinds` (v2 or v3 operations). */
function paths(c: Converter, kinds: KindDef[]): Json {
  const out: Json = {};
  for (const k of kinds) {
    const tag = `${k.group ? k.group.replace(/\.k8s\.io$/, '').replace(/\./g, '_') : 'core'}_${k.version}`;
    for (const item of pathItems(k)) {
      const entry: Json = { parameters: [...item.params.map((p) => pathParam(p, c.v)), queryParam('pretty', c.v)] };
      for (const op of item.ops) entry[op.method] = operation(c, op, tag);
      out[item.path] = entry;
    }
  }
  return out;
}

const sortKeys = (o: Record<string, Json>) => Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));

const BEARER = { BearerToken: { type: 'apiKey', in: 'header', name: 'authorization', description: 'Bearer Token authentication' } };

/** A v3 document of one group-version's kinds, or the v2 document of all kinds. */
function build(v: Version, kinds: KindDef[]): Json {
  const c = new Converter(v);
  for (const k of kinds) defineKind(c, k);
  defineSupport(c, kinds);
  const p = paths(c, kinds);
  const defs = sortKeys(c.defs);
  const security = [{ BearerToken: [] }];
  return v === 3
    ? { openapi: '3.0.0', info: { ...OPENAPI_INFO }, paths: p, components: { schemas: defs, securitySchemes: BEARER }, security }
    : { swagger: '2.0', info: { ...OPENAPI_INFO }, paths: p, definitions: defs, securityDefinitions: BEARER, security };
}

// ---- public API ---------------------------------------------------------------------------

let v3Docs: Map<string, { doc: Json; hash: string }> | undefined;
let v2Doc: Json | undefined;

/** The content hash kube-apiserver puts in serverRelativeURL (SHA-512, upper-case hex). */
export function documentHash(doc: unknown): string {
  return createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase();
}

function v3(): Map<string, { doc: Json; hash: string }> {
  if (!v3Docs) {
    v3Docs = new Map();
    for (const gv of groupVersions()) {
      const doc = build(3, gv.kinds);
      v3Docs.set(gvPath(gv.group, gv.version), { doc, hash: documentHash(doc) });
    }
  }
  return v3Docs;
}

/** The body of GET /openapi/v3: `{paths: {"api/v1": {serverRelativeURL: "/openapi/v3/api/v1?hash=…"}, …}}`. */
export function openApiV3Index(): { paths: Record<string, { serverRelativeURL: string }> } {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const [p, { hash }] of v3()) paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hash}` };
  return { paths };
}

/** The document of one group-version ("api/v1", "apis/apps/v1"; a leading slash or query is ignored); undefined when not served. */
export function openApiV3Document(path: string): Json | undefined {
  const key = path.replace(/^\/+/, '').replace(/^openapi\/v3\//, '').replace(/[?#].*$/, '').replace(/\/+$/, '');
  return v3().get(key)?.doc;
}

/** The content hash of a group-version document (for ETag / Cache-Control: immutable when the request's hash matches). */
export function openApiV3Hash(path: string): string | undefined {
  const key = path.replace(/^\/+/, '').replace(/^openapi\/v3\//, '').replace(/[?#].*$/, '').replace(/\/+$/, '');
  return v3().get(key)?.hash;
}

/** The body of GET /openapi/v2 (swagger 2.0, JSON). */
export function openApiV2(): Json {
  v2Doc ??= build(2, KINDS);
  return v2Doc;
}

/** The definition name of a kind ("io.k8s.api.apps.v1.Deployment"). */
export function kindDefinitionName(k: Pick<KindDef, 'group' | 'version' | 'kind'>): string {
  return definitionName(k.group, k.version, k.kind);
}

