// The EndpointSlice controller: keeps each Service with a selector described
// by discovery.k8s.io/v1 EndpointSlices (owned by the service, labelled
// kubernetes.io/service-name and managed-by endpointslice-controller.k8s.io),
// packed as reconciler.ts decides. After writing, a reconcile waits until
// the slice cache has seen its writes, so the next reconcile of the service
// never works from slices it has already replaced (Kubernetes keeps an
// "expected generations" tracker for the same reason).
import { LABEL_MANAGED_BY, LABEL_SERVICE_NAME } from '../../../api/kinds/discovery.ts';
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import { splitKey } from '../../informer/informer.ts';
import type { KubeObject, Node, Pod, Service } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import { serviceSelector } from '../endpoints/pods.ts';
import { serviceAndPodHandlers } from '../endpoints/services-for-pod.ts';
import { MANAGED_BY, type EndpointSlice, desiredEndpoints, reconcileSlices } from './reconciler.ts';

const SLICES = resolveKind('endpointslices.discovery.k8s.io')!;

export class EndpointSliceController extends QueueController {
  private readonly services: Informer<Service>;
  private readonly pods: Informer<Pod>;
  private readonly nodes: Informer<Node>;
  private readonly slices: Informer<EndpointSlice>;

  constructor(ctx: ControllerContext) {
    super(ctx, 'endpointslice');
    this.services = ctx.informers.informer<Service>('services');
    this.pods = ctx.informers.informer<Pod>('pods');
    this.nodes = ctx.informers.informer<Node>('nodes');
    this.slices = ctx.informers.informer<EndpointSlice>('endpointslices.discovery.k8s.io');
  }

  override async run(signal: AbortSignal): Promise<void> {
    const h = serviceAndPodHandlers(this.services, (s) => this.enqueue(s));
    this.handle(this.services, h.services);
    this.handle(this.pods, h.pods);
    // A managed slice edited or deleted by someone else is put right.
    const owner = (s: EndpointSlice) => {
      const svc = s.metadata.labels?.[LABEL_SERVICE_NAME];
      if (svc && s.metadata.labels?.[LABEL_MANAGED_BY] === MANAGED_BY) this.enqueue(`${s.metadata.namespace}/${svc}`);
    };
    this.handle(this.slices, { onUpdate: (_o, s) => owner(s), onDelete: owner });
    await this.ctx.informers.start();
    return super.run(signal);
  }

  /** This service's managed slices in the cache. */
  private managedSlices(namespace: string, service: string): EndpointSlice[] {
    return this.slices.byLabel(LABEL_SERVICE_NAME, service)
      .filter((s) => s.metadata.namespace === namespace && s.metadata.labels?.[LABEL_MANAGED_BY] === MANAGED_BY);
  }

  protected async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const svc = this.services.get(namespace, name);
    const existing = this.managedSlices(namespace, name);
    if (!svc) {
      // The garbage collector would remove them through their owner reference; removing them here does not wait for it.
      await Promise.all(existing.map((s) => this.remove(s)));
      return;
    }
    if (!serviceSelector(svc)) return;
    const desired = desiredEndpoints(svc, this.pods.byNamespace(namespace), (n) => this.nodes.get('', n));
    const changes = reconcileSlices(svc, existing, desired, this.ctx.config.maxEndpointsPerSlice);
    let last = 0;
    const note = (o: KubeObject) => (last = Math.max(last, Number(o.metadata?.resourceVersion ?? 0)));
    for (const s of changes.create) note(await this.ctx.client.create(resourcePath(SLICES, namespace), s));
    // resourceVersion from the cache: a stale slice gets 409 and the whole reconcile is retried.
    for (const s of changes.update) note(await this.ctx.client.update(resourcePath(SLICES, namespace, s.metadata.name), s));
    for (const s of changes.delete) await this.remove(s);
    if (last) await this.slices.waitForResourceVersion(last, 10_000);
    if (changes.create.length || changes.update.length || changes.delete.length) {
      this.log.debug({ service: key, created: changes.create.length, updated: changes.update.length, deleted: changes.delete.length }, 'endpoint slices written');
    }
  }

  private async remove(s: EndpointSlice): Promise<void> {
    const path = resourcePath(SLICES, s.metadata.namespace, s.metadata.name);
    await this.ctx.client.delete(path, { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: s.metadata.uid } }).catch((e) => {
      if (!(e instanceof ApiClientError && (e.code === 404 || e.code === 409))) throw e;
    });
    // Wait until the cache has dropped it, so the next reconcile does not count it.
    const deadline = Date.now() + 10_000;
    while (this.slices.get(s.metadata.namespace ?? '', s.metadata.name!)?.metadata.uid === s.metadata.uid && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
