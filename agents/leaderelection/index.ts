// Leader election for every leader-elected Flotilla component (the
// controller manager, the scheduler): client-go's tools/leaderelection on a
// coordination.k8s.io/v1 Lease (elector), the election record and the
// expiry judgement by local observation time (record), and the Prometheus
// metrics under client-go's names (metrics).
export * from './elector.ts';
export * from './metrics.ts';
export * from './record.ts';
