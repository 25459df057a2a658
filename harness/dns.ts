// The cluster DNS process (`flotilla dns`) for tests: UDP and TCP on a free
// loopback port.
import { ConsumerProcess } from './consumer.ts';

export interface DnsProcessOptions {
  servers: readonly string[];
  nats: string;
  /** --upstream (default none: names outside the zone are REFUSED). */
  upstream?: string;
  dir?: string;
}

export async function startDns(o: DnsProcessOptions): Promise<ConsumerProcess & { address: string }> {
  const p = await ConsumerProcess.start({
    command: 'dns', servers: o.servers, nats: o.nats, ports: 1, dir: o.dir,
    args: ([port]) => ['--listen', `127.0.0.1:${port}`, '--upstream', o.upstream ?? 'none'],
  });
  // A getter (not a copied value), so it follows a restart onto new ports.
  return Object.defineProperty(p, 'address', { get: () => `127.0.0.1:${p.ports[0]}` }) as ConsumerProcess & { address: string };
}
