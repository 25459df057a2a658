// GET pods/NAME/log: checked here (the container name, as Kubernetes'
// LogLocation does) and proxied to the node agent running the pod — its
// address is the Node's InternalIP and its port the Node's
// status.daemonEndpoints.kubeletEndpoint.Port — which streams the log file.
import { request } from 'undici';
import type { AgentDialer } from './agent-dialer.ts';
import { kindByResource } from '../../api/kinds/index.ts';
import { ApiError, errors } from '../errors.ts';
import type { Registry } from '../registry.ts';
import type { RequestContext } from './handlers.ts';
import type { ResourceRequest } from './info.ts';

const NODES = kindByResource('', 'v1', 'nodes')!;
/** The PodLogOptions the agent understands. */
const FORWARDED = ['follow', 'previous', 'timestamps', 'tailLines', 'sinceSeconds', 'sinceTime', 'limitBytes'];

interface PodShape {
  spec?: { nodeName?: string; containers?: { name: string }[]; initContainers?: { name: string }[]; ephemeralContainers?: { name: string }[] };
}

/**
 * The pod's container a log or exec request means (the `container`
 * parameter, or the only container), checked as Kubernetes' LogLocation
 * checks it; and the pod's node.
 */
export async function podContainer(reg: Registry, r: ResourceRequest, containerParam: string | null, timeoutMs: number): Promise<{ container: string; nodeName?: string }> {
  await reg.sync({ kind: 'linearizable' }, timeoutMs);
  const pod = JSON.parse(reg.get(r.kind, r.namespace, r.name).json) as PodShape;
  const containers = (pod.spec?.containers ?? []).map((c) => c.name);
  const inits = (pod.spec?.initContainers ?? []).map((c) => c.name);
  const all = [...containers, ...inits, ...(pod.spec?.ephemeralContainers ?? []).map((c) => c.name)];
  let container = containerParam ?? '';
  if (!container) {
    if (containers.length !== 1) {
      const more = inits.length ? ` or one of the init containers: [${inits.join(' ')}]` : '';
      throw errors.badRequest(`a container name must be specified for pod ${r.name}, choose one of: [${containers.join(' ')}]${more}`);
    }
    container = containers[0];
  } else if (!all.includes(container)) {
    throw errors.badRequest(`container ${container} is not valid for pod ${r.name}`);
  }
  return { container, nodeName: pod.spec?.nodeName || undefined };
}

/** The node agent's endpoint: the Node's InternalIP and status.daemonEndpoints.kubeletEndpoint.Port. */
export function agentEndpoint(reg: Registry, nodeName: string, podName: string): { address: string; port: number } {
  let node: { status?: { addresses?: { type: string; address: string }[]; daemonEndpoints?: { kubeletEndpoint?: { Port?: number } } } };
  try {
    node = JSON.parse(reg.get(NODES, '', nodeName).json) as typeof node;
  } catch {
    throw new ApiError(503, 'ServiceUnavailable', `node "${nodeName}" of pod "${podName}" is not registered: no node agent serves it`, { retryAfterSeconds: 5 });
  }
  const address = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  const port = node.status?.daemonEndpoints?.kubeletEndpoint?.Port;
  if (!address || !port) throw new ApiError(503, 'ServiceUnavailable', `node "${nodeName}" publishes no agent endpoint (InternalIP and kubeletEndpoint port)`, { retryAfterSeconds: 5 });
  return { address, port };
}

export async function servePodLog(reg: Registry, r: ResourceRequest, ctx: RequestContext, dialer?: AgentDialer): Promise<void> {
  const { container, nodeName } = await podContainer(reg, r, ctx.query.get('container'), ctx.timeoutMs);
  // Not scheduled yet: no node has its logs, and there are none (Kubernetes answers with an empty log too).
  if (!nodeName) {
    ctx.res.writeHead(200, { 'content-type': 'text/plain' }).end();
    return;
  }
  const { address, port } = agentEndpoint(reg, nodeName, r.name);
  const q = new URLSearchParams();
  for (const k of FORWARDED) {
    const v = ctx.query.get(k);
    if (v !== null) q.set(k, v);
  }
  const url = `${dialer?.scheme ?? 'http'}://${address}:${port}/containerLogs/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}/${encodeURIComponent(container)}?${q}`;
  const abort = new AbortController();
  ctx.req.on('close', () => abort.abort());
  ctx.res.on('close', () => abort.abort());
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, { signal: abort.signal, headersTimeout: 10_000, bodyTimeout: 0, ...(dialer?.dispatcher ? { dispatcher: dialer.dispatcher } : {}) });
  } catch (e) {
    throw new ApiError(503, 'ServiceUnavailable', `the node agent of "${nodeName}" (${address}:${port}) cannot be reached: ${(e as Error).message}`, { retryAfterSeconds: 5 });
  }
  ctx.res.writeHead(res.statusCode, { 'content-type': String(res.headers['content-type'] ?? 'text/plain'), 'cache-control': 'no-cache' });
  ctx.res.flushHeaders?.();
  try {
    for await (const chunk of res.body) ctx.res.write(chunk);
  } catch {
    /* the client or the agent went away */
  }
  ctx.res.end();
}
