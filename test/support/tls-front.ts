// A TLS front for a plain-HTTP API server, for tests that drive the real
// kubectl with bearer tokens: kubectl sends no credentials over plain HTTP.
// TLS is terminated and the bytes are piped on unchanged (watches and
// upgrades pass). The certificate is a throwaway self-signed one for
// 127.0.0.1 (the kubeconfig skips verification). Only until the servers
// serve HTTPS themselves.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';

export class TlsFront {
  private readonly sockets = new Set<net.Socket>();
  private constructor(private readonly server: tls.Server, readonly url: string) {}

  /** Listens on a free loopback port in front of `backend` (http://host:port); the key and certificate go into `dir`. */
  static async start(backend: string, dir: string): Promise<TlsFront> {
    const key = join(dir, 'front.key');
    const cert = join(dir, 'front.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const { hostname, port } = new URL(backend);
    const sockets = new Set<net.Socket>();
    const server = tls.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (client) => {
      const up = net.connect(Number(port), hostname);
      for (const s of [client, up]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => { client.destroy(); up.destroy(); });
      }
      client.pipe(up).pipe(client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
    const front = new TlsFront(server, `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    (front as unknown as { sockets: Set<net.Socket> }).sockets = sockets;
    return front;
  }

  /** A kubeconfig for this front that authenticates with `token`. */
  writeKubeconfig(path: string, token: string, namespace = 'default'): string {
    writeFileSync(path, [
      'apiVersion: v1', 'kind: Config', 'current-context: front',
      'clusters:', '- name: front', '  cluster:', `    server: ${this.url}`, '    insecure-skip-tls-verify: true',
      'contexts:', '- name: front', '  context:', '    cluster: front', '    user: front', `    namespace: ${namespace}`,
      'users:', '- name: front', '  user:', `    token: ${token}`, '',
    ].join('\n'));
    return path;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
