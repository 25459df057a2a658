// The API listener's TLS files (--tls-cert-file, --tls-private-key-file,
// --client-ca-file), read and checked at start: a missing file, a key that
// does not match its certificate or a client CA without TLS stops the server
// with a message, before it joins the cluster.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

export interface TlsFiles {
  cert: string;
  key: string;
  clientCA?: string;
}

function read(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${flag}: cannot read ${path}: ${(e as Error).message}`);
  }
}

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
