// Request bodies in Kubernetes' protobuf encoding: RoleBinding and
// ClusterRoleBinding decode to the JSON a client would have sent (kubectl 1.32
// sends `create rolebinding` this way: test/rbac-kubectl.test.ts); anything
// else is a clear 400 or 415.
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import t from 'tap';
import { ApiError } from '../apiserver/errors.ts';
import { decodeProtobufBody } from '../apiserver/http/protobuf-body.ts';

const root = protobuf.loadSync(fileURLToPath(new URL('../proto/kubernetes.proto', import.meta.url)));
const Unknown = root.lookupType('flotilla.kubernetes.Unknown');
const Binding = root.lookupType('flotilla.kubernetes.RoleBinding');
const MAGIC = Buffer.from('k8s\0', 'binary');

function envelope(apiVersion: string, kind: string, raw: Uint8Array, extra: Record<string, unknown> = {}): Buffer {
  return Buffer.concat([MAGIC, Unknown.encode(Unknown.create({ typeMeta: { apiVersion, kind }, raw, ...extra })).finish()]);
}

const binding = Binding.encode(Binding.create({
  metadata: { name: 'alice-cm', namespace: 'team', labels: { a: 'b' }, creationTimestamp: {} },
  subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'alice' }],
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cm-reader' },
})).finish();

const code = (f: () => unknown): number | undefined => {
  try {
    f();
  } catch (e) {
    return e instanceof ApiError ? e.code : -1;
  }
  return undefined;
};

t.test('a RoleBinding decodes to its JSON form', async (t) => {
  t.same(decodeProtobufBody(envelope('rbac.authorization.k8s.io/v1', 'RoleBinding', binding)), {
    apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding',
    metadata: { name: 'alice-cm', namespace: 'team', labels: { a: 'b' } },
    subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'alice' }],
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cm-reader' },
  });
  t.equal((decodeProtobufBody(envelope('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', binding)) as { kind: string }).kind, 'ClusterRoleBinding');
});

t.test('anything else is refused with a clear error', async (t) => {
  t.equal(code(() => decodeProtobufBody(Buffer.from('{"kind":"Pod"}'))), 400, 'no magic: 400');
  t.equal(code(() => decodeProtobufBody(Buffer.concat([MAGIC, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])]))), 400, 'a damaged envelope: 400');
  t.equal(code(() => decodeProtobufBody(envelope('rbac.authorization.k8s.io/v1', 'RoleBinding', Buffer.from([0x0a, 0xff, 0x01])))), 400, 'a damaged object: 400');
  t.equal(code(() => decodeProtobufBody(envelope('v1', 'Pod', binding))), 415, 'a kind not decoded here: 415');
  t.equal(code(() => decodeProtobufBody(envelope('rbac.authorization.k8s.io/v1', 'RoleBinding', binding, { contentEncoding: 'gzip' }))), 415, 'an encoded body: 415');
  t.equal(code(() => decodeProtobufBody(MAGIC)), 415, 'an empty envelope names no kind: 415');
});
