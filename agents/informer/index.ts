// The informer library every Flotilla consumer uses: a cache of one kind fed
// by LIST + the EVENTS stream (informer), a rate-limited work queue for
// controller workers (workqueue), the stream reading underneath (stream),
// finding NATS (nats) and minimal shapes of common kinds (types).
export * from './informer.ts';
export * from './nats.ts';
export * from './stream.ts';
export * from './types.ts';
export * from './workqueue.ts';
export * from './factory.ts';
