// Request bodies in Kubernetes' protobuf encoding (application/vnd.kubernetes.protobuf):
// the magic "k8s\0", then a runtime.Unknown naming apiVersion and kind, whose
// `raw` is the object. kubectl 1.32 sends `create rolebinding` and `create
// clusterrolebinding` this way, whatever the server advertises. Only the kinds
// in proto/kubernetes.proto are decoded (to the same JSON a client would have
// sent); any other kind is 415 with a message naming it, never a guess.
import type protobuf from 'protobufjs';
import { RoleBindingMessage, UnknownMessage } from '../../api/kubernetes-protobuf.ts';
import { ApiError, errors } from '../errors.ts';

export const PROTOBUF_TYPE = 'application/vnd.kubernetes.protobuf';
const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);


/** kind → message, for `apiVersion` rbac.authorization.k8s.io/v1. */
const DECODABLE: Record<string, protobuf.Type> = { RoleBinding: RoleBindingMessage, ClusterRoleBinding: RoleBindingMessage };

const unsupported = (what: string) => new ApiError(415, 'UnsupportedMediaType',
  `${what} cannot be sent as ${PROTOBUF_TYPE} to this server (it decodes only RoleBinding and ClusterRoleBinding that way); send application/json`);

/** Decodes a protobuf request body to the object's JSON form; 400 for a damaged body, 415 for a kind not decoded here. */
export function decodeProtobufBody(body: Buffer): Record<string, unknown> {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw errors.badRequest(`a ${PROTOBUF_TYPE} body must start with the bytes "k8s\\0"`);
  }
  let apiVersion: string;
  let kind: string;
  let obj: Record<string, unknown>;
  try {
    // The decoded message itself: `raw` stays the bytes it was on the wire.
    const u = UnknownMessage.decode(body.subarray(MAGIC.length)) as unknown as {
      typeMeta?: { apiVersion?: string; kind?: string }; raw?: Uint8Array; contentEncoding?: string;
    };
    apiVersion = u.typeMeta?.apiVersion ?? '';
    kind = u.typeMeta?.kind ?? '';
    if (u.contentEncoding) throw unsupported(`a body with content encoding "${u.contentEncoding}"`);
    const type = apiVersion === 'rbac.authorization.k8s.io/v1' ? DECODABLE[kind] : undefined;
    if (!type) throw unsupported(`${kind || 'an object without a kind'} (${apiVersion || 'no apiVersion'})`);
    obj = type.toObject(type.decode(u.raw ?? new Uint8Array(0)), { longs: Number, defaults: false, arrays: false, objects: false }) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw errors.badRequest(`the body of the request could not be decoded as ${PROTOBUF_TYPE}: ${(e as Error).message}`);
  }
  return { apiVersion, kind, ...fromWire(obj) };
}

/** protobuf's shapes to Kubernetes' JSON: Time as RFC 3339, empty maps and lists left out. */
function fromWire(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...o };
  const meta = out.metadata as Record<string, unknown> | undefined;
  if (meta) {
    const m: Record<string, unknown> = { ...meta };
    const ts = m.creationTimestamp as { seconds?: number } | undefined;
    if (ts) m.creationTimestamp = ts.seconds ? new Date(ts.seconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z') : undefined;
    for (const k of Object.keys(m)) {
      const v = m[k];
      if (v === undefined || (Array.isArray(v) && !v.length) || (v && typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).length)) delete m[k];
    }
    out.metadata = m;
  }
  return out;
}
