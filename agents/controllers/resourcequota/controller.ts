// The resource quota controller: keeps each ResourceQuota's status (hard =
// spec.hard, used = what the namespace holds of each of those resources).
// As in Kubernetes, admission charges new objects to status.used itself;
// this controller counts a quota when it is new or its spec.hard changes,
// gives back ("replenishes") when a counted object is deleted, a pod
// finishes, a Service changes type or a claim its size, and recounts every
// quota each --resource-quota-sync-period. It does not recount on creates:
// its cache would not hold an object admission has just charged for, and a
// recount then would hand the unit out again.
import { resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { Informer } from '../../informer/informer.ts';
import type { KubeObject, Pod } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';
import { type QuotaSpec, quotaUsage, sameResources } from '../../../api/quota-usage.ts';

const QUOTAS = resolveKind('resourcequotas')!;

interface ResourceQuota extends KubeObject {
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  spec?: QuotaSpec;
  status?: { hard?: Record<string, string | number>; used?: Record<string, string> };
}

/** The resources whose objects are counted from the start; others (count/<resource>.<group>) get an informer when a quota names them. */
const ALWAYS = ['pods', 'services', 'persistentvolumeclaims', 'configmaps', 'secrets', 'resourcequotas'];

export class ResourceQuotaController extends QueueController {
  private readonly quotas: Informer<ResourceQuota>;
  private readonly counted = new Map<string, Informer<KubeObject>>();

  constructor(ctx: ControllerContext) {
    super(ctx, 'resourcequota');
    this.quotas = ctx.informers.informer<ResourceQuota>('resourcequotas');
    this.handle(this.quotas, {
      onAdd: (q) => this.enqueue(q),
      // Admission's own raises of status.used are not a reason to count.
      onUpdate: (o, q) => {
        if (!sameResources(o.spec?.hard, q.spec?.hard) || !sameResources(q.status?.hard, q.spec?.hard)) this.enqueue(q);
      },
    });
    for (const r of ALWAYS) this.watch(r);
  }

  /** The informer of a resource (by the name a count/ key uses), watched for changes; undefined for a name no kind has. */
  private watch(resource: string): Informer<KubeObject> | undefined {
    const kind = resolveKind(resource);
    if (!kind || !kind.namespaced) return undefined;
    const key = `${kind.plural}.${kind.group}`;
    let inf = this.counted.get(key);
    if (!inf) {
      inf = this.ctx.informers.informer<KubeObject>(resource);
      this.counted.set(key, inf);
      const changed = (o: KubeObject) => {
        for (const q of this.quotas.byNamespace(o.metadata?.namespace ?? '')) this.enqueue(q);
      };
      if (kind.plural !== 'resourcequotas') {
        this.handle(inf, { onUpdate: (o, n) => { if (replenishes(kind.plural, o, n)) changed(n); }, onDelete: changed });
      }
    }
    return inf;
  }

  protected async reconcile(key: string): Promise<void> {
    const [ns, name] = key.split('/');
    const cached = this.quotas.get(ns, name);
    if (!cached) return;
    try {
      await this.sync(structuredClone(cached), ns);
    } finally {
      // The periodic full recount.
      if (this.quotas.get(ns, name)) this.enqueueAfter(key, this.ctx.config.resourceQuotaSyncPeriodMs);
    }
  }

  private async sync(q: ResourceQuota, ns: string): Promise<void> {
    const spec = q.spec ?? {};
    const hard = { ...(spec.hard ?? {}) };
    // Resources named by count/ keys need their informer synced before they can be counted.
    const pending: Informer<KubeObject>[] = [];
    for (const name of Object.keys(hard)) {
      if (!name.startsWith('count/')) continue;
      const inf = this.watch(name.slice('count/'.length));
      if (inf && !inf.hasSynced()) pending.push(inf);
    }
    await Promise.all(pending.map((i) => i.waitForSync(30_000)));
    const used = quotaUsage(spec, {
      pods: this.counted.get('pods.')!.byNamespace(ns) as Pod[],
      services: this.counted.get('services.')!.byNamespace(ns),
      persistentvolumeclaims: this.counted.get('persistentvolumeclaims.')!.byNamespace(ns),
      count: (resource) => this.watch(resource)?.byNamespace(ns),
    }, this.ctx.now());
    if (sameResources(q.status?.hard, hard) && sameResources(q.status?.used, used)) return;
    q.status = { hard, used };
    await this.ctx.client.update(resourcePath(QUOTAS, ns, q.metadata.name, 'status'), q);
    this.log.debug({ quota: `${ns}/${q.metadata.name}`, used }, 'quota usage updated');
  }
}

/** Whether an update gives quota back or changes what is charged (Kubernetes' replenishment triggers). */
function replenishes(plural: string, o: KubeObject, n: KubeObject): boolean {
  const spec = (x: KubeObject) => (x as { spec?: Record<string, any> }).spec ?? {};
  if (plural === 'pods') {
    const terminal = (x: KubeObject) => ['Succeeded', 'Failed'].includes(String((x as Pod).status?.phase));
    return terminal(n) && !terminal(o);
  }
  if (plural === 'services') return spec(o).type !== spec(n).type || (spec(o).ports?.length ?? 0) !== (spec(n).ports?.length ?? 0);
  if (plural === 'persistentvolumeclaims') return String(spec(o).resources?.requests?.storage) !== String(spec(n).resources?.requests?.storage);
  return false;
}
