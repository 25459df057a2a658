// Finding and connecting to the NATS servers that carry the EVENTS stream.
// The shared config loader (agents/client/config.ts) knows where the API
// servers are and reads cluster.json's "nats"; this adds what a pure stream
// reader needs: a NATS URL without requiring an API server to be configured.
import { type ConnectionOptions, type NatsConnection, connect } from 'nats';
import { ConfigError, loadClientConfig } from '../client/config.ts';
import { natsServerOptions } from '../../api/nats-url.ts';

/**
 * The NATS URL[,URL…] to use: `flag`, then $FLOTILLA_NATS, then the "nats"
 * of ./.flotilla/cluster.json (through the shared config loader). Throws
 * ConfigError saying how to configure one.
 */
export function resolveNatsUrl(flag?: string, env: NodeJS.ProcessEnv = process.env, cwd?: string): string {
  const explicit = flag?.trim() || env.FLOTILLA_NATS?.trim();
  if (explicit) return explicit;
  let nats: string | undefined;
  try {
    nats = loadClientConfig({ env, cwd }).nats;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
  }
  if (nats) return nats;
  throw new ConfigError('no NATS server configured: pass --nats URL[,URL…], set $FLOTILLA_NATS, or run in the directory where `flotilla up` wrote .flotilla/cluster.json');
}

/** A connection that reconnects forever (what long-running consumers want). */
export function connectNats(urls: string | readonly string[], name: string, opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  return connect({
    ...natsServerOptions(urls), name, maxReconnectAttempts: -1, reconnectTimeWait: 500, waitOnFirstConnect: true, ...opts,
  });
}
