// client-go's SharedInformerFactory: one informer per kind for the whole
// process, all sharing one NATS connection. Every controller that needs pods
// asks the factory for 'pods' and gets the same cache, so a process with
// twenty controllers keeps one copy of each kind and one stream consumer per
// kind, not one per controller.
import type { NatsConnection } from 'nats';
import type { ApiClient } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import { Informer, type Logger } from './informer.ts';
import { connectNats } from './nats.ts';
import { silentLogger } from './stream.ts';
import type { KubeObject } from './types.ts';

export interface SharedInformerFactoryOptions {
  client: ApiClient;
  /** A connection (shared, not closed by the factory) or the URL(s) to connect to. */
  nats: NatsConnection | string | readonly string[];
  logger?: Logger;
  /** Re-deliver every cached object to the handlers this often (ms); 0: never. */
  resyncMs?: number;
  /** Names the NATS connection (default "flotilla-informers"). */
  name?: string;
}

export class SharedInformerFactory {
  private readonly informers = new Map<string, Informer<KubeObject>>();
  private nc?: NatsConnection;
  private connecting?: Promise<NatsConnection>;
  private started = false;
  private readonly log: Logger;

  constructor(private readonly o: SharedInformerFactoryOptions) {
    this.log = o.logger ?? silentLogger;
    if (typeof o.nats !== 'string' && !Array.isArray(o.nats)) this.nc = o.nats as NatsConnection;
  }

  /**
   * THE informer of a kind ('pods', 'deployments', 'leases' — any name
   * resolveKind knows). Asked for after start(), it starts at once.
   */
  informer<T extends KubeObject = KubeObject>(resource: string): Informer<T> {
    const kind = resolveKind(resource);
    if (!kind) throw new Error(`no such kind: ${resource}`);
    const key = `${kind.group}/${kind.plural}`;
    let inf = this.informers.get(key);
    if (!inf) {
      inf = new Informer<KubeObject>({
        client: this.o.client,
        nats: () => this.connection(),
        kind,
        resyncMs: this.o.resyncMs,
        logger: this.log,
      });
      this.informers.set(key, inf);
      if (this.started) void this.startOne(inf).catch((e) => this.log.error({ err: (e as Error).message, kind: key }, 'informer failed to start'));
    }
    return inf as unknown as Informer<T>;
  }

  /** Every informer created so far. */
  all(): Informer<KubeObject>[] {
    return [...this.informers.values()];
  }

  /** Starts every informer asked for so far (and any asked for later); resolves once all have synced. */
  async start(): Promise<void> {
    this.started = true;
    await Promise.all(this.all().map((inf) => this.startOne(inf)));
  }

  async waitForSync(timeoutMs?: number): Promise<void> {
    await Promise.all(this.all().map((inf) => inf.waitForSync(timeoutMs)));
  }

  hasSynced(): boolean {
    return this.all().every((inf) => inf.hasSynced());
  }

  async stop(): Promise<void> {
    this.started = false;
    await Promise.all(this.all().map((inf) => inf.stop()));
    if (this.connecting) {
      const nc = await this.connecting.catch(() => undefined);
      await nc?.close().catch(() => {});
    }
  }

  private async startOne(inf: Informer<KubeObject>): Promise<void> {
    await inf.start();
  }

  private connection(): Promise<NatsConnection> {
    if (this.nc) return Promise.resolve(this.nc);
    this.connecting ??= connectNats(this.o.nats as string | readonly string[], this.o.name ?? 'flotilla-informers');
    return this.connecting;
  }
}
