// Keeps default/kubernetes (Service and Endpoints) matching the API servers
// the cluster has: checked every kubernetesServiceSyncMs (membership changes
// show up in GET /cluster/status, not in any watched object) and at once when
// either object changes or goes.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { KubeObject } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import {
  KUBERNETES_NAMESPACE, KUBERNETES_SERVICE, SERVICE_LABELS, apiAddresses, desiredServiceSpec, desiredSubsets,
} from './desired.ts';

const SERVICES = resolveKind('services')!;
const ENDPOINTS = resolveKind('endpoints')!;
const KEY = `${KUBERNETES_NAMESPACE}/${KUBERNETES_SERVICE}`;

type Service = KubeObject & { spec?: Record<string, unknown> };
type Endpoints = KubeObject & { subsets?: unknown[] };

export class KubernetesServiceController extends QueueController {
  private readonly services = this.ctx.informers.informer<Service>('services');
  private readonly endpoints = this.ctx.informers.informer<Endpoints>('endpoints');

  constructor(ctx: ControllerContext) {
    super(ctx, 'kubernetes-service', { workers: 1 });
    const ours = (o: KubeObject) => {
      if (o.metadata?.namespace === KUBERNETES_NAMESPACE && o.metadata?.name === KUBERNETES_SERVICE) this.enqueue(KEY);
    };
    for (const inf of [this.services, this.endpoints] as const) {
      this.handle(inf as typeof this.services, { onAdd: ours, onUpdate: (_o, n) => ours(n), onDelete: ours });
    }
  }

  override async run(signal: AbortSignal): Promise<void> {
    this.enqueue(KEY);
    const tick = setInterval(() => this.enqueue(KEY), this.ctx.config.kubernetesServiceSyncMs);
    try {
      await super.run(signal);
    } finally {
      clearInterval(tick);
    }
  }

  protected async reconcile(): Promise<void> {
    const status = await this.ctx.client.clusterStatus();
    const addrs = apiAddresses(status.members);
    await this.syncService(desiredServiceSpec(addrs));
    await this.syncEndpoints(desiredSubsets(addrs));
  }

  private async syncService(want: ReturnType<typeof desiredServiceSpec>): Promise<void> {
    const cur = this.services.get(KUBERNETES_NAMESPACE, KUBERNETES_SERVICE);
    if (!cur) {
      await this.ignoreExists(this.ctx.client.create(resourcePath(SERVICES, KUBERNETES_NAMESPACE), {
        apiVersion: 'v1', kind: 'Service', metadata: { name: KUBERNETES_SERVICE, namespace: KUBERNETES_NAMESPACE, labels: SERVICE_LABELS }, spec: want,
      }));
      return;
    }
    const spec = cur.spec ?? {};
    const same = spec.type === want.type && JSON.stringify(spec.ports) === JSON.stringify(want.ports) && !spec.selector;
    if (same) return;
    // Our fields only; the allocated clusterIP and the rest stay (resourceVersion of the cache as precondition).
    const { selector: _s, ...rest } = spec;
    await this.ctx.client.update(resourcePath(SERVICES, KUBERNETES_NAMESPACE, KUBERNETES_SERVICE), { ...cur, spec: { ...rest, ...want } });
  }

  private async syncEndpoints(subsets: ReturnType<typeof desiredSubsets>): Promise<void> {
    const cur = this.endpoints.get(KUBERNETES_NAMESPACE, KUBERNETES_SERVICE);
    if (!cur) {
      await this.ignoreExists(this.ctx.client.create(resourcePath(ENDPOINTS, KUBERNETES_NAMESPACE), {
        apiVersion: 'v1', kind: 'Endpoints', metadata: { name: KUBERNETES_SERVICE, namespace: KUBERNETES_NAMESPACE, labels: { 'endpointslice.kubernetes.io/skip-mirror': 'true' } }, subsets,
      }));
      return;
    }
    if (JSON.stringify(cur.subsets ?? []) === JSON.stringify(subsets)) return;
    await this.ctx.client.update(resourcePath(ENDPOINTS, KUBERNETES_NAMESPACE, KUBERNETES_SERVICE), { ...cur, subsets });
  }

  /** A create that finds the object there means the cache is behind: the add event brings it back. */
  private async ignoreExists(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 409) return;
      throw e;
    }
  }
}
