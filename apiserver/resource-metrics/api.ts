// metrics.k8s.io/v1beta1: PodMetrics and NodeMetrics (get and list, label
// selectors), built from the latest reports joined with the pods and nodes the
// store holds (their labels select them; a deleted pod has no metrics).
import { METRICS_GROUP, METRICS_VERSION } from '../../api/metrics.ts';
import { type LabelRequirement, matchesLabels, parseLabelSelector } from '../../api/selectors.ts';
import type { KubeObject } from '../../api/schema/types.ts';
import { resourceKey } from '../command.ts';
import { ApiError, errors } from '../errors.ts';
import type { ObjectStore } from '../store.ts';
import type { ResourceMetricsCache } from './cache.ts';

const GV = `${METRICS_GROUP}/${METRICS_VERSION}`;
const PREFIX = `/apis/${METRICS_GROUP}`;

/** The resources of metrics.k8s.io/v1beta1, for discovery. */
export const RESOURCE_METRICS_RESOURCES = [
  { name: 'nodes', singularName: '', namespaced: false, kind: 'NodeMetrics', verbs: ['get', 'list'] },
  { name: 'pods', singularName: '', namespaced: true, kind: 'PodMetrics', verbs: ['get', 'list'] },
];

export function resourceMetricsGroup(): Record<string, unknown> {
  const v = { groupVersion: GV, version: METRICS_VERSION };
  return { name: METRICS_GROUP, versions: [v], preferredVersion: v };
}

export function resourceMetricsResourceList(): Record<string, unknown> {
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: GV, resources: RESOURCE_METRICS_RESOURCES };
}

/** Whether this path belongs to metrics.k8s.io (served here, not by the kind registry). */
export function isResourceMetricsPath(pathname: string): boolean {
  return pathname === PREFIX || pathname.startsWith(`${PREFIX}/`);
}

type Target = { resource: 'pods' | 'nodes'; namespace?: string; name?: string };

/** The resource, namespace and name a metrics path designates; NotFound for anything else. */
export function parseMetricsPath(pathname: string): Target | 'group' | 'version' {
  const parts = pathname.replace(/\/+$/, '').split('/').filter(Boolean).map(decodeURIComponent);
  // ['apis', 'metrics.k8s.io', 'v1beta1', ...]
  if (parts.length === 2) return 'group';
  if (parts[2] !== METRICS_VERSION) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${pathname})`);
  const rest = parts.slice(3);
  if (!rest.length) return 'version';
  if (rest[0] === 'namespaces' && rest.length >= 3 && rest[2] === 'pods' && rest.length <= 4) {
    return { resource: 'pods', namespace: rest[1], name: rest[3] };
  }
  if ((rest[0] === 'pods' || rest[0] === 'nodes') && rest.length <= 2) {
    if (rest[0] === 'pods' && rest[1]) throw new ApiError(404, 'NotFound', 'a pod\'s metrics are at /namespaces/NAMESPACE/pods/NAME');
    return { resource: rest[0], name: rest[1] };
  }
  throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${pathname})`);
}

export class ResourceMetricsApi {
  constructor(private readonly cache: ResourceMetricsCache, private readonly store: ObjectStore) {}

  /** The answer to GET `pathname?query`; a Status error otherwise. */
  respond(method: string, pathname: string, query: URLSearchParams): Record<string, unknown> {
    if (method !== 'GET' && method !== 'HEAD') throw errors.methodNotAllowed();
    const t = parseMetricsPath(pathname);
    if (t === 'group') return { kind: 'APIGroup', apiVersion: 'v1', ...resourceMetricsGroup() };
    if (t === 'version') return resourceMetricsResourceList();
    let selector: LabelRequirement[];
    try {
      selector = parseLabelSelector(query.get('labelSelector') ?? '');
    } catch (e) {
      throw errors.badRequest(`invalid labelSelector: ${(e as Error).message}`);
    }
    if (query.get('watch') === 'true' || query.get('watch') === '1') throw errors.methodNotAllowed();
    const items = t.resource === 'pods' ? this.podMetrics(t.namespace, t.name, selector) : this.nodeMetrics(t.name, selector);
    if (t.name) {
      if (!items.length) throw errors.notFound(METRICS_GROUP, t.resource, t.name);
      return items[0];
    }
    return { kind: t.resource === 'pods' ? 'PodMetricsList' : 'NodeMetricsList', apiVersion: GV, metadata: {}, items };
  }

  private podMetrics(namespace: string | undefined, name: string | undefined, selector: LabelRequirement[]): KubeObject[] {
    const out: KubeObject[] = [];
    for (const pod of this.objects('pods', namespace, name)) {
      const m = pod.metadata ?? {};
      if (!matchesLabels(selector, m.labels)) continue;
      const s = this.cache.pod(String(m.namespace), String(m.name));
      if (!s) continue;
      out.push({
        kind: 'PodMetrics', apiVersion: GV,
        metadata: { name: m.name, namespace: m.namespace, labels: m.labels ?? {}, creationTimestamp: new Date().toISOString() },
        timestamp: s.timestamp, window: s.window,
        containers: s.containers.map((c) => ({ name: c.name, usage: { ...c.usage } })),
      });
    }
    return out;
  }

  private nodeMetrics(name: string | undefined, selector: LabelRequirement[]): KubeObject[] {
    const out: KubeObject[] = [];
    for (const node of this.objects('nodes', undefined, name)) {
      const m = node.metadata ?? {};
      if (!matchesLabels(selector, m.labels)) continue;
      const s = this.cache.node(String(m.name));
      if (!s) continue;
      out.push({
        kind: 'NodeMetrics', apiVersion: GV,
        metadata: { name: m.name, labels: m.labels ?? {}, creationTimestamp: new Date().toISOString() },
        timestamp: s.timestamp, window: s.window, usage: { ...s.usage },
      });
    }
    return out;
  }

  private objects(plural: string, namespace: string | undefined, name: string | undefined): KubeObject[] {
    const res = resourceKey('', plural);
    if (name) {
      const o = this.store.get(res, namespace ?? '', name);
      return o ? [JSON.parse(o.json) as KubeObject] : [];
    }
    return this.store.list(res, namespace).map(({ obj }) => JSON.parse(obj.json) as KubeObject);
  }
}
