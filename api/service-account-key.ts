// The key ServiceAccount tokens are signed with (--service-account-signing-key-file):
// `flotilla up` makes it once per cluster directory, owner-only, and every
// server of the cluster reads the same one. RSA 2048 as kubeadm's sa.key:
// every request carrying a token verifies its signature, and RSA verifies
// faster than ECDSA.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';

/** Creates the PEM private key at `path` unless it exists; returns whether it was created. */
export function ensureServiceAccountKey(path: string): boolean {
  if (existsSync(path)) return false;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  return true;
}
