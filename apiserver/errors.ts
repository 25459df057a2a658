// The API layer's one error type, rendered as a Kubernetes `Status`.
import type { Cause } from '../api/schema/types.ts';

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: { reason?: string; message: string; field?: string; type?: string }[];
  retryAfterSeconds?: number;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus(): Record<string, unknown> {
    const s: Record<string, unknown> = {
      kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, code: this.code,
    };
    if (this.details) s.details = this.details;
    return s;
  }
}

/** `kind` as Kubernetes names it in messages: the resource (plural) with its group, e.g. "deployments.apps". */
export function qualified(group: string, plural: string): string {
  return group ? `${plural}.${group}` : plural;
}

export const errors = {
  notFound: (group: string, plural: string, name: string) =>
    new ApiError(404, 'NotFound', `${qualified(group, plural)} "${name}" not found`, { name, group, kind: plural }),
  alreadyExists: (group: string, plural: string, name: string) =>
    new ApiError(409, 'AlreadyExists', `${qualified(group, plural)} "${name}" already exists`, { name, group, kind: plural }),
  conflict: (group: string, plural: string, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
    new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(group, plural)} "${name}": ${why}`, { name, group, kind: plural }),
  invalid: (group: string, kind: string, name: string, causes: Cause[]) =>
    new ApiError(
      422, 'Invalid',
      `${kind}${group ? `.${group}` : ''} "${name}" is invalid: ${causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message)).join(', ')}`,
      { name, group, kind, causes: causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field })) },
    ),
  badRequest: (message: string) => new ApiError(400, 'BadRequest', message),
  methodNotAllowed: (message = 'the server does not allow this method on the requested resource') => new ApiError(405, 'MethodNotAllowed', message),
  notAcceptable: (message: string) => new ApiError(406, 'NotAcceptable', message),
  unsupportedMediaType: (type: string) => new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got "${type}")`),
  tooLarge: (limit: number) => new ApiError(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limit}`),
  gone: (message: string) => new ApiError(410, 'Expired', message),
  unavailable: (message: string, retryAfterSeconds = 1) => new ApiError(503, 'ServiceUnavailable', message, { retryAfterSeconds }),
  timeout: (message: string, retryAfterSeconds = 1) => new ApiError(504, 'Timeout', message, { retryAfterSeconds }),
  forbidden: (message: string) => new ApiError(403, 'Forbidden', message),
  internal: (message: string) => new ApiError(500, 'InternalError', message),
};
