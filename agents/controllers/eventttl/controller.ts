// Events do not grow the store: a core/v1 Event is deleted eventTTLMs after
// its last update (kube-apiserver keeps Events under an etcd lease of
// --event-ttl, 1 h, renewed by every write; here a controller does it). An
// Event updated meanwhile (a repeat bumps its count and lastTimestamp) moves
// its own deadline; the delete carries the uid and resourceVersion read, so
// an update racing with it wins.
import { ApiClientError, resourcePath } from '../../client/api.ts';
import { resolveKind } from '../../client/kinds.ts';
import type { KubeObject } from '../../informer/types.ts';
import type { ControllerContext } from '../context.ts';
import { QueueController } from '../controller.ts';

const EVENTS = resolveKind('events')!;

export type CoreEvent = KubeObject & {
  firstTimestamp?: string | null;
  lastTimestamp?: string | null;
  eventTime?: string | null;
  series?: { lastObservedTime?: string } | null;
};

/** When the Event was last written, as far as the object tells (ms since the epoch; NaN if it says nothing). */
export function lastWrite(e: CoreEvent): number {
  const times = [
    e.lastTimestamp, e.firstTimestamp, e.eventTime, e.series?.lastObservedTime, e.metadata?.creationTimestamp,
    ...((e.metadata as { managedFields?: { time?: string }[] } | undefined)?.managedFields ?? []).map((f) => f.time),
  ].map((t) => (t ? Date.parse(t) : NaN)).filter((n) => Number.isFinite(n));
  return times.length ? Math.max(...times) : NaN;
}

export class EventTTLController extends QueueController {
  private readonly events = this.ctx.informers.informer<CoreEvent>('events');

  constructor(ctx: ControllerContext) {
    super(ctx, 'eventttl');
    this.handle(this.events, { onAdd: (e) => this.schedule(e), onUpdate: (_o, e) => this.schedule(e) });
  }

  private schedule(e: CoreEvent): void {
    const t = lastWrite(e);
    const due = Number.isFinite(t) ? t + this.ctx.config.eventTTLMs - this.ctx.now() : 0;
    this.enqueueAfter(e, due);
  }

  protected async reconcile(key: string): Promise<void> {
    const slash = key.indexOf('/');
    const e = this.events.get(key.slice(0, slash), key.slice(slash + 1));
    if (!e) return;
    const t = lastWrite(e);
    const due = Number.isFinite(t) ? t + this.ctx.config.eventTTLMs - this.ctx.now() : 0;
    if (due > 0) {
      this.enqueueAfter(key, due);
      return;
    }
    const m = e.metadata!;
    try {
      await this.ctx.client.delete(resourcePath(EVENTS, m.namespace, m.name), {
        kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: m.uid, resourceVersion: m.resourceVersion },
      });
    } catch (err) {
      if (err instanceof ApiClientError && err.code === 404) return;
      // 409: updated since we read it; the update event reschedules it.
      if (err instanceof ApiClientError && err.code === 409) return;
      throw err;
    }
  }
}
