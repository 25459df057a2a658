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
  /** EndpointSlice controller: endpoints per slice (--max-endpoints-per-slice, 100). */
  maxEndpointsPerSlice: number;
  /** Node lifecycle: how often node health is checked (--node-monitor-period, 5 s). */
  nodeMonitorPeriodMs: number;
  /** Node lifecycle: silence after which a node goes Unknown (--node-monitor-grace-period, 50 s as in Kubernetes 1.32). */
  nodeMonitorGracePeriodMs: number;
  /** Node lifecycle: the same for a node that never reported Ready (--node-startup-grace-period, 60 s). */
  nodeStartupGracePeriodMs: number;
  /** Node lifecycle: nodes per second tainted for eviction in a healthy zone (--node-eviction-rate, 0.1). */
  nodeEvictionRate: number;
  /** Node lifecycle: the same in a large, partly disrupted zone (--secondary-node-eviction-rate, 0.01). */
  secondaryNodeEvictionRate: number;
  /** Node lifecycle: share of not-ready nodes that makes a zone partly disrupted (--unhealthy-zone-threshold, 0.55). */
  unhealthyZoneThreshold: number;
  /** Node lifecycle: zones larger than this keep evicting at the secondary rate when partly disrupted (--large-cluster-size-threshold, 50). */
  largeClusterSizeThreshold: number;
  /** Node IPAM: give nodes pod CIDRs (--allocate-node-cidrs, on: pod addresses are loopback addresses here). */
  allocateNodeCIDRs: boolean;
  /** Node IPAM: where pod CIDRs come from (--cluster-cidr; inside 127.0.0.0/8, apart from node addresses 127.0.x.y). */
  clusterCIDR: string;
  /** Node IPAM: the prefix length of each node's pod CIDR (--node-cidr-mask-size, 24). */
  nodeCIDRMaskSize: number;
  /** root-ca-cert-publisher: the CA bundle (PEM file) published as kube-root-ca.crt; '' publishes an empty ca.crt. */
  rootCAFile: string;
  /** eventttl: core/v1 Events are deleted this long after their last update (kube-apiserver --event-ttl, 1h). */
  eventTTLMs: number;
  /** podgc: terminated pods kept before the oldest are deleted (--terminated-pod-gc-threshold, 12500; 0 disables). */
  terminatedPodGCThreshold: number;
  /** podgc: how often it looks (Kubernetes' gcCheckPeriod, 20 s). */
  podGCPeriodMs: number;
  /** podgc: a pod's node must be missing this long before the pod is deleted (Kubernetes' quarantineTime, 40 s). */
  podGCQuarantineMs: number;
  /** kubernetes-service: how often the default/kubernetes Service and Endpoints are checked (10 s, as the API server's reconciler). */
  kubernetesServiceSyncMs: number;
  /** volume: where the local-path provisioner makes its volumes' directories (created when missing). */
  volumeDir: string;
  /** volume: the default StorageClass the local-path provisioner makes sure of ("" for none). */
  defaultStorageClass: string;
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
  /** job: the back-off before replacing a failed pod, doubled per failure since the last success (Kubernetes: 10 s). */
  jobBackoffBaseMs: number;
  /** job: the longest back-off (Kubernetes: 6 min). */
  jobBackoffMaxMs: number;
  /** deployment: concurrent Deployment reconciles (--concurrent-deployment-syncs, 5). */
  deploymentWorkers: number;
  /** replicaset: concurrent ReplicaSet reconciles (--concurrent-replicaset-syncs, 5). */
  replicaSetWorkers: number;
}

export const DEFAULT_CONTROLLER_CONFIG: ControllerConfig = {
  workers: 5,
  resyncMs: 0,
  maxEndpointsPerSlice: 100,
  nodeMonitorPeriodMs: 5_000,
  nodeMonitorGracePeriodMs: 50_000,
  nodeStartupGracePeriodMs: 60_000,
  nodeEvictionRate: 0.1,
  secondaryNodeEvictionRate: 0.01,
  unhealthyZoneThreshold: 0.55,
  largeClusterSizeThreshold: 50,
  allocateNodeCIDRs: true,
  clusterCIDR: '127.64.0.0/12',
  nodeCIDRMaskSize: 24,
  rootCAFile: '',
  eventTTLMs: 60 * 60_000,
  terminatedPodGCThreshold: 12_500,
  podGCPeriodMs: 20_000,
  podGCQuarantineMs: 40_000,
  kubernetesServiceSyncMs: 10_000,
  volumeDir: `${process.cwd()}/.flotilla/volumes`,
  defaultStorageClass: 'local-path',
  hpaSyncPeriodMs: 15_000,
  hpaDownscaleStabilizationMs: 300_000,
  hpaTolerance: 0.1,
  hpaCpuInitializationPeriodMs: 300_000,
  hpaInitialReadinessDelayMs: 30_000,
  resourceQuotaSyncPeriodMs: 300_000,
  jobBackoffBaseMs: 10_000,
  jobBackoffMaxMs: 360_000,
  deploymentWorkers: 5,
  replicaSetWorkers: 5,
};

/** A flag of `flotilla controllers` that sets one config field. Append new ones at the end. */
export interface ConfigFlag {
  flag: string;
  field: keyof ControllerConfig;
  /** 'number': a decimal such as --node-eviction-rate 0.1. */
  type: 'duration' | 'int' | 'string' | 'bool' | 'number';
  help: string;
}

export const CONFIG_FLAGS: ConfigFlag[] = [
  { flag: 'concurrent-syncs', field: 'workers', type: 'int', help: 'concurrent reconciles per controller' },
  { flag: 'resync-period', field: 'resyncMs', type: 'duration', help: 're-deliver every cached object this often (0: never)' },
  { flag: 'max-endpoints-per-slice', field: 'maxEndpointsPerSlice', type: 'int', help: 'endpoints per EndpointSlice (1-1000)' },
  { flag: 'node-monitor-period', field: 'nodeMonitorPeriodMs', type: 'duration', help: 'how often node health is checked' },
  { flag: 'node-monitor-grace-period', field: 'nodeMonitorGracePeriodMs', type: 'duration', help: 'silence after which a node is marked Unknown' },
  { flag: 'node-startup-grace-period', field: 'nodeStartupGracePeriodMs', type: 'duration', help: 'the same for a node that never reported Ready' },
  { flag: 'node-eviction-rate', field: 'nodeEvictionRate', type: 'number', help: 'nodes per second tainted for eviction in a healthy zone' },
  { flag: 'secondary-node-eviction-rate', field: 'secondaryNodeEvictionRate', type: 'number', help: 'nodes per second in a large, partly disrupted zone' },
  { flag: 'unhealthy-zone-threshold', field: 'unhealthyZoneThreshold', type: 'number', help: 'share of not-ready nodes that makes a zone partly disrupted' },
  { flag: 'large-cluster-size-threshold', field: 'largeClusterSizeThreshold', type: 'int', help: 'zones above this size keep evicting at the secondary rate' },
  { flag: 'allocate-node-cidrs', field: 'allocateNodeCIDRs', type: 'bool', help: 'give each node a pod CIDR from --cluster-cidr' },
  { flag: 'cluster-cidr', field: 'clusterCIDR', type: 'string', help: 'the range pod CIDRs come from (inside 127.0.0.0/8)' },
  { flag: 'node-cidr-mask-size', field: 'nodeCIDRMaskSize', type: 'int', help: 'prefix length of each node\'s pod CIDR' },
  { flag: 'root-ca-file', field: 'rootCAFile', type: 'string', help: 'CA bundle published in every namespace as kube-root-ca.crt (default: empty, the API is plain HTTP)' },
  { flag: 'event-ttl', field: 'eventTTLMs', type: 'duration', help: 'delete core/v1 Events this long after their last update (default 1h)' },
  { flag: 'terminated-pod-gc-threshold', field: 'terminatedPodGCThreshold', type: 'int', help: 'terminated pods kept before the oldest are deleted (default 12500; 0 disables)' },
  { flag: 'pod-gc-period', field: 'podGCPeriodMs', type: 'duration', help: 'how often the pod garbage collector looks (default 20s)' },
  { flag: 'pod-gc-quarantine', field: 'podGCQuarantineMs', type: 'duration', help: 'how long a pod\'s node must be missing before the pod is deleted (default 40s)' },
  { flag: 'kubernetes-service-sync', field: 'kubernetesServiceSyncMs', type: 'duration', help: 'how often default/kubernetes Service and Endpoints are checked (default 10s)' },
  { flag: 'volume-dir', field: 'volumeDir', type: 'string', help: 'directory of the local-path provisioner\'s volumes' },
  { flag: 'default-storage-class', field: 'defaultStorageClass', type: 'string', help: 'default StorageClass created for the local-path provisioner when none is default (default local-path; "" for none)' },
  { flag: 'horizontal-pod-autoscaler-sync-period', field: 'hpaSyncPeriodMs', type: 'duration', help: 'how often each HPA is evaluated' },
  { flag: 'horizontal-pod-autoscaler-downscale-stabilization', field: 'hpaDownscaleStabilizationMs', type: 'duration', help: 'default scale-down stabilization window' },
  { flag: 'horizontal-pod-autoscaler-cpu-initialization-period', field: 'hpaCpuInitializationPeriodMs', type: 'duration', help: 'how long after start a pod\'s CPU is not trusted' },
  { flag: 'horizontal-pod-autoscaler-initial-readiness-delay', field: 'hpaInitialReadinessDelayMs', type: 'duration', help: 'readiness changes within this of start are ignored' },
  { flag: 'resource-quota-sync-period', field: 'resourceQuotaSyncPeriodMs', type: 'duration', help: 'full recount of every quota this often' },
  { flag: 'horizontal-pod-autoscaler-tolerance', field: 'hpaTolerance', type: 'number', help: 'usage/target ratios within 1 ± this do not scale (default 0.1)' },
  { flag: 'job-backoff-base', field: 'jobBackoffBaseMs', type: 'duration', help: 'back-off before a failed Job pod is replaced, doubled per failure (default 10s)' },
  { flag: 'job-backoff-max', field: 'jobBackoffMaxMs', type: 'duration', help: 'the longest Job pod back-off (default 6m)' },
  { flag: 'concurrent-deployment-syncs', field: 'deploymentWorkers', type: 'int', help: 'Deployments reconciled at once (default 5)' },
  { flag: 'concurrent-replicaset-syncs', field: 'replicaSetWorkers', type: 'int', help: 'ReplicaSets reconciled at once (default 5)' },
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
