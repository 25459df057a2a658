// The event recorder (client-go's record.EventRecorder + broadcaster): a
// controller says what happened to an object, the recorder turns it into a
// core/v1 Event and writes it in the background, through the correlator so
// that repeats update one Event's count and lastTimestamp instead of adding
// objects. Recording never blocks or fails a reconcile: the queue is bounded
// and what does not fit is dropped and counted, as in client-go.
import { hostname } from 'node:os';
import { type ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import { type Logger, silentLogger } from '../informer/stream.ts';
import type { KubeObject } from '../informer/types.ts';
import { type CorrelatorOptions, EventCorrelator, type EventInput } from './correlator.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  /** Records that `reason` happened to `obj` (message is for humans). */
  event(obj: KubeObject, type: EventType, reason: string, message: string): void;
}

export interface EventBroadcasterOptions extends CorrelatorOptions {
  client: ApiClient;
  logger?: Logger;
  /** source.host / reportingInstance (default: this host's name). */
  host?: string;
  /** Queued events beyond this are dropped (client-go: 1000). */
  queueSize?: number;
  now?: () => number;
}

interface Pending {
  input: EventInput;
  at: number;
}

const EVENTS = resolveKind('events')!;

/** Kubernetes' Event timestamps: RFC 3339 to the second. */
const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

export class EventBroadcaster {
  readonly correlator: EventCorrelator;
  private readonly queue: Pending[] = [];
  private readonly client: ApiClient;
  private readonly log: Logger;
  private readonly host: string;
  private readonly queueSize: number;
  private readonly now: () => number;
  private draining?: Promise<void>;
  private stopped = false;
  /** Events written (created or updated) and dropped, for metrics and tests. */
  readonly stats = { created: 0, updated: 0, dropped: 0, failed: 0 };

  constructor(o: EventBroadcasterOptions) {
    this.client = o.client;
    this.log = o.logger ?? silentLogger;
    this.host = o.host ?? hostname();
    this.queueSize = o.queueSize ?? 1000;
    this.now = o.now ?? Date.now;
    this.correlator = new EventCorrelator(o);
  }

  /** A recorder that signs its events as `component` (source.component, reportingComponent). */
  recorder(component: string): EventRecorder {
    return {
      event: (obj, type, reason, message) => {
        if (this.stopped) return;
        const m = obj.metadata ?? {};
        if (!m.name) return;
        if (this.queue.length >= this.queueSize) {
          this.stats.dropped++;
          return;
        }
        this.queue.push({
          at: this.now(),
          input: {
            type, reason, message,
            involvedObject: {
              kind: obj.kind, namespace: m.namespace, name: m.name, uid: m.uid, apiVersion: obj.apiVersion,
              ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}),
            } as EventInput['involvedObject'],
            source: { component, host: this.host },
          },
        });
        this.draining ??= this.drain().finally(() => { this.draining = undefined; });
      },
    };
  }

  /** Resolves once every queued event has been written (or given up). */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Writes what is queued, then records nothing more. */
  async stop(): Promise<void> {
    await this.flush();
    this.stopped = true;
  }

  private async drain(): Promise<void> {
    for (let p = this.queue.shift(); p; p = this.queue.shift()) {
      try {
        await this.write(p);
      } catch (e) {
        this.stats.failed++;
        this.log.warn({ err: (e as Error).message, reason: p.input.reason, object: p.input.involvedObject.name }, 'could not write an event; dropped');
      }
    }
  }

  private async write(p: Pending): Promise<void> {
    const d = this.correlator.observe(p.input, p.at);
    if (d.action === 'drop') {
      this.stats.dropped++;
      return;
    }
    const ns = p.input.involvedObject.namespace || 'default';
    const ts = rfc3339(p.at);
    if (d.action === 'update') {
      try {
        await this.client.patch(resourcePath(EVENTS, ns, d.name), { count: d.count, lastTimestamp: ts, message: d.message }, 'application/merge-patch+json');
        this.stats.updated++;
        return;
      } catch (e) {
        // Deleted meanwhile (event TTL): record it anew.
        if (!(e instanceof ApiClientError && e.code === 404)) throw e;
        this.correlator.stored(d.key, undefined);
      }
    }
    // client-go's naming: the object's name and the time in nanoseconds, in hex.
    const name = `${p.input.involvedObject.name}.${(BigInt(p.at) * 1_000_000n + BigInt(this.seq++ % 1_000_000)).toString(16)}`;
    const count = d.action === 'update' ? d.count : 1;
    const ev = {
      apiVersion: 'v1', kind: 'Event',
      metadata: { name, namespace: ns },
      involvedObject: p.input.involvedObject,
      reason: p.input.reason, message: d.message, type: p.input.type,
      source: p.input.source,
      firstTimestamp: d.action === 'update' ? d.firstTimestamp : ts, lastTimestamp: ts, count,
      reportingComponent: p.input.source.component, reportingInstance: this.host,
    };
    try {
      await this.client.create(resourcePath(EVENTS, ns), ev);
      this.stats.created++;
      this.correlator.stored(d.key, name);
    } catch (e) {
      this.correlator.stored(d.key, undefined);
      throw e;
    }
  }

  private seq = 0;
}
