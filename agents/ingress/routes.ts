// Ingress routing, as networking.k8s.io/v1 defines it: which backend a
// request for (host, path) goes to, from the Ingresses this controller
// serves. Pure, so every rule is a table test.
//   - Hosts: an exact host beats a wildcard ("*.example.com" matches one
//     label: a.example.com, not example.com nor a.b.example.com); rules
//     without a host match any host.
//   - Paths: Exact matches the path exactly; Prefix matches whole path
//     elements ("/foo" matches /foo, /foo/ and /foo/bar, not /foobar);
//     ImplementationSpecific is treated as Prefix. Among the paths of the
//     most specific matching host, the longest match wins, Exact before
//     Prefix at the same length.
//   - Several Ingresses: their rules merge; at equal match the oldest
//     Ingress wins (creationTimestamp, then namespace/name), as ingress-nginx
//     does. With no match, the oldest spec.defaultBackend, else 404.

export interface ServiceBackend {
  namespace: string;
  service: string;
  /** The Service port, by number or by name. */
  port: { number?: number; name?: string };
}

export interface IngressView {
  metadata: { name: string; namespace?: string; creationTimestamp?: string; annotations?: Record<string, string> };
  spec?: {
    ingressClassName?: string;
    defaultBackend?: BackendView;
    tls?: { hosts?: string[]; secretName?: string }[];
    rules?: { host?: string; http?: { paths?: { path?: string; pathType?: string; backend?: BackendView }[] } }[];
  };
}

interface BackendView {
  service?: { name?: string; port?: { number?: number; name?: string } };
  resource?: { kind?: string; name?: string };
}

export interface Route {
  /** '' = any host. */
  host: string;
  path: string;
  exact: boolean;
  backend: ServiceBackend | { unsupported: string };
  /** The Ingress the route came from (namespace/name). */
  from: string;
  order: number;
}

export interface RouteTable {
  routes: Route[];
  defaultBackend?: Route;
}

export type Match = { route: Route } | { notFound: true };

function order(ings: IngressView[]): IngressView[] {
  const key = (i: IngressView) => `${i.metadata.creationTimestamp ?? ''}\0${i.metadata.namespace ?? ''}/${i.metadata.name}`;
  return [...ings].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function toBackend(ns: string, b: BackendView | undefined): Route['backend'] | undefined {
  if (!b) return undefined;
  if (b.service?.name) return { namespace: ns, service: b.service.name, port: { number: b.service.port?.number, name: b.service.port?.name } };
  if (b.resource) return { unsupported: `resource backend ${b.resource.kind ?? ''}/${b.resource.name ?? ''} is not supported by this controller` };
  return undefined;
}

/** Builds the table from the Ingresses to serve (already filtered by class). */
export function buildRoutes(ingresses: IngressView[]): RouteTable {
  const routes: Route[] = [];
  let defaultBackend: Route | undefined;
  order(ingresses).forEach((ing, n) => {
    const ns = ing.metadata.namespace ?? 'default';
    const from = `${ns}/${ing.metadata.name}`;
    const dflt = toBackend(ns, ing.spec?.defaultBackend);
    if (dflt && !defaultBackend) defaultBackend = { host: '', path: '/', exact: false, backend: dflt, from, order: n };
    for (const rule of ing.spec?.rules ?? []) {
      for (const p of rule.http?.paths ?? []) {
        const backend = toBackend(ns, p.backend);
        if (!backend) continue;
        const path = normalizePrefix(p.path || '/', p.pathType === 'Exact');
        routes.push({ host: (rule.host ?? '').toLowerCase(), path, exact: p.pathType === 'Exact', backend, from, order: n });
      }
    }
  });
  return { routes, defaultBackend };
}

/** A Prefix path without its trailing slash ("/" stays "/"). */
function normalizePrefix(path: string, exact: boolean): string {
  if (exact || path === '/') return path;
  return path.replace(/\/+$/, '') || '/';
}

/** Whether a Prefix `prefix` matches `path` element-wise. */
export function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path[prefix.length] === '/';
}

/** How well `host` matches a rule's host: 2 exact, 1 wildcard, 0 any host, -1 no match. */
export function hostRank(ruleHost: string, host: string): number {
  if (!ruleHost) return 0;
  if (ruleHost === host) return 2;
  if (ruleHost.startsWith('*.')) {
    const suffix = ruleHost.slice(1); // ".example.com"
    if (host.endsWith(suffix)) {
      const label = host.slice(0, host.length - suffix.length);
      if (label && !label.includes('.')) return 1;
    }
  }
  return -1;
}

/**
 * The route for a request: host without port, path without query. The host
 * is decided first, as a server block is in ingress-nginx: the most specific
 * host with any rule (exact, else wildcard, else the rules without a host)
 * owns the request, and only its paths are tried.
 */
export function match(table: RouteTable, rawHost: string, rawPath: string): Match {
  const host = rawHost.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  const path = rawPath || '/';
  let hostLevel = -1;
  for (const r of table.routes) hostLevel = Math.max(hostLevel, hostRank(r.host, host));
  let best: Route | undefined;
  for (const r of hostLevel < 0 ? [] : table.routes) {
    if (hostRank(r.host, host) !== hostLevel) continue;
    const hit = r.exact ? r.path === path : prefixMatches(r.path, path);
    if (!hit) continue;
    // The longer path, then Exact, then the older Ingress.
    const better = !best
      || r.path.length > best.path.length
      || (r.path.length === best.path.length && ((r.exact && !best.exact) || (r.exact === best.exact && r.order < best.order)));
    if (better) best = r;
  }
  if (best) return { route: best };
  if (table.defaultBackend) return { route: table.defaultBackend };
  return { notFound: true };
}

/** The TLS secret (namespace/name) for an SNI host name, from the Ingresses' tls sections (exact before wildcard, oldest first). */
export function tlsSecretFor(ingresses: IngressView[], serverName: string): string | undefined {
  const host = serverName.toLowerCase();
  let wildcard: string | undefined;
  for (const ing of order(ingresses)) {
    for (const tls of ing.spec?.tls ?? []) {
      if (!tls.secretName) continue;
      for (const h of tls.hosts ?? []) {
        const rank = hostRank(h.toLowerCase(), host);
        const secret = `${ing.metadata.namespace ?? 'default'}/${tls.secretName}`;
        if (rank === 2) return secret;
        if (rank === 1) wildcard ??= secret;
      }
    }
  }
  return wildcard;
}
