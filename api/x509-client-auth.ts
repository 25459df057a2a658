// Client-certificate authentication (Kubernetes' x509 authenticator): the
// TLS listener asks every client for a certificate but does not require one
// (bearer tokens and anonymous requests still work), and verifies what it gets
// against --client-ca-file. A verified certificate with the clientAuth usage
// names the user in its CN and the groups in its O entries. A certificate
// that was presented but does not verify is an error: the request is refused
// (401) unless another credential authenticates it, as with Kubernetes'
// union of authenticators. Shared by the API server and the node agent's
// endpoints (agents/agent/endpoint-auth.ts).
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** What the client certificate of a request says: nothing (none presented), a user, or why it was refused. */
export type CertificateResult = undefined | { user: { user: string; groups: string[] } } | { error: string };

// One answer per connection: the certificate cannot change on a TLS socket
// (Node does not allow client-initiated renegotiation), and parsing it for
// every request of a keep-alive connection would be wasted work.
const cache = new WeakMap<object, CertificateResult>();

const values = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export function authenticateCertificate(req: IncomingMessage): CertificateResult {
  const socket = req.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return undefined; // plain HTTP
  if (cache.has(socket)) return cache.get(socket);
  const out = evaluate(socket as TLSSocket);
  cache.set(socket, out);
  return out;
}

function evaluate(socket: TLSSocket): CertificateResult {
  const cert = socket.getPeerCertificate();
  if (!cert || !Object.keys(cert).length) return undefined;
  // Verified by OpenSSL against --client-ca-file (chain, signature, validity dates).
  if (!socket.authorized) return { error: `x509: ${String(socket.authorizationError ?? 'certificate not verified')}` };
  // Kubernetes verifies with ExtKeyUsageClientAuth: a serving certificate is not a user's.
  const eku = cert.ext_key_usage;
  if (eku && eku.length && !eku.includes(CLIENT_AUTH)) return { error: 'x509: certificate specifies an incompatible key usage' };
  const cn = values(cert.subject?.CN)[0] ?? '';
  if (!cn) return { error: 'x509: certificate has no common name (the user)' };
  return { user: { user: cn, groups: values(cert.subject?.O) } };
}
