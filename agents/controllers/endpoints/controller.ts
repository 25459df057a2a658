// The Endpoints controller: keeps one core/v1 Endpoints object per Service
// that has a selector, named like the service, listing the selected pods'
// addresses (ready ones in `addresses`, others in `notReadyAddresses`) on the
// ports each pod serves. Services without a selector are left alone: their
// Endpoints are written by hand. Reacts to service, pod and endpoints events
// straight away (the work queue folds a burst for one service into one
// reconcile).
import { deepEqual } from '../../../api/kinds/common.ts';
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import { splitKey } from '../../informer/informer.ts';
import type { Endpoints, Pod, Service } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import { serviceSelector } from './pods.ts';
import { serviceAndPodHandlers } from './services-for-pod.ts';
import { OVER_CAPACITY_ANNOTATION, desiredSubsets, endpointsLabels } from './subsets.ts';

const ENDPOINTS = resolveKind('endpoints')!;

export class EndpointsController extends QueueController {
  private readonly services: Informer<Service>;
  private readonly pods: Informer<Pod>;
  private readonly endpoints: Informer<Endpoints>;

  constructor(ctx: ControllerContext) {
    super(ctx, 'endpoint');
    this.services = ctx.informers.informer<Service>('services');
    this.pods = ctx.informers.informer<Pod>('pods');
    this.endpoints = ctx.informers.informer<Endpoints>('endpoints');
  }

  override async run(signal: AbortSignal): Promise<void> {
    const h = serviceAndPodHandlers(this.services, (s) => this.enqueue(s));
    this.handle(this.services, h.services);
    this.handle(this.pods, h.pods);
    // Someone deleted or edited an Endpoints object: put it back.
    this.handle(this.endpoints, {
      onUpdate: (_o, e) => this.enqueue(e),
      onDelete: (e) => this.enqueue(e),
    });
    await this.ctx.informers.start();
    return super.run(signal);
  }

  protected async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const svc = this.services.get(namespace, name);
    const cur = this.endpoints.get(namespace, name);
    const path = resourcePath(ENDPOINTS, namespace, name);
    if (!svc) {
      // The service is gone: so are its endpoints (Kubernetes deletes them too).
      if (cur) await this.ctx.client.delete(path, { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: cur.metadata.uid } }).catch(ignore(404, 409));
      return;
    }
    if (!serviceSelector(svc)) return;
    const { subsets, truncated } = desiredSubsets(svc, this.pods.byNamespace(namespace));
    const labels = endpointsLabels(svc);
    const annotations: Record<string, string> = { ...(cur?.metadata.annotations ?? {}) };
    if (truncated) annotations[OVER_CAPACITY_ANNOTATION] = 'truncated';
    else delete annotations[OVER_CAPACITY_ANNOTATION];
    if (cur && deepEqual(cur.subsets, subsets) && deepEqual(cur.metadata.labels, labels) && deepEqual(cur.metadata.annotations, annotations)) return;
    const metadata = { ...(cur?.metadata ?? {}), name, namespace, labels, annotations };
    const body = { apiVersion: 'v1', kind: 'Endpoints', metadata, subsets };
    if (cur) {
      // resourceVersion (from the cache) makes this a compare-and-swap: a stale cache gets 409 and a retry.
      await this.ctx.client.update(path, body);
    } else {
      await this.ctx.client.create(resourcePath(ENDPOINTS, namespace), body);
    }
    this.log.debug({ service: key, subsets: subsets.length, truncated }, 'endpoints written');
  }
}

const ignore = (...codes: number[]) => (e: unknown) => {
  if (!(e instanceof ApiClientError && codes.includes(e.code))) throw e;
};
