// The node lifecycle and taint eviction controllers' metrics, under
// Kubernetes' names, registered once per registry.
import client from 'prom-client';

export interface NodeLifecycleMetrics {
  /** node_collector_zone_health: percentage of healthy nodes per zone. */
  zoneHealth: client.Gauge<'zone'>;
  /** node_collector_unhealthy_nodes_in_zone. */
  unhealthyNodes: client.Gauge<'zone'>;
  /** node_collector_zone_size. */
  zoneSize: client.Gauge<'zone'>;
  /** taint_eviction_controller_pod_deletions_total. */
  podDeletions: client.Counter<string>;
}

const byRegistry = new WeakMap<client.Registry, NodeLifecycleMetrics>();

export function nodeLifecycleMetrics(registry: client.Registry): NodeLifecycleMetrics {
  let m = byRegistry.get(registry);
  if (!m) {
    m = {
      zoneHealth: new client.Gauge({ name: 'node_collector_zone_health', help: 'Gauge measuring percentage of healthy nodes per zone.', labelNames: ['zone'], registers: [registry] }),
      unhealthyNodes: new client.Gauge({ name: 'node_collector_unhealthy_nodes_in_zone', help: 'Gauge measuring number of not Ready Nodes per zones.', labelNames: ['zone'], registers: [registry] }),
      zoneSize: new client.Gauge({ name: 'node_collector_zone_size', help: 'Gauge measuring number of registered Nodes per zones.', labelNames: ['zone'], registers: [registry] }),
      podDeletions: new client.Counter({ name: 'taint_eviction_controller_pod_deletions_total', help: 'Total number of Pods deleted by the taint eviction controller since its start.', registers: [registry] }),
    };
    byRegistry.set(registry, m);
  }
  return m;
}
