// The configmap-summary controller: in every namespace that has ConfigMaps,
// it keeps one more ConfigMap, "summary", that lists them:
//
//   data:
//     count: "3"
//     names: "app-config,feature-flags,nginx"
//
// and deletes that summary when the namespace has no other ConfigMap left.
// Small, but it has everything a real controller needs: an informer for the
// cache and the events, a rate-limited work queue of keys, level-triggered
// reconciliation from the cache (never from the event), optimistic
// concurrency on writes (resourceVersion), retries with backoff, and care not
// to clobber an object it does not own.
import { type ApiClient, ApiClientError, resourcePath } from '../../agents/client/api.ts';
import {
  type ConfigMap, Informer, type Logger, WorkQueue, runWorkers, silentLogger,
} from '../../agents/informer/index.ts';
import { kindByName } from '../../api/kinds/index.ts';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const CONTROLLER_NAME = 'configmap-summary';

export interface SummaryControllerOptions {
  client: ApiClient;
  /** NATS connection or URL(s) of the EVENTS stream. */
  nats: ConstructorParameters<typeof Informer>[0]['nats'];
  /** Only this namespace (default: all). */
  namespace?: string;
  /** Name of the summary ConfigMap (default "summary"). */
  summaryName?: string;
  /** Concurrent reconciles (default 2). */
  workers?: number;
  /** Re-check every namespace this often (default 10 minutes; 0: never). */
  resyncMs?: number;
  logger?: Logger;
}

const CONFIGMAPS = kindByName('configmaps')!;

export class SummaryController {
  readonly informer: Informer<ConfigMap>;
  readonly queue = new WorkQueue<string>({ name: CONTROLLER_NAME });
  readonly summaryName: string;
  /** Writes made (creates, updates, deletes), for tests and metrics. */
  writes = 0;
  private readonly client: ApiClient;
  private readonly log: Logger;
  private readonly workers: number;
  private running?: Promise<void>;

  constructor(o: SummaryControllerOptions) {
    this.client = o.client;
    this.summaryName = o.summaryName ?? 'summary';
    this.workers = o.workers ?? 2;
    this.log = o.logger ?? silentLogger;
    this.informer = new Informer<ConfigMap>({
      client: o.client, nats: o.nats, kind: CONFIGMAPS, namespace: o.namespace,
      resyncMs: o.resyncMs ?? 10 * 60_000, logger: this.log, name: CONTROLLER_NAME,
    });
    // Handlers only say which key to look at; the workers decide what to do
    // from the cache. Every change in a namespace, the summary's own included
    // (someone may have edited it), re-checks that namespace.
    const enqueue = (cm: ConfigMap) => this.queue.add(cm.metadata.namespace ?? '');
    this.informer.addEventHandler({
      onAdd: enqueue,
      onUpdate: (_old, cm) => enqueue(cm),
      onDelete: enqueue,
    });
  }

  /** Starts the informer, waits for its cache, then starts the workers. */
  async start(): Promise<void> {
    await this.informer.start();
    this.log.info({ objects: this.informer.size, resourceVersion: this.informer.lastSyncResourceVersion }, 'cache synced; starting workers');
    this.running = runWorkers(this.queue, this.workers, (ns) => this.reconcile(ns), {
      onError: (ns, err, attempts) => this.log.warn({ namespace: ns, attempts, err: (err as Error).message }, 'reconcile failed; will retry'),
    });
  }

  /** Lets in-flight reconciles finish, then stops. */
  async stop(): Promise<void> {
    await this.queue.shutDownWithDrain();
    await this.running;
    await this.informer.stop();
  }

  /** Makes the namespace's summary match its ConfigMaps as the cache sees them. */
  async reconcile(namespace: string): Promise<void> {
    const names = this.informer.byNamespace(namespace)
      .map((cm) => cm.metadata.name)
      .filter((n) => n !== this.summaryName)
      .sort();
    const current = this.informer.get(namespace, this.summaryName);
    const path = resourcePath(CONFIGMAPS, namespace);
    if (current && current.metadata.labels?.[MANAGED_BY_LABEL] !== CONTROLLER_NAME) {
      // Somebody else's ConfigMap with our name: leave it alone.
      this.log.warn({ namespace, summary: this.summaryName }, 'a ConfigMap with the summary\'s name exists and is not managed by this controller; skipping the namespace');
      return;
    }
    if (!names.length) {
      if (!current) return;
      // Precondition on the version we decided on: a concurrent change wins and we look again.
      await this.ignoreNotFound(this.client.delete(`${path}/${this.summaryName}`, {
        preconditions: { resourceVersion: current.metadata.resourceVersion, uid: current.metadata.uid },
      }));
      this.writes++;
      this.log.info({ namespace }, 'deleted the summary: no ConfigMaps left');
      return;
    }
    const data = { count: String(names.length), names: names.join(',') };
    if (!current) {
      await this.client.create(path, {
        apiVersion: 'v1', kind: 'ConfigMap',
        metadata: { name: this.summaryName, namespace, labels: { [MANAGED_BY_LABEL]: CONTROLLER_NAME } },
        data,
      });
      this.writes++;
      this.log.info({ namespace, count: names.length }, 'created the summary');
      return;
    }
    if (current.data?.count === data.count && current.data?.names === data.names && Object.keys(current.data).length === 2) return;
    // A PUT carrying the cached resourceVersion: if the cache is behind, the
    // server answers 409 Conflict and the key is retried once it caught up.
    await this.client.update(`${path}/${this.summaryName}`, { ...current, data });
    this.writes++;
    this.log.info({ namespace, count: names.length }, 'updated the summary');
  }

  private async ignoreNotFound(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (e) {
      if (!(e instanceof ApiClientError && e.code === 404)) throw e;
    }
  }
}
