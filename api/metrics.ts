// The resource-usage reports node agents publish on NATS (core subjects, not
// JetStream: a lost sample is replaced by the next) and that every server
// keeps for the metrics.k8s.io/v1beta1 API (PodMetrics, NodeMetrics).

/** Subject prefix; a node publishes on `metrics.pods.<node>`. */
export const METRICS_SUBJECT_PREFIX = 'metrics.pods';
/** What a server subscribes to: every node's reports. */
export const METRICS_SUBJECT_WILDCARD = `${METRICS_SUBJECT_PREFIX}.*`;

/** The subject node `node` publishes its reports on. */
export function metricsSubject(node: string): string {
  if (!node || /[\s.*>]/.test(node)) throw new Error(`node name "${node}" cannot be a NATS subject token`);
  return `${METRICS_SUBJECT_PREFIX}.${node}`;
}

export const METRICS_GROUP = 'metrics.k8s.io';
export const METRICS_VERSION = 'v1beta1';

/** cpu and memory as quantities ("250m", "64Mi"). */
export interface ResourceUsage {
  cpu: string;
  memory: string;
}

export interface ContainerUsageReport {
  name: string;
  usage: ResourceUsage;
}

export interface PodUsageReport {
  namespace: string;
  name: string;
  containers: ContainerUsageReport[];
}

/** One report of a node: the usage of each of its pods (and of itself) over `window`, measured at `timestamp`. */
export interface NodeUsageReport {
  node: string;
  /** RFC 3339. */
  timestamp: string;
  /** The measurement window as a duration ("10s", "30s"). */
  window: string;
  /** The node's own usage (for NodeMetrics); optional. */
  usage?: ResourceUsage;
  pods: PodUsageReport[];
}
