// The shape of every controller (sample-controller's): informer handlers only
// say which key to look at; workers take keys from a rate-limited queue and
// reconcile the object's whole state from the caches (level-triggered, so a
// missed or repeated event changes nothing); a failed reconcile throws and
// the key comes back with exponential back-off.
import client from 'prom-client';
import { type EventHandlers, type Informer, keyOf } from '../informer/informer.ts';
import type { KubeObject } from '../informer/types.ts';
import { WorkQueue, runWorkers } from '../informer/workqueue.ts';
import type { EventRecorder } from '../recorder/recorder.ts';
import type { ControllerContext } from './context.ts';

export interface Controller {
  readonly name: string;
  /** Works until `signal` aborts (leadership lost or shutdown), then returns once in-flight work ended. */
  run(signal: AbortSignal): Promise<void>;
}

interface ControllerMetrics {
  reconciles: client.Counter<'controller' | 'result'>;
  depth: client.Gauge<'controller'>;
}

const metricsByRegistry = new WeakMap<client.Registry, ControllerMetrics>();

/** The per-controller metrics, registered once per registry. */
function controllerMetrics(ctx: ControllerContext): ControllerMetrics {
  let m = metricsByRegistry.get(ctx.registry);
  if (!m) {
    m = {
      reconciles: new client.Counter({ name: 'flotilla_controller_reconciles_total', help: 'Reconciles by controller and result (success, error).', labelNames: ['controller', 'result'], registers: [ctx.registry] }),
      depth: new client.Gauge({ name: 'flotilla_controller_queue_depth', help: 'Keys waiting in a controller\'s work queue.', labelNames: ['controller'], registers: [ctx.registry] }),
    };
    metricsByRegistry.set(ctx.registry, m);
  }
  return m;
}

export interface QueueControllerOptions {
  /** Concurrent reconciles (default: ctx.config.workers). */
  workers?: number;
}

export abstract class QueueController implements Controller {
  readonly queue: WorkQueue<string>;
  protected readonly log: ControllerContext['log'];
  protected readonly recorder: EventRecorder;
  private readonly workers: number;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(protected readonly ctx: ControllerContext, readonly name: string, opts: QueueControllerOptions = {}) {
    this.queue = new WorkQueue<string>({ name });
    this.log = ctx.log.child({ controller: name });
    this.recorder = ctx.recorder(`${name}-controller`);
    this.workers = opts.workers ?? ctx.config.workers;
  }

  /** Makes the object's state right; throws to be retried with back-off. */
  protected abstract reconcile(key: string): Promise<void>;

  /** Queues an object's key (namespace/name) or a key. */
  enqueue(objOrKey: KubeObject | string): void {
    this.queue.add(typeof objOrKey === 'string' ? objOrKey : keyOf(objOrKey));
  }

  /** Queues a key after a delay (a deadline to check, a back-off to wait out). */
  enqueueAfter(objOrKey: KubeObject | string, ms: number): void {
    this.queue.addAfter(typeof objOrKey === 'string' ? objOrKey : keyOf(objOrKey), Math.max(0, ms));
  }

  /** Registers handlers on an informer for as long as the controller runs. */
  protected handle<T extends KubeObject>(informer: Informer<T>, handlers: EventHandlers<T>): void {
    this.unsubscribe.push(informer.addEventHandler(handlers));
  }

  async run(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const m = controllerMetrics(this.ctx);
    const depth = setInterval(() => m.depth.set({ controller: this.name }, this.queue.len()), 1000);
    depth.unref();
    const stop = () => this.queue.shutdown();
    signal.addEventListener('abort', stop, { once: true });
    try {
      await runWorkers(this.queue, this.workers, async (key) => {
        if (signal.aborted) return;
        try {
          await this.reconcile(key);
          m.reconciles.inc({ controller: this.name, result: 'success' });
        } catch (e) {
          m.reconciles.inc({ controller: this.name, result: 'error' });
          throw e;
        }
      }, {
        onError: (key, err, attempts) => this.log.warn({ key, attempts, err: (err as Error)?.message ?? String(err) }, 'reconcile failed; will retry'),
      });
    } finally {
      signal.removeEventListener('abort', stop);
      clearInterval(depth);
      for (const u of this.unsubscribe.splice(0)) u();
    }
  }
}
