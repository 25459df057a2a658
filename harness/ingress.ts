// The ingress proxy process (`flotilla ingress`) for tests: HTTP and
// optionally HTTPS on free loopback ports.
import { ConsumerProcess } from './consumer.ts';

export interface IngressProcessOptions {
  servers: readonly string[];
  nats: string;
  tls?: boolean;
  args?: string[];
  dir?: string;
}

export async function startIngress(o: IngressProcessOptions): Promise<ConsumerProcess & { http: string; https: string }> {
  const p = await ConsumerProcess.start({
    command: 'ingress', servers: o.servers, nats: o.nats, ports: 2, dir: o.dir,
    args: ([http, https]) => ['--listen', `127.0.0.1:${http}`, '--listen-tls', o.tls ? `127.0.0.1:${https}` : 'none', ...(o.args ?? [])],
  });
  // Getters (not copied values), so they follow a restart onto new ports.
  return Object.defineProperties(p, {
    http: { get: () => `127.0.0.1:${p.ports[0]}` },
    https: { get: () => (o.tls ? `127.0.0.1:${p.ports[1]}` : '') },
  }) as ConsumerProcess & { http: string; https: string };
}
