// Who may use the node agent's endpoints (containerLogs, exec, attach,
// portForward). With --client-ca-file the agent serves TLS and these take
// only a client certificate that verifies against that CA and names an
// allowed user (--endpoint-users, default the API server's
// kube-apiserver-kubelet-client, or any member of system:masters): the API
// server, which authorized the user's request, and nobody who merely reaches
// the port. Without TLS anyone who can reach the port may use them (the
// README says so). Kubernetes' kubelet asks the API server (webhook
// authorization) instead; a fixed list keeps the agent working while the API
// is unreachable, which is when logs are needed most.
import type { IncomingMessage } from 'node:http';
import { authenticateCertificate } from '../../api/x509-client-auth.ts';

export interface EndpointRefusal {
  code: 401 | 403;
  message: string;
}

export type EndpointAuthorizer = (req: IncomingMessage) => EndpointRefusal | undefined;

export const DEFAULT_ENDPOINT_USERS = ['kube-apiserver-kubelet-client'];
const MASTERS = 'system:masters';

/** The authorizer for a listener with TLS and a client CA (`tls`), or anyone's when there is none. */
export function endpointAuthorizer(tls: boolean, users: readonly string[] = DEFAULT_ENDPOINT_USERS): EndpointAuthorizer {
  if (!tls) return () => undefined;
  const allowed = new Set(users);
  return (req) => {
    const r = authenticateCertificate(req);
    if (!r) return { code: 401, message: 'a client certificate is required' };
    if ('error' in r) return { code: 401, message: r.error };
    if (allowed.has(r.user.user) || r.user.groups.includes(MASTERS)) return undefined;
    return { code: 403, message: `user "${r.user.user}" may not use the node agent's endpoints` };
  };
}
