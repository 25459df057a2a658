// Turns a request path and method into what it asks for, like Kubernetes'
// RequestInfoFactory: resource, namespace, name, subresource and verb.
import { kindByResource } from '../../api/kinds/index.ts';
import type { KindDef } from '../../api/schema/types.ts';
import { errors } from '../errors.ts';
import { queryBool } from './query.ts';

/**
 * Pod subresources that stream from the node running the pod (Kubernetes'
 * "connect" verbs). They are recognised here so that a pod that exists is not
 * answered NotFound; the handlers say why they cannot be served.
 */
export const CONNECT_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface ResourceRequest {
  kind: KindDef;
  group: string;
  version: string;
  /** '' for cluster-scoped resources and for lists across all namespaces. */
  namespace: string;
  name: string;
  subresource: string;
  verb: Verb;
}

/**
 * Parses /api/v1/... and /apis/GROUP/VERSION/...; returns undefined for paths
 * that are not resource paths (discovery, healthz, ...).
 */
export function parseResourcePath(method: string, pathname: string, query: URLSearchParams): ResourceRequest | undefined {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) {
    group = '';
    version = parts[1];
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    group = parts[1];
    version = parts[2];
    rest = parts.slice(3);
  } else {
    return undefined;
  }
  let watchPath = false;
  if (rest[0] === 'watch') {
    // Deprecated /api/v1/watch/... paths, still used by some clients.
    watchPath = true;
    rest = rest.slice(1);
  }
  let namespace = '';
  if (rest[0] === 'namespaces' && rest.length >= 3 && !(rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [plural, name = '', subresource = '', ...extra] = rest;
  if (!plural || extra.length) throw errors.notFound(group, plural ?? '', name);
  const kind = kindByResource(group, version, plural);
  if (!kind) {
    throw errors.notFound(group, plural, name || plural);
  }
  if (!kind.namespaced && namespace) throw errors.notFound(group, plural, name);
  const connect = kind.kind === 'Pod' && !kind.group && CONNECT_SUBRESOURCES.has(subresource);
  if (subresource && !connect && !kind.subresources.includes(subresource as never)) {
    throw errors.notFound(group, `${plural}/${subresource}`, name);
  }

  const isWatch = watchPath || queryBool(query, 'watch');
  let verb: Verb;
  switch (method) {
    case 'GET':
    case 'HEAD':
      verb = name ? (isWatch ? 'watch' : 'get') : isWatch ? 'watch' : 'list';
      break;
    case 'POST':
      verb = 'create';
      break;
    case 'PUT':
      verb = 'update';
      break;
    case 'PATCH':
      verb = 'patch';
      break;
    case 'DELETE':
      verb = name ? 'delete' : 'deletecollection';
      break;
    default:
      throw errors.methodNotAllowed();
  }
  if (verb === 'create' && name && subresource !== 'binding' && subresource !== 'eviction' && subresource !== 'token' && !connect) throw errors.methodNotAllowed();
  if ((verb === 'update' || verb === 'patch' || verb === 'delete') && !name) throw errors.methodNotAllowed();
  return { kind, group, version, namespace, name, subresource, verb };
}
