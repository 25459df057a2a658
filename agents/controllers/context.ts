// What every controller is given (kube-controller-manager's ControllerContext):
// the API client, the process's shared informers, an event recorder, a
// logger, the metrics registry and the configuration. Controllers act only
// through `client`; they read only from `informers`.
import pino from 'pino';
import client from 'prom-client';
import type { ApiClient } from '../client/api.ts';
import { SharedInformerFactory } from '../informer/factory.ts';
import type { Logger } from '../informer/informer.ts';
import { EventBroadcaster, type EventRecorder } from '../recorder/recorder.ts';

/**
 * Settings of the controllers, with Kubernetes' defaults. Each controller
 * owns the fields named after it; `flotilla controllers` sets them from flags.
 */
export interface ControllerConfig {
  /** Concurrent reconciles per controller (kube-controller-manager: 5 for deployments/replicasets, …). */
  workers: number;
  /** Re-deliver every cached object this often (ms); 0: never. */
  resyncMs: number;
  /** volume: where the local-path provisioner makes its volumes' directories (created when missing). */
  volumeDir: string;
  /** horizontal-pod-autoscaler: how often each HPA is evaluated (--horizontal-pod-autoscaler-sync-period, 15 s). */
  hpaSyncPeriodMs: number;
  /** horizontal-pod-autoscaler: default scale-down stabilization window (--horizontal-pod-autoscaler-downscale-stabilization, 5 m). */
  hpaDownscaleStabilizationMs: number;
  /** horizontal-pod-autoscaler: usage/target ratios within 1 ± this do not scale (--horizontal-pod-autoscaler-tolerance, 0.1). */
  hpaTolerance: number;
  /** horizontal-pod-autoscaler: a pod's CPU is not trusted this long after it started (--horizontal-pod-autoscaler-cpu-initialization-period, 5 m). */
  hpaCpuInitializationPeriodMs: number;
  /** horizontal-pod-autoscaler: a pod that turned ready within this of starting counts as never unready (--horizontal-pod-autoscaler-initial-readiness-delay, 30 s). */
  hpaInitialReadinessDelayMs: number;
  /** resourcequota: full recount of every quota this often (--resource-quota-sync-period, 5 m). */
  resourceQuotaSyncPeriodMs: number;
}

export const DEFAULT_CONTROLLER_CONFIG: ControllerConfig = {
  workers: 5,
  resyncMs: 0,
  volumeDir: `${process.cwd()}/.flotilla/volumes`,
  hpaSyncPeriodMs: 15_000,
  hpaDownscaleStabilizationMs: 300_000,
  hpaTolerance: 0.1,
  hpaCpuInitializationPeriodMs: 300_000,
  hpaInitialReadinessDelayMs: 30_000,
  resourceQuotaSyncPeriodMs: 300_000,
};

/** A flag of `flotilla controllers` that sets one config field. Append new ones at the end. */
export interface ConfigFlag {
  flag: string;
  field: keyof ControllerConfig;
  type: 'duration' | 'int' | 'string' | 'bool';
  help: string;
}

export const CONFIG_FLAGS: ConfigFlag[] = [
  { flag: 'concurrent-syncs', field: 'workers', type: 'int', help: 'concurrent reconciles per controller' },
  { flag: 'resync-period', field: 'resyncMs', type: 'duration', help: 're-deliver every cached object this often (0: never)' },
  { flag: 'volume-dir', field: 'volumeDir', type: 'string', help: 'directory of the local-path provisioner\'s volumes' },
  { flag: 'horizontal-pod-autoscaler-sync-period', field: 'hpaSyncPeriodMs', type: 'duration', help: 'how often each HPA is evaluated' },
  { flag: 'horizontal-pod-autoscaler-downscale-stabilization', field: 'hpaDownscaleStabilizationMs', type: 'duration', help: 'default scale-down stabilization window' },
  { flag: 'horizontal-pod-autoscaler-cpu-initialization-period', field: 'hpaCpuInitializationPeriodMs', type: 'duration', help: 'how long after start a pod\'s CPU is not trusted' },
  { flag: 'horizontal-pod-autoscaler-initial-readiness-delay', field: 'hpaInitialReadinessDelayMs', type: 'duration', help: 'readiness changes within this of start are ignored' },
  { flag: 'resource-quota-sync-period', field: 'resourceQuotaSyncPeriodMs', type: 'duration', help: 'full recount of every quota this often' },
];

export interface ControllerContext {
  client: ApiClient;
  informers: SharedInformerFactory;
  /** A recorder that signs events as `component` (e.g. "deployment-controller"). */
  recorder(component: string): EventRecorder;
  log: pino.Logger;
  registry: client.Registry;
  config: ControllerConfig;
  /** The clock (ms since the epoch); tests may replace it. */
  now(): number;
}

export interface NewControllerContextOptions {
  client: ApiClient;
  /** NATS URL(s) of the EVENTS stream, or a connection. */
  nats: ConstructorParameters<typeof SharedInformerFactory>[0]['nats'];
  config?: Partial<ControllerConfig>;
  log?: pino.Logger;
  registry?: client.Registry;
  now?: () => number;
  /** source.host of recorded events. */
  host?: string;
}

/** A context with its own informer factory and event broadcaster (stop both with stopControllerContext). */
export function newControllerContext(o: NewControllerContextOptions): ControllerContext & { broadcaster: EventBroadcaster } {
  const log = o.log ?? pino({ name: 'controllers', level: process.env.FLOTILLA_LOG_LEVEL ?? 'warn' }, pino.destination(2));
  const config = { ...DEFAULT_CONTROLLER_CONFIG, ...o.config };
  const now = o.now ?? Date.now;
  const broadcaster = new EventBroadcaster({ client: o.client, logger: log.child({ component: 'events' }) as Logger, host: o.host, now });
  const informers = new SharedInformerFactory({ client: o.client, nats: o.nats, logger: log.child({ component: 'informer' }) as Logger, resyncMs: config.resyncMs });
  return {
    client: o.client,
    informers,
    recorder: (component) => broadcaster.recorder(component),
    log,
    registry: o.registry ?? new client.Registry(),
    config,
    now,
    broadcaster,
  };
}

/** Flushes recorded events and stops the informers. */
export async function stopControllerContext(ctx: ControllerContext & { broadcaster: EventBroadcaster }): Promise<void> {
  await ctx.broadcaster.stop();
  await ctx.informers.stop();
}
