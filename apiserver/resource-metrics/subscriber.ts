// Every server subscribes to the node agents' usage reports (NATS core, all
// servers get every report) and keeps them in its ResourceMetricsCache, so any
// member can answer metrics.k8s.io.
import { type NatsConnection, type Subscription, connect } from 'nats';
import type { Logger } from 'pino';
import client from 'prom-client';
import { METRICS_SUBJECT_WILDCARD } from '../../api/metrics.ts';
import { type ResourceMetricsCache, checkReport } from './cache.ts';

export class ResourceMetricsSubscriber {
  private nc?: NatsConnection;
  private sub?: Subscription;
  private pruner?: NodeJS.Timeout;
  private readonly received: client.Counter<string>;

  constructor(private readonly servers: string[], private readonly cache: ResourceMetricsCache, private readonly log: Logger, metrics: client.Registry) {
    this.received = new client.Counter({
      name: 'apiserver_resource_metrics_reports_total', help: 'Node usage reports received, by result (ok, invalid)', labelNames: ['result'], registers: [metrics],
    });
  }

  async start(): Promise<void> {
    this.nc = await connect({ servers: this.servers, name: 'flotilla-server-resource-metrics', maxReconnectAttempts: -1, reconnectTimeWait: 500 });
    this.sub = this.nc.subscribe(METRICS_SUBJECT_WILDCARD, {
      callback: (err, msg) => {
        if (err) return void this.log.warn({ err }, 'resource metrics subscription error');
        try {
          this.cache.ingest(checkReport(JSON.parse(new TextDecoder().decode(msg.data))));
          this.received.inc({ result: 'ok' });
        } catch (e) {
          // A bad report is dropped and counted; the next one replaces it.
          this.received.inc({ result: 'invalid' });
          this.log.warn({ subject: msg.subject, err: (e as Error).message }, 'dropped an invalid usage report');
        }
      },
    });
    this.pruner = setInterval(() => this.cache.prune(), 10_000);
    this.pruner.unref();
  }

  async stop(): Promise<void> {
    if (this.pruner) clearInterval(this.pruner);
    this.sub?.unsubscribe();
    await this.nc?.drain().catch(() => undefined);
  }
}
