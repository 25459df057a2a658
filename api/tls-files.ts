// TLS files named by flags (--tls-cert-file, --tls-private-key-file,
// --client-ca-file: the API server's and the node agent's listeners; the API
// server's client identity toward agents), read and checked at start: a
// missing file, a key that does not match its certificate or a client CA
// without TLS stops the process with a message, before it serves anything.
import { readFlagFile } from './flag-file.ts';
import { createSecureContext } from 'node:tls';

export interface TlsFiles {
  cert: string;
  key: string;
  clientCA?: string;
}

const read = readFlagFile;

export function loadTls(certFile?: string, keyFile?: string, clientCAFile?: string): TlsFiles | undefined {
  if (!certFile !== !keyFile) throw new Error('--tls-cert-file and --tls-private-key-file go together');
  if (!certFile || !keyFile) {
    // kubectl never sends a client certificate over plain HTTP: the flag would silently do nothing.
    if (clientCAFile) throw new Error('--client-ca-file needs TLS (--tls-cert-file and --tls-private-key-file)');
    return undefined;
  }
  const files: TlsFiles = { cert: read(certFile, '--tls-cert-file'), key: read(keyFile, '--tls-private-key-file') };
  if (clientCAFile) files.clientCA = read(clientCAFile, '--client-ca-file');
  try {
    createSecureContext({ cert: files.cert, key: files.key, ca: files.clientCA });
  } catch (e) {
    throw new Error(`TLS files (${certFile}, ${keyFile}${clientCAFile ? `, ${clientCAFile}` : ''}) are not usable: ${(e as Error).message}`);
  }
  return files;
}

/**
 * The client identity the server presents to node agents (kube-apiserver's
 * --kubelet-client-certificate/--kubelet-client-key), and the CA their
 * serving certificates are checked against (--kubelet-certificate-authority;
 * without it, as kube-apiserver, the agent's certificate is not verified).
 */
export interface AgentClientTls {
  cert: string;
  key: string;
  ca?: string;
}

export function loadAgentClientTls(certFile?: string, keyFile?: string, caFile?: string): AgentClientTls | undefined {
  if (!certFile !== !keyFile) throw new Error('--kubelet-client-certificate and --kubelet-client-key go together');
  if (!certFile || !keyFile) {
    if (caFile) throw new Error('--kubelet-certificate-authority needs --kubelet-client-certificate and --kubelet-client-key');
    return undefined;
  }
  const files: AgentClientTls = { cert: read(certFile, '--kubelet-client-certificate'), key: read(keyFile, '--kubelet-client-key') };
  if (caFile) files.ca = read(caFile, '--kubelet-certificate-authority');
  try {
    createSecureContext({ cert: files.cert, key: files.key, ca: files.ca });
  } catch (e) {
    throw new Error(`node agent client TLS files (${certFile}, ${keyFile}${caFile ? `, ${caFile}` : ''}) are not usable: ${(e as Error).message}`);
  }
  return files;
}
