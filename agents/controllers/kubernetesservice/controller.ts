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
  KUBERNETES_NAMESPACE, KUBERNETES_SERVICE, SERVICE_LABELS, SLICE_MANAGER, apiAddresses, desiredServiceSpec, desiredSlices, desiredSubsets,
} from './desired.ts';

const SERVICES = resolveKind('services')!;
const ENDPOINTS = resolveKind('endpoints')!;
const SLICES = resolveKind('endpointslices')!;
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
const KEY = `${KUBERNETES_NAMESPACE}/${KUBERNETES_SERVICE}`;

type Service = KubeObject & { spec?: Record<string, unknown> };
type Endpoints = KubeObject & { subsets?: unknown[] };
type Slice = KubeObject & { addressType?: string; endpoints?: unknown[]; ports?: unknown[] };

export class KubernetesServiceController extends QueueController {
  private readonly services = this.ctx.informers.informer<Service>('services');
  private readonly endpoints = this.ctx.informers.informer<Endpoints>('endpoints');
  private readonly slices = this.ctx.informers.informer<Slice>('endpointslices');

  constructor(ctx: ControllerContext) {
    super(ctx, 'kubernetes-service', { workers: 1 });
    const ours = (o: KubeObject) => {
      if (o.metadata?.namespace === KUBERNETES_NAMESPACE && o.metadata?.name === KUBERNETES_SERVICE) this.enqueue(KEY);
    };
    for (const inf of [this.services, this.endpoints] as const) {
      this.handle(inf as typeof this.services, { onAdd: ours, onUpdate: (_o, n) => ours(n), onDelete: ours });
    }
    const ourSlice = (o: KubeObject) => {
      if (o.metadata?.namespace === KUBERNETES_NAMESPACE && o.metadata?.labels?.[SERVICE_NAME_LABEL] === KUBERNETES_SERVICE) this.enqueue(KEY);
    };
    this.handle(this.slices, { onAdd: ourSlice, onUpdate: (_o, n) => ourSlice(n), onDelete: ourSlice });
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
    await this.syncSlices(desiredSlices(addrs));
  }

  private async syncSlices(want: ReturnType<typeof desiredSlices>): Promise<void> {
    const mine = this.slices.list().filter((s) => s.metadata?.namespace === KUBERNETES_NAMESPACE && s.metadata?.labels?.[MANAGED_BY_LABEL] === SLICE_MANAGER);
    for (const w of want) {
      const body = { addressType: w.addressType, endpoints: w.endpoints, ports: w.ports };
      const cur = mine.find((s) => s.metadata?.name === w.name);
      if (!cur) {
        await this.ignoreExists(this.ctx.client.create(resourcePath(SLICES, KUBERNETES_NAMESPACE), {
          apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
          metadata: { name: w.name, namespace: KUBERNETES_NAMESPACE, labels: { [SERVICE_NAME_LABEL]: KUBERNETES_SERVICE, [MANAGED_BY_LABEL]: SLICE_MANAGER } }, ...body,
        }));
        continue;
      }
      if (JSON.stringify({ addressType: cur.addressType, endpoints: cur.endpoints, ports: cur.ports }) === JSON.stringify(body)) continue;
      await this.ctx.client.update(resourcePath(SLICES, KUBERNETES_NAMESPACE, w.name), { ...cur, ...body });
    }
    // A slice of a port no member uses any more.
    for (const s of mine) {
      if (want.some((w) => w.name === s.metadata?.name)) continue;
      await this.ctx.client.delete(resourcePath(SLICES, KUBERNETES_NAMESPACE, s.metadata!.name!)).catch((e) => {
        if (!(e instanceof ApiClientError && e.code === 404)) throw e;
      });
    }
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
