// Raft peer TLS for test clusters (flotilla server and raft-kv alike): the
// CA and each member's peer certificate made by the pki module, as
// `flotilla certs --peer ID` makes them, and the member flags that use them.
import { ensureCA, ensurePeerCert, pairPaths } from '../agents/pki/pki.ts';

/** The --peer-* flags of member `id`, its certificate issued (once) by the CA in pkiDir (made if absent). */
export async function peerTlsArgs(pkiDir: string, id: string): Promise<string[]> {
  const { ca } = await ensureCA(pkiDir);
  const { paths } = await ensurePeerCert(pkiDir, ca, id);
  return ['--peer-cert-file', paths.cert, '--peer-key-file', paths.key, '--peer-trusted-ca-file', pairPaths(pkiDir, 'ca').cert];
}
