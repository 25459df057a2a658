// How the API server reaches node agents for pods/log, exec, attach and
// portforward: plain TCP, or TLS with the server's own client certificate
// when it was started with --kubelet-client-certificate (the agents then
// accept only it, not whoever can reach their port). The user's credentials
// are never forwarded: the agent trusts the API server, which has already
// authorized the request.
import { type Socket, connect as connectTcp } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import type { AgentClientTls } from '../../api/tls-files.ts';

export interface AgentDialer {
  readonly scheme: 'http' | 'https';
  /** The undici dispatcher for plain requests (pods/log). */
  readonly dispatcher: Dispatcher | undefined;
  /** A connection to host:port; `ready` fires once it can carry the request (after the TLS handshake). */
  connect(host: string, port: number, ready: () => void): Socket;
}

export function agentDialer(tls?: AgentClientTls): AgentDialer {
  if (!tls) {
    return {
      scheme: 'http', dispatcher: undefined,
      connect: (host, port, ready) => connectTcp({ host, port }).once('connect', ready),
    };
  }
  const options = { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}), rejectUnauthorized: !!tls.ca };
  return {
    scheme: 'https',
    dispatcher: new Agent({ connect: options }),
    connect: (host, port, ready) => connectTls({ host, port, ...options }).once('secureConnect', ready),
  };
}

/** Request headers never passed on to an agent: the caller's credentials and identity claims. */
export function forwardedHeader(name: string): boolean {
  const n = name.toLowerCase();
  return n !== 'authorization' && n !== 'proxy-authorization' && n !== 'cookie' && !n.startsWith('impersonate-');
}
