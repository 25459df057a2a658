// The authorization attributes of an HTTP request, like Kubernetes'
// RequestInfoFactory. Deliberately independent of the kind registry: a
// request is authorized before anyone looks up what it names, so a caller
// without rights learns 403, not whether a resource exists.
import type { Attributes } from './rules.ts';

const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

export function requestAttributes(method: string, pathname: string, query: URLSearchParams): Attributes {
  const m = method.toUpperCase();
  const parts = pathname.split('/').filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) {
    group = '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    group = parts[1];
    rest = parts.slice(3);
  } else {
    return { resourceRequest: false, verb: m === 'HEAD' ? 'get' : m.toLowerCase(), path: pathname };
  }
  let watchPath = false;
  if (rest[0] === 'watch') {
    watchPath = true;
    rest = rest.slice(1);
  }
  let namespace = '';
  if (rest[0] === 'namespaces' && rest.length >= 2) {
    namespace = rest[1];
    // /namespaces/NS/RESOURCE... names a namespaced resource; /namespaces/NS[/status] the namespace itself.
    if (rest.length > 2 && !NAMESPACE_SUBRESOURCES.has(rest[2])) rest = rest.slice(2);
  }
  const [resource = '', name = '', subresource = ''] = rest;
  const watch = watchPath || query.get('watch') === 'true' || query.get('watch') === '1';
  let verb: string;
  switch (m) {
    case 'GET': case 'HEAD': verb = watch ? 'watch' : name ? 'get' : 'list'; break;
    case 'POST': verb = 'create'; break;
    case 'PUT': verb = 'update'; break;
    case 'PATCH': verb = 'patch'; break;
    case 'DELETE': verb = name ? 'delete' : 'deletecollection'; break;
    default: verb = m.toLowerCase();
  }
  const fieldSelector = verb === 'list' || verb === 'watch' ? query.get('fieldSelector') ?? undefined : undefined;
  return { resourceRequest: true, verb, apiGroup: group, resource, subresource, namespace, name, ...(fieldSelector ? { fieldSelector } : {}) };
}
