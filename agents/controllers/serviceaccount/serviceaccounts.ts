// The service accounts controller (Kubernetes' serviceaccounts-controller):
// every Active namespace has a "default" ServiceAccount; one that is deleted
// is made again. A namespace being terminated is left alone (the server would
// refuse the create anyway).
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { KubeObject } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';

const SERVICE_ACCOUNTS = resolveKind('serviceaccounts')!;

/** The accounts every namespace gets (Kubernetes: just "default"). */
export const DEFAULT_SERVICE_ACCOUNTS = ['default'];

export class ServiceAccountsController extends QueueController {
  private readonly namespaces = this.ctx.informers.informer<KubeObject>('namespaces');
  private readonly accounts = this.ctx.informers.informer<KubeObject>('serviceaccounts');

  constructor(ctx: ControllerContext) {
    super(ctx, 'serviceaccount');
    this.handle(this.namespaces, { onAdd: (ns) => this.enqueue(ns), onUpdate: (_o, ns) => this.enqueue(ns) });
    this.handle(this.accounts, { onDelete: (sa) => this.enqueue(sa.metadata?.namespace ?? '') });
  }

  protected async reconcile(ns: string): Promise<void> {
    if (!ns) return;
    const namespace = this.namespaces.get('', ns);
    if (!namespace || namespace.metadata?.deletionTimestamp) return;
    for (const name of DEFAULT_SERVICE_ACCOUNTS) {
      if (this.accounts.get(ns, name)) continue;
      try {
        await this.ctx.client.create(resourcePath(SERVICE_ACCOUNTS, ns), { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns } });
        this.log.info({ namespace: ns, name }, 'created service account');
      } catch (e) {
        // Already there (the cache lags), or the namespace started terminating / went away.
        if (e instanceof ApiClientError && (e.code === 409 || e.code === 403 || e.code === 404)) continue;
        throw e;
      }
    }
  }
}
