// The client library every Flotilla client process uses: where the cluster
// is (config), how to talk to it (api), how to name kinds (kinds) and how
// client-side apply computes its patch (merge-patch).
export * from './api.ts';
export * from './config.ts';
export * from './kinds.ts';
export * from './merge-patch.ts';
