// Kubernetes' protobuf wire types that Flotilla decodes (proto/kubernetes.proto).
// Loaded here, one directory below the root like api/events.ts, so the path
// to proto/ is the same from the sources and from the bundle in dist/.
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const root = protobuf.loadSync(fileURLToPath(new URL('../proto/kubernetes.proto', import.meta.url)));
/** runtime.Unknown: what follows the magic "k8s\0". */
export const UnknownMessage = root.lookupType('flotilla.kubernetes.Unknown');
/** RoleBinding and ClusterRoleBinding (rbac.authorization.k8s.io/v1) share this shape. */
export const RoleBindingMessage = root.lookupType('flotilla.kubernetes.RoleBinding');
