// Every server subscribes to the node agents' usage reports (NATS core, all
// servers get every report) and keeps them in its ResourceMetricsCache, so any
// member can answer metrics.k8s.io.
import { type Msg, type NatsConnection, type Subscription, connect } from 'nats';
import type { Logger } from 'pino';
import client from 'prom-client';
import { METRICS_SUBJECT_WILDCARD } from '../../api/metrics.ts';
import { type ResourceMetricsCache, checkReport } from './cache.ts';
import { natsServerOptions } from '../../api/nats-url.ts';

export class ResourceMetricsSubscriber {
  private nc?: NatsConnection;
  private sub?: Subscription;
  private pruner?: NodeJS.Timeout;
  private stopped = false;
  private readonly received: client.Counter<string>;

  constructor(private readonly servers: string[], private readonly cache: ResourceMetricsCache, private readonly log: Logger, metrics: client.Registry) {
    this.received = new client.Counter({
      name: 'apiserver_resource_metrics_reports_total', help: 'Node usage reports received, by result (ok, invalid)', labelNames: ['result'], registers: [metrics],
    });
  }

  /**
   * Connects and subscribes in the background: NATS being down when the
   * server starts (or later) must not stop the server; metrics are just
   * absent until reports arrive.
   */
  start(): void {
    this.pruner = setInterval(() => this.cache.prune(), 10_000);
    this.pruner.unref();
    void connect({
      ...natsServerOptions(this.servers), name: 'flotilla-server-resource-metrics', waitOnFirstConnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 500,
    }).then((nc) => {
      if (this.stopped) return void nc.close();
      this.nc = nc;
      this.sub = nc.subscribe(METRICS_SUBJECT_WILDCARD, { callback: (err, msg) => this.receive(err, msg) });
      this.log.info({ subject: METRICS_SUBJECT_WILDCARD }, 'receiving node usage reports');
    }, (err) => this.log.error({ err: (err as Error).message }, 'resource metrics: cannot connect to NATS; metrics.k8s.io will stay empty'));
  }

  private receive(err: Error | null, msg: Msg): void {
    if (err) return void this.log.warn({ err }, 'resource metrics subscription error');
    try {
      this.cache.ingest(checkReport(JSON.parse(new TextDecoder().decode(msg.data))));
      this.received.inc({ result: 'ok' });
    } catch (e) {
      // A bad report is dropped and counted; the next one replaces it.
      this.received.inc({ result: 'invalid' });
      this.log.warn({ subject: msg.subject, err: (e as Error).message }, 'dropped an invalid usage report');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pruner) clearInterval(this.pruner);
    this.sub?.unsubscribe();
    await this.nc?.drain().catch(() => undefined);
  }
}
