// kube-scheduler's metrics under its names (subsystem "scheduler").
import client from 'prom-client';

export interface SchedulerMetrics {
  attempts: client.Counter<'result' | 'profile'>;
  pending: client.Gauge<'queue'>;
  e2e: client.Histogram<'result' | 'profile'>;
  algorithm: client.Histogram;
  podAttempts: client.Histogram;
  bindingsInFlight: client.Gauge;
  binding: client.Histogram<'result'>;
  leading: client.Gauge;
  preemptionAttempts: client.Counter;
  preemptionVictims: client.Histogram;
  preemptionDuration: client.Histogram;
}

const exp = (start: number, factor: number, n: number) => client.exponentialBuckets(start, factor, n);

export function schedulerMetrics(registry: client.Registry): SchedulerMetrics {
  const registers = [registry];
  return {
    attempts: new client.Counter({ name: 'scheduler_schedule_attempts_total', help: 'Number of attempts to schedule pods, by the result. \'unschedulable\' means a pod could not be scheduled, while \'error\' means an internal scheduler problem.', labelNames: ['result', 'profile'], registers }),
    pending: new client.Gauge({ name: 'scheduler_pending_pods', help: 'Number of pending pods, by the queue type. \'active\' means number of pods in activeQ; \'backoff\' means number of pods in backoffQ; \'unschedulable\' means number of pods in unschedulablePods.', labelNames: ['queue'], registers }),
    e2e: new client.Histogram({ name: 'scheduler_e2e_scheduling_duration_seconds', help: 'E2e scheduling latency in seconds: from the pod entering the queue to its binding.', labelNames: ['result', 'profile'], buckets: exp(0.001, 2, 20), registers }),
    algorithm: new client.Histogram({ name: 'scheduler_scheduling_algorithm_duration_seconds', help: 'Scheduling algorithm latency in seconds.', buckets: exp(0.0001, 2, 16), registers }),
    podAttempts: new client.Histogram({ name: 'scheduler_pod_scheduling_attempts', help: 'Number of attempts to successfully schedule a pod.', buckets: exp(1, 2, 5), registers }),
    bindingsInFlight: new client.Gauge({ name: 'flotilla_scheduler_bindings_in_flight', help: 'Bindings sent and not yet answered.', registers }),
    binding: new client.Histogram({ name: 'scheduler_binding_duration_seconds', help: 'Binding latency in seconds (pre-bind writes and the pods/binding request).', labelNames: ['result'], buckets: exp(0.001, 2, 15), registers }),
    leading: new client.Gauge({ name: 'flotilla_scheduler_leading', help: '1 while this replica schedules pods.', registers }),
    preemptionAttempts: new client.Counter({ name: 'scheduler_preemption_attempts_total', help: 'Total preemption attempts in the cluster till now', registers }),
    preemptionVictims: new client.Histogram({ name: 'scheduler_preemption_victims', help: 'Number of selected preemption victims', buckets: exp(1, 2, 7), registers }),
    preemptionDuration: new client.Histogram({ name: 'flotilla_scheduler_preemption_duration_seconds', help: 'Time spent looking for preemption victims.', buckets: exp(0.0001, 2, 16), registers }),
  };
}
