// pods/NAME/exec, pods/NAME/attach and pods/NAME/portforward: the API
// server checks the pod (and container) and then proxies the upgrade, bytes
// both ways, to the node agent running the pod (its /exec, /attach and
// /portForward endpoints), which speaks the protocol with the client — as
// kube-apiserver's upgrade-aware proxy hands them to the kubelet. exec and
// attach take WebSocket upgrades (v5.channel.k8s.io; kubectl ≥ 1.30 uses
// them, SPDY is refused); portforward takes the WebSocket kubectl ≥ 1.31
// opens (SPDY/3.1+portforward.k8s.io, SPDY tunnelled in binary messages) and
// a plain SPDY/3.1 upgrade (its fallback), both spoken by the agent.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ApiError, errors } from '../errors.ts';
import type { Registry } from '../registry.ts';
import { parseResourcePath } from './info.ts';
import { type AgentDialer, agentDialer, forwardedHeader } from './agent-dialer.ts';
import { agentEndpoint, podContainer } from './pod-log.ts';

/** Answers an upgrade request with the error's Status and closes the connection. */
export function refuseUpgrade(socket: Duplex, e: unknown): void {
  const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', (e as Error).message);
  const status = err.toStatus();
  const body = JSON.stringify(status);
  socket.end(`HTTP/1.1 ${err.code} ${err.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

const PLAIN = agentDialer();

export async function proxyPodUpgrade(reg: Registry, req: IncomingMessage, socket: Duplex, head: Buffer, timeoutMs: number, dialer: AgentDialer = PLAIN): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const r = parseResourcePath(req.method ?? 'GET', url.pathname, url.searchParams);
    if (!r || r.kind.kind !== 'Pod' || r.kind.group !== '' || !['exec', 'attach', 'portforward'].includes(r.subresource)) {
      throw errors.badRequest(`${url.pathname} cannot be upgraded`);
    }
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    let path: string;
    let nodeName: string | undefined;
    const podPath = `${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`;
    if (r.subresource === 'portforward') {
      await reg.sync({ kind: 'linearizable' }, timeoutMs);
      const pod = JSON.parse(reg.get(r.kind, r.namespace, r.name).json) as { spec?: { nodeName?: string } };
      nodeName = pod.spec?.nodeName || undefined;
      if (!nodeName) throw errors.badRequest(`pod ${r.name} does not have a host assigned`);
      if (upgrade !== 'websocket' && upgrade !== 'spdy/3.1') throw errors.badRequest(`port forwarding needs a WebSocket or SPDY/3.1 upgrade; ${String(req.headers.upgrade)} is not supported`);
      path = `/portForward/${podPath}?${url.searchParams}`;
    } else {
      // The pod and container first: kubectl retries a failed WebSocket upgrade over SPDY, and should see why it failed.
      const pc = await podContainer(reg, r, url.searchParams.get('container'), timeoutMs);
      nodeName = pc.nodeName;
      if (!nodeName) throw errors.badRequest(`pod ${r.name} does not have a host assigned`);
      if (upgrade !== 'websocket') throw errors.badRequest(`${r.subresource} needs a WebSocket upgrade (v5.channel.k8s.io); ${String(req.headers.upgrade)} is not supported`);
      url.searchParams.delete('container');
      path = `/${r.subresource}/${podPath}/${encodeURIComponent(pc.container)}?${url.searchParams}`;
    }
    const { address, port } = agentEndpoint(reg, nodeName, r.name);
    let joined = false;
    const upstream = dialer.connect(address, port, () => {
      joined = true;
      // The request as the client sent it, to the agent's path, without the client's credentials; then the two sockets are joined.
      const lines = [`${req.method === 'POST' ? 'POST' : 'GET'} ${path} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i];
        if (!forwardedHeader(name)) continue;
        lines.push(`${name}: ${name.toLowerCase() === 'host' ? `${address}:${port}` : req.rawHeaders[i + 1]}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.once('error', (e) => {
      if (!joined && !socket.destroyed) refuseUpgrade(socket, new ApiError(503, 'ServiceUnavailable', `the node agent of "${nodeName}" (${address}:${port}) cannot be reached: ${e.message}`));
    });
    const end = () => {
      upstream.destroy();
      socket.destroy();
    };
    upstream.on('close', () => { if (joined) end(); });
    upstream.on('error', () => { if (joined) end(); });
    socket.on('close', end);
    socket.on('error', end);
  } catch (e) {
    refuseUpgrade(socket, e);
  }
}
