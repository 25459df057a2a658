// A ServiceProxy fed by a process's shared informers, with its connection
// counter: what `flotilla proxy` and the node agent both run.
import client from 'prom-client';
import type { SharedInformerFactory } from '../informer/factory.ts';
import type { Logger } from '../informer/stream.ts';
import type { SliceLike } from '../endpoints/ready.ts';
import { ServiceProxy } from './proxy.ts';
import type { ProxyService } from './table.ts';

export function startServiceProxy(o: { informers: SharedInformerFactory; nodeAddress: string; logger?: Logger; registry?: client.Registry }): ServiceProxy {
  const services = o.informers.informer('services');
  const slices = o.informers.informer('endpointslices');
  const connections = o.registry
    ? new client.Counter({ name: 'flotilla_proxy_connections_total', help: 'Service connections: proxied, refused (every endpoint tried refused), no-endpoints.', labelNames: ['result'], registers: [o.registry] })
    : undefined;
  return new ServiceProxy({
    nodeAddress: o.nodeAddress,
    logger: o.logger,
    onConnection: (result) => connections?.inc({ result }),
    source: {
      services: () => services.list() as unknown as ProxyService[],
      slices: (ns, svc) => slices.byLabel('kubernetes.io/service-name', svc).filter((s) => s.metadata?.namespace === ns) as unknown as SliceLike[],
      onChange: (fn) => {
        const h = { onAdd: fn, onUpdate: fn, onDelete: fn };
        const offs = [services.addEventHandler(h), slices.addEventHandler(h)];
        return () => offs.forEach((off) => off());
      },
    },
  });
}
