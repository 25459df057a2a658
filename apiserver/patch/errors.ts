// The error every patch engine throws for a patch that cannot be applied.
//
// `code` is the HTTP status Kubernetes answers with for the same failure:
//   400 BadRequest            – the patch document itself is malformed (not a JSON
//                               object/array, an op without a path, a bad directive
//                               format, an apply configuration with managedFields…)
//   413 RequestEntityTooLarge – more JSON patch operations than Kubernetes allows
//   422 Invalid               – a well-formed patch that does not apply to this
//                               object (json-patch "test" failed, a missing path,
//                               a list item without its merge key…)

export type PatchErrorCode = 400 | 413 | 422;

const REASONS: Record<PatchErrorCode, 'BadRequest' | 'RequestEntityTooLarge' | 'Invalid'> = {
  400: 'BadRequest',
  413: 'RequestEntityTooLarge',
  422: 'Invalid',
};

export class PatchError extends Error {
  /** HTTP status code for the Status response. */
  readonly code: PatchErrorCode;

  constructor(message: string, code: PatchErrorCode = 422) {
    super(message);
    this.name = 'PatchError';
    this.code = code;
  }

  /** Status.reason: BadRequest, RequestEntityTooLarge or Invalid. */
  get reason(): 'BadRequest' | 'RequestEntityTooLarge' | 'Invalid' {
    return REASONS[this.code];
  }
}
