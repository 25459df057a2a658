// The keys of ServiceAccount tokens, without a server: what the key flags
// accept (RSA and ECDSA private keys; public keys, private keys and
// certificates as verification keys) and refuse at start, that a token is
// accepted only from a listed key (rotation: old and new listed together),
// from a listed issuer and for one of the API's audiences.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { type ObjectLookup, ServiceAccountTokens, parsePublicKeys } from '../apiserver/auth/service-account-token.ts';
import { tempDir } from '../harness/procs.ts';

const dir = tempDir('sa-keys');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};
const priv = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
const pub = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }) as string;

const oldKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const newKey = generateKeyPairSync('ec', { namedCurve: 'P-384' });

// The objects the tokens name, as a store would hold them.
const objects: ObjectLookup = async (res, ns, name) => (res === '/serviceaccounts' && ns === 'ns' && name === 'sa' ? { json: '{"metadata":{}}', rv: 1, uid: 'sa-uid' } : undefined);
const issue = (tokens: ServiceAccountTokens, audiences = tokens.audiences) =>
  tokens.issue({ namespace: 'ns', serviceAccount: { name: 'sa', uid: 'sa-uid' }, audiences, expirationSeconds: 600 }).then((x) => x.token);
const accepted = async (tokens: ServiceAccountTokens, token: string) => {
  if (!tokens.claims(token)) return 'not ours';
  const r = await tokens.authenticate(token, objects);
  return 'user' in r ? r.user.user : r.refused;
};

t.test('flags: what a key file may hold, and clear errors at start', async (t) => {
  const rsa = ServiceAccountTokens.fromFiles({ signingKeyFile: file('old.key', priv(oldKey.privateKey)) });
  t.ok(rsa.canSign);
  t.equal(await accepted(rsa, await issue(rsa)), 'system:serviceaccount:ns:sa', 'RSA signs (RS256) and its public half verifies by default');
  const ec = ServiceAccountTokens.fromFiles({ signingKeyFile: file('new.key', priv(newKey.privateKey)) });
  t.equal(JSON.parse(Buffer.from((await issue(ec)).split('.')[0], 'base64url').toString()).alg, 'ES384', 'P-384 signs ES384');

  execFileSync('openssl', ['req', '-x509', '-key', join(dir, 'old.key'), '-out', join(dir, 'old.crt'), '-days', '1', '-subj', '/CN=sa'], { stdio: 'ignore' });
  const bundle = `${readFileSync(join(dir, 'old.crt'), 'utf8')}${pub(newKey.publicKey)}${priv(oldKey.privateKey)}`;
  t.equal(parsePublicKeys(bundle, 'bundle').length, 3, 'a certificate, a public key and a private key each give a verification key');

  t.throws(() => ServiceAccountTokens.fromFiles({ signingKeyFile: join(dir, 'missing.key') }), /--service-account-signing-key-file: cannot read .*missing\.key: ENOENT/);
  t.throws(() => ServiceAccountTokens.fromFiles({ signingKeyFile: file('junk.key', 'not a key') }), /--service-account-signing-key-file .*junk\.key: not a PEM private key/);
  const ed = generateKeyPairSync('ed25519');
  t.throws(() => ServiceAccountTokens.fromFiles({ signingKeyFile: file('ed.key', priv(ed.privateKey)) }), /ed25519 key is not supported \(RSA or ECDSA\)/);
  t.throws(() => ServiceAccountTokens.fromFiles({ keyFiles: [file('empty.pub', 'nothing here')] }), /--service-account-key-file .*empty\.pub: no PEM-encoded public key/);
  const none = ServiceAccountTokens.fromFiles({});
  t.notOk(none.canSign, 'no flags: no signing');
  t.equal(await accepted(none, await issue(rsa)), 'not signed by an accepted key', 'and no token is accepted');
});

t.test('rotation: tokens of every listed key are accepted, of an unlisted one refused', async (t) => {
  const before = ServiceAccountTokens.fromFiles({ signingKeyFile: join(dir, 'old.key') });
  const oldToken = await issue(before);
  // The new key signs; the old one is still listed while its tokens live.
  const during = ServiceAccountTokens.fromFiles({ signingKeyFile: join(dir, 'new.key'), keyFiles: [file('both.pub', pub(oldKey.publicKey) + pub(newKey.publicKey))] });
  const newToken = await issue(during);
  t.equal(await accepted(during, oldToken), 'system:serviceaccount:ns:sa', 'old key, still listed');
  t.equal(await accepted(during, newToken), 'system:serviceaccount:ns:sa', 'new key');
  const after = ServiceAccountTokens.fromFiles({ signingKeyFile: join(dir, 'new.key') });
  t.equal(await accepted(after, oldToken), 'not signed by an accepted key', 'old key no longer listed');
  t.equal(await accepted(after, newToken), 'system:serviceaccount:ns:sa');
});

t.test('issuers and audiences', async (t) => {
  const a = ServiceAccountTokens.fromFiles({ signingKeyFile: join(dir, 'old.key'), issuers: ['https://a.example'] });
  t.same(a.audiences, ['https://a.example'], 'the audience defaults to the issuer');
  const b = ServiceAccountTokens.fromFiles({ signingKeyFile: join(dir, 'old.key'), issuers: ['https://b.example', 'https://a.example'], audiences: ['api'] });
  const fromA = await issue(a, ['api']);
  t.equal(await accepted(b, fromA), 'system:serviceaccount:ns:sa', 'a token of a listed (older) issuer is accepted');
  t.equal(await accepted(ServiceAccountTokens.fromFiles({ signingKeyFile: join(dir, 'old.key') }), fromA), 'not ours', 'another issuer\'s token is not even considered');
  t.match(await accepted(b, await issue(a)), /audience/, 'a token for another audience is refused');
  const gone = await b.authenticate(await issue(b, ['api']), async () => undefined);
  t.same(gone, { refused: 'service account ns/sa has been deleted' });
});
