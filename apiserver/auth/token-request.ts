// POST .../serviceaccounts/NAME/token: authentication.k8s.io/v1 TokenRequest,
// what `kubectl create token` and the node agent call. Nothing is stored: the
// answer is the request with its spec defaulted and a signed token in its
// status (Kubernetes' TokenREST). Authorized before it gets here like any
// request: verb create on serviceaccounts/token.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { kindByResource } from '../../api/kinds/index.ts';
import { ApiError, errors } from '../errors.ts';
import { decodeBody, mediaType, readBody, sendJson } from '../http/io.ts';
import type { ResourceRequest } from '../http/info.ts';
import type { Registry } from '../registry.ts';
import type { ServiceAccountTokens } from './service-account-token.ts';

const GROUP = 'authentication.k8s.io';
const API_VERSION = `${GROUP}/v1`;
/** TokenRequestSpec's default lifetime, and the shortest and longest Kubernetes accepts. */
export const DEFAULT_EXPIRATION_SECONDS = 3600;
const MIN_EXPIRATION_SECONDS = 600;
const MAX_EXPIRATION_SECONDS = 2 ** 32;

interface BoundObjectRef { kind?: string; apiVersion?: string; name?: string; uid?: string }
interface TokenRequest {
  kind?: string; apiVersion?: string; metadata?: Record<string, unknown>;
  spec?: { audiences?: string[] | null; expirationSeconds?: number | null; boundObjectRef?: BoundObjectRef | null };
}

const invalid = (field: string, value: unknown, message: string) =>
  errors.invalid(GROUP, 'TokenRequest', '', [{ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(value)}: ${message}` }]);

function decodeRequest(body: unknown): TokenRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest('the body must be a TokenRequest object');
  const tr = body as TokenRequest;
  if (tr.kind && tr.kind !== 'TokenRequest') throw errors.badRequest(`the kind in the data (${tr.kind}) does not match the expected kind (TokenRequest)`);
  if (tr.apiVersion && tr.apiVersion !== API_VERSION) throw errors.badRequest(`the API version in the data (${tr.apiVersion}) does not match the expected API version (${API_VERSION})`);
  const spec = tr.spec ?? {};
  if (typeof spec !== 'object' || Array.isArray(spec)) throw errors.badRequest('TokenRequest spec must be an object');
  if (spec.audiences != null && !(Array.isArray(spec.audiences) && spec.audiences.every((a) => typeof a === 'string'))) {
    throw errors.badRequest('TokenRequest in version "v1" cannot be handled as a TokenRequest: spec.audiences must be a list of strings');
  }
  const exp = spec.expirationSeconds;
  if (exp != null && !Number.isInteger(exp)) throw errors.badRequest('TokenRequest in version "v1" cannot be handled as a TokenRequest: spec.expirationSeconds must be an integer');
  const ref = spec.boundObjectRef;
  if (ref != null && (typeof ref !== 'object' || Array.isArray(ref) || Object.values(ref).some((v) => typeof v !== 'string'))) {
    throw errors.badRequest('TokenRequest in version "v1" cannot be handled as a TokenRequest: spec.boundObjectRef must be an object of strings');
  }
  return tr;
}

/** Go's schema.GroupVersionKind String(), as Kubernetes quotes it in messages. */
function gvkString(apiVersion: string, kind: string): string {
  const [g, v] = apiVersion.includes('/') ? apiVersion.split('/', 2) : ['', apiVersion];
  return `${g}/${v}, Kind=${kind}`;
}

export async function serveTokenRequest(
  reg: Registry, tokens: ServiceAccountTokens | undefined, r: ResourceRequest, req: IncomingMessage, res: ServerResponse, timeoutMs: number,
): Promise<void> {
  if (r.verb !== 'create') throw errors.methodNotAllowed();
  if (!tokens?.canSign) {
    throw new ApiError(404, 'NotFound', 'the server could not find the requested resource: this cluster issues no ServiceAccount tokens (its servers run without --service-account-signing-key-file)', {
      name: r.name, group: '', kind: 'serviceaccounts/token',
    });
  }
  const tr = decodeRequest(decodeBody(await readBody(req), mediaType(req)));
  const spec = tr.spec ?? {};
  const expirationSeconds = spec.expirationSeconds ?? DEFAULT_EXPIRATION_SECONDS;
  if (expirationSeconds < MIN_EXPIRATION_SECONDS) throw invalid('spec.expirationSeconds', expirationSeconds, 'may not specify a duration less than 10 minutes');
  if (expirationSeconds > MAX_EXPIRATION_SECONDS) throw invalid('spec.expirationSeconds', expirationSeconds, 'may not specify a duration larger than 2^32 seconds');

  const get = async (plural: string, name: string) => {
    const o = await reg.lookup(kindByResource('', 'v1', plural)!, r.namespace, name, timeoutMs);
    if (!o) throw errors.notFound('', plural, name);
    return o;
  };
  const sa = await get('serviceaccounts', r.name);
  let pod: { name: string; uid: string } | undefined;
  let secret: { name: string; uid: string } | undefined;
  let node: { name: string; uid: string } | undefined;
  const ref = spec.boundObjectRef ?? undefined;
  if (ref) {
    const apiVersion = ref.apiVersion ?? '';
    const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
    const name = ref.name ?? '';
    let uid: string;
    if (group === '' && ref.kind === 'Pod') {
      const p = await get('pods', name);
      const podSpec = (JSON.parse(p.json) as { spec?: { serviceAccountName?: string; nodeName?: string } }).spec ?? {};
      // A pod stored before serviceAccountName was defaulted runs as "default".
      if ((podSpec.serviceAccountName || 'default') !== r.name) {
        throw errors.badRequest(`cannot bind token for serviceaccount "${r.name}" to pod running with different serviceaccount name.`);
      }
      uid = p.uid;
      pod = { name, uid };
      // The node the pod runs on goes into the token too (Kubernetes' ServiceAccountTokenPodNodeInfo).
      const n = podSpec.nodeName ? reg.store.get('/nodes', '', podSpec.nodeName) : undefined;
      if (n) node = { name: podSpec.nodeName!, uid: n.uid };
    } else if (group === '' && ref.kind === 'Secret') {
      uid = (await get('secrets', name)).uid;
      secret = { name, uid };
    } else {
      throw errors.badRequest(`cannot bind token to object of type ${gvkString(apiVersion, ref.kind ?? '')}`);
    }
    if (ref.uid && ref.uid !== uid) {
      throw errors.conflict(group, ref.kind!, name, `the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`);
    }
  }
  const audiences = spec.audiences?.length ? spec.audiences : tokens.audiences;
  const { token, expiration } = await tokens.issue({
    namespace: r.namespace, serviceAccount: { name: r.name, uid: sa.uid }, audiences, expirationSeconds, pod, secret, node,
  });
  sendJson(res, 201, {
    kind: 'TokenRequest', apiVersion: API_VERSION,
    metadata: { name: r.name, namespace: r.namespace, creationTimestamp: null },
    spec: { audiences, expirationSeconds, boundObjectRef: ref ?? null },
    status: { token, expirationTimestamp: expiration.toISOString().replace(/\.\d{3}Z$/, 'Z') },
  }, req);
}
