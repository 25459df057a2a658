// Structural validation of request bodies against a Schema, Kubernetes' name
// validators (k8s.io/apimachinery/pkg/util/validation) with their exact
// messages, field-error builders (k8s.io/apimachinery/pkg/util/validation/field)
// and the resource.Quantity grammar.

import { toleratesDuplicates } from './dsl.ts';
import type { ArraySchema, Cause, ObjectSchema, Schema, StringSchema } from './types.ts';

// ---- field paths ---------------------------------------------------------------

/** `spec` + `replicas` → `spec.replicas`; a root path of '' yields just the child. */
export function child(path: string, ...names: string[]): string {
  return names.reduce((p, n) => (p ? `${p}.${n}` : n), path);
}

/** `spec.containers` + 0 → `spec.containers[0]`; `metadata.labels` + 'app' → `metadata.labels[app]`. */
export function index(path: string, i: number | string): string {
  return `${path}[${i}]`;
}

// ---- causes (field.Error) -------------------------------------------------------

/** Formats a bad value like field.Error.ErrorBody: strings quoted, numbers/bools bare, others as JSON. */
export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
}

const withDetail = (s: string, detail?: string) => (detail ? `${s}: ${detail}` : s);

export const required = (field: string, detail = ''): Cause => ({
  reason: 'FieldValueRequired', field, message: withDetail('Required value', detail),
});
export const invalid = (field: string, value: unknown, detail = ''): Cause => ({
  reason: 'FieldValueInvalid', field, message: withDetail(`Invalid value: ${formatValue(value)}`, detail),
});
export const notSupported = (field: string, value: unknown, supported: readonly string[]): Cause => ({
  reason: 'FieldValueNotSupported', field,
  message: withDetail(`Unsupported value: ${formatValue(value)}`,
    supported.length ? `supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}` : ''),
});
export const duplicate = (field: string, value: unknown): Cause => ({
  reason: 'FieldValueDuplicate', field, message: `Duplicate value: ${formatValue(value)}`,
});
export const forbidden = (field: string, detail = ''): Cause => ({
  reason: 'FieldValueForbidden', field, message: withDetail('Forbidden', detail),
});
export const tooLong = (field: string, max: number): Cause => ({
  reason: 'FieldValueTooLong', field, message: `Too long: may not be more than ${max} bytes`,
});
export const notFound = (field: string, value: unknown): Cause => ({
  reason: 'FieldValueNotFound', field, message: `Not found: ${formatValue(value)}`,
});
export const typeInvalid = (field: string, value: unknown, detail: string): Cause => ({
  reason: 'FieldValueTypeInvalid', field, message: withDetail(`Invalid value: ${formatValue(value)}`, detail),
});
export const unknownField = (field: string): Cause => ({
  reason: 'FieldValueUnknown', field, message: `unknown field ${JSON.stringify(field)}`,
});
/** ValidateImmutableField: `Invalid value: <new>: field is immutable`. */
export const immutable = (field: string, value: unknown): Cause => invalid(field, value, 'field is immutable');

/** Each message of a name validator as an Invalid cause for `value`. */
export function invalidEach(field: string, value: unknown, msgs: string[]): Cause[] {
  return msgs.map((m) => invalid(field, value, m));
}

// ---- name validators (exact Kubernetes messages) --------------------------------

export const maxLenError = (n: number) => `must be no more than ${n} characters`;
export const emptyError = () => 'must be non-empty';
export const inclusiveRangeError = (lo: number, hi: number) => `must be between ${lo} and ${hi}, inclusive`;

export function regexError(msg: string, fmt: string, ...examples: string[]): string {
  if (!examples.length) return `${msg} (regex used for validation is '${fmt}')`;
  return `${msg} (e.g. ${examples.map((e) => `'${e}', `).join('or ')}regex used for validation is '${fmt}')`;
}

const anchored = (fmt: string) => new RegExp(`^${fmt}$`);

const DNS1123_LABEL_FMT = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_LABEL_MSG = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT = `${DNS1123_LABEL_FMT}(\\.${DNS1123_LABEL_FMT})*`;
const DNS1123_SUBDOMAIN_MSG = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT = '[a-z]([-a-z0-9]*[a-z0-9])?';
const DNS1035_LABEL_MSG = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QNAME_FMT = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const QNAME_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT = `(${QNAME_FMT})?`;
const LABEL_VALUE_MSG = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const CONFIG_KEY_FMT = '[-._a-zA-Z0-9]+';
const CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const PERCENT_FMT = '[0-9]+%';

const dns1123LabelRe = anchored(DNS1123_LABEL_FMT);
const dns1123SubdomainRe = anchored(DNS1123_SUBDOMAIN_FMT);
const dns1035LabelRe = anchored(DNS1035_LABEL_FMT);
const qnameRe = anchored(QNAME_FMT);
const labelValueRe = anchored(LABEL_VALUE_FMT);
const configKeyRe = anchored(CONFIG_KEY_FMT);

export const DNS1123_LABEL_MAX = 63;
export const DNS1123_SUBDOMAIN_MAX = 253;

/** Error messages (empty when valid) for an RFC 1123 label (namespaces, container names). */
export function isDNS1123Label(value: string): string[] {
  const errs: string[] = [];
  if (value.length > DNS1123_LABEL_MAX) errs.push(maxLenError(DNS1123_LABEL_MAX));
  if (!dns1123LabelRe.test(value)) {
    if (dns1123SubdomainRe.test(value)) errs.push('must not contain dots');
    else errs.push(regexError(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, 'my-name', '123-abc'));
  }
  return errs;
}

/** Error messages for an RFC 1123 subdomain (most object names). */
export function isDNS1123Subdomain(value: string): string[] {
  const errs: string[] = [];
  if (value.length > DNS1123_SUBDOMAIN_MAX) errs.push(maxLenError(DNS1123_SUBDOMAIN_MAX));
  if (!dns1123SubdomainRe.test(value)) errs.push(regexError(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, 'example.com'));
  return errs;
}

/** Error messages for an RFC 1035 label (Service names). */
export function isDNS1035Label(value: string): string[] {
  const errs: string[] = [];
  if (value.length > DNS1123_LABEL_MAX) errs.push(maxLenError(DNS1123_LABEL_MAX));
  if (!dns1035LabelRe.test(value)) errs.push(regexError(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, 'my-name', 'abc-123'));
  return errs;
}

/** Error messages for a qualified name: label keys, annotation keys, finalizers (`[prefix/]name`). */
export function isQualifiedName(value: string): string[] {
  const errs: string[] = [];
  const parts = value.split('/');
  let name: string;
  if (parts.length === 1) {
    name = parts[0];
  } else if (parts.length === 2) {
    const prefix = parts[0];
    name = parts[1];
    if (!prefix.length) errs.push(`prefix part ${emptyError()}`);
    else errs.push(...isDNS1123Subdomain(prefix).map((m) => `prefix part ${m}`));
  } else {
    return [`a qualified name ${regexError(QNAME_MSG, QNAME_FMT, 'MyName', 'my.name', '123-abc')} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`];
  }
  if (!name.length) errs.push(`name part ${emptyError()}`);
  else if (name.length > 63) errs.push(`name part ${maxLenError(63)}`);
  if (!qnameRe.test(name)) errs.push(`name part ${regexError(QNAME_MSG, QNAME_FMT, 'MyName', 'my.name', '123-abc')}`);
  return errs;
}

/** Error messages for a label value (may be empty; at most 63 characters). */
export function isValidLabelValue(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push(maxLenError(63));
  if (!labelValueRe.test(value)) errs.push(regexError(LABEL_VALUE_MSG, LABEL_VALUE_FMT, 'MyValue', 'my_value', '12345'));
  return errs;
}

/** Error messages for a ConfigMap/Secret data key. */
export function isConfigMapKey(value: string): string[] {
  const errs: string[] = [];
  if (value.length > DNS1123_SUBDOMAIN_MAX) errs.push(maxLenError(DNS1123_SUBDOMAIN_MAX));
  if (!configKeyRe.test(value)) errs.push(regexError(CONFIG_KEY_MSG, CONFIG_KEY_FMT, 'key.name', 'KEY_NAME', 'key-name'));
  if (value === '.') errs.push("must not be '.'");
  else if (value === '..') errs.push("must not be '..'");
  else if (value.startsWith('..')) errs.push("must not start with '..'");
  return errs;
}

/** Error messages for an IANA service (port) name: at most 15 characters, a-z 0-9 and single inner hyphens. */
export function isValidPortName(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 15) errs.push(maxLenError(15));
  if (!/^[-a-z0-9]+$/.test(value)) errs.push('must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)');
  if (!/[a-z]/.test(value)) errs.push('must contain at least one letter (a-z)');
  if (value.includes('--')) errs.push('must not contain consecutive hyphens');
  if (value.length && (value.startsWith('-') || value.endsWith('-'))) errs.push('must not begin or end with a hyphen');
  return errs;
}

/** Error messages for a port number (1-65535). */
export function isValidPortNum(port: number): string[] {
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? [] : [inclusiveRangeError(1, 65535)];
}

/** Error messages for an environment variable name (RelaxedEnvironmentVariableValidation, on by default in 1.32). */
export function isEnvVarName(value: string): string[] {
  return /^[ -<>-~]*$/.test(value)
    ? []
    : ["a valid environment variable name must consist only of printable ASCII characters other than '='"];
}

/** Error messages for a name used as a URL path segment (RBAC objects). */
export function isValidPathSegmentName(value: string): string[] {
  if (value === '.' || value === '..') return [`may not be '${value}'`];
  const errs: string[] = [];
  for (const bad of ['/', '%']) if (value.includes(bad)) errs.push(`may not contain '${bad}'`);
  return errs;
}

/** Error messages for a percentage string like "25%". */
export function isValidPercent(value: string): string[] {
  return /^[0-9]+%$/.test(value)
    ? []
    : [regexError("a valid percent string must be a numeric string followed by an ending '%'", PERCENT_FMT, '1%', '93%')];
}

export function isValidIP(value: string): boolean {
  return isIPv4(value) || isIPv6(value);
}

function isIPv4(v: string): boolean {
  const parts = v.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

function isIPv6(v: string): boolean {
  if (!/^[0-9a-fA-F:.]+$/.test(v) || !v.includes(':')) return false;
  const dbl = v.split('::');
  if (dbl.length > 2) return false;
  const groups = (s: string) => (s ? s.split(':') : []);
  let tail = groups(dbl[dbl.length - 1]);
  let extra = 0;
  if (tail.length && tail[tail.length - 1].includes('.')) {
    if (!isIPv4(tail[tail.length - 1])) return false;
    tail = tail.slice(0, -1);
    extra = 2;
  }
  const all = dbl.length === 2 ? [...groups(dbl[0]), ...tail] : tail;
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  const n = all.length + extra;
  return dbl.length === 2 ? n < 8 : n === 8;
}

/** A generateName prefix is validated with its trailing dash masked (it is followed by random characters). */
export function maskTrailingDash(name: string): string {
  return name.length > 1 && name.endsWith('-') ? `${name.slice(0, -2)}a` : name;
}

// ---- quantities ----------------------------------------------------------------

/** The message Kubernetes gives for a malformed quantity. */
export const QUANTITY_FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

const QUANTITY_RE = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$/;
const SUFFIX: Record<string, number> = {
  '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** Whether `q` follows the resource.Quantity grammar (numbers are accepted as-is). */
export function isQuantity(q: unknown): boolean {
  if (typeof q === 'number') return Number.isFinite(q);
  return typeof q === 'string' && QUANTITY_RE.test(q);
}

/**
 * The value of a quantity in base units: cores for cpu ("100m" → 0.1), bytes
 * for memory ("1Gi" → 1073741824), plain numbers otherwise ("1e3" → 1000).
 * Throws on malformed input.
 */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') {
    if (!Number.isFinite(q)) throw new Error(QUANTITY_FORMAT_ERROR);
    return q;
  }
  const m = QUANTITY_RE.exec(q);
  if (!m) throw new Error(QUANTITY_FORMAT_ERROR);
  const n = Number(m[1]);
  const suffix = m[2] ?? '';
  if (/^[eE][+-]?[0-9]+$/.test(suffix)) return Number(`${m[1]}e${suffix.slice(1)}`);
  const v = n * SUFFIX[suffix];
  // Avoid binary noise on decimal suffixes: 100m → 0.1, not 0.1000000000000000055.
  return suffix === '' || suffix.endsWith('i') ? v : Number(v.toPrecision(15));
}

// ---- other formats ---------------------------------------------------------------

const DATE_TIME_RE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

export function isDateTime(v: string): boolean {
  return DATE_TIME_RE.test(v) && !Number.isNaN(Date.parse(v.replace(' ', 'T')));
}

const B64 = /^[A-Za-z0-9+/]*$/;

/** Like Go's base64.StdEncoding: the error for malformed data, or '' (newlines are ignored). */
export function base64Error(v: string): string {
  const s = v.replace(/[\r\n]/g, '');
  const pad = s.length - s.replace(/=+$/, '').length;
  const body = s.slice(0, s.length - pad);
  for (let i = 0; i < body.length; i++) {
    if (!B64.test(body[i])) return `illegal base64 data at input byte ${i}`;
  }
  if (s.length % 4 !== 0 || pad > 2) return `illegal base64 data at input byte ${Math.max(0, s.length - (s.length % 4 || 4))}`;
  return '';
}

// ---- structural validation ---------------------------------------------------------

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON type name of a value, as the OpenAPI validator reports it. */
export function jsonType(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/**
 * Checks `value` against `schema`: types, unknown fields, required fields,
 * enums, bounds, lengths, formats (date-time, byte, quantity, int-or-string)
 * and duplicate keys in list-maps. `null` is accepted anywhere (it means
 * "unset", as when Kubernetes decodes JSON into its types).
 */
export function validateSchema(schema: Schema, value: unknown, path = ''): Cause[] {
  const out: Cause[] = [];
  walk(schema, value, path, out);
  return out;
}

function typeError(path: string, v: unknown, expected: string, out: Cause[]) {
  const t = jsonType(v);
  out.push(typeInvalid(path, t, `${path ? `${path} in body` : 'body'} must be of type ${expected}: ${JSON.stringify(t)}`));
}

function walk(s: Schema, v: unknown, path: string, out: Cause[]): void {
  if (v === null || v === undefined) return;
  switch (s.type) {
    case 'string':
      if (typeof v !== 'string') return typeError(path, v, 'string', out);
      return checkString(s, v, path, out);
    case 'integer':
      if (typeof v !== 'number' || !Number.isInteger(v)) return typeError(path, v, 'integer', out);
      if (s.format === 'int32' && (v > 2147483647 || v < -2147483648)) out.push(invalid(path, v, 'must be a 32-bit integer'));
      return checkBounds(s, v, path, out);
    case 'number':
      if (typeof v !== 'number') return typeError(path, v, 'number', out);
      return checkBounds(s, v, path, out);
    case 'boolean':
      if (typeof v !== 'boolean') typeError(path, v, 'boolean', out);
      return;
    case 'int-or-string':
      if (typeof v !== 'string' && !(typeof v === 'number' && Number.isInteger(v))) typeError(path, v, 'integer or string', out);
      return;
    case 'quantity':
      if (typeof v !== 'string' && typeof v !== 'number') return typeError(path, v, 'string or number', out);
      if (!isQuantity(v)) out.push(invalid(path, v, QUANTITY_FORMAT_ERROR));
      return;
    case 'any':
      return;
    case 'object':
      if (!isPlainObject(v)) return typeError(path, v, 'object', out);
      return checkObject(s, v, path, out);
    case 'array':
      if (!Array.isArray(v)) return typeError(path, v, 'array', out);
      return checkArray(s, v, path, out);
  }
}

function checkString(s: StringSchema, v: string, path: string, out: Cause[]) {
  // '' is Go's zero value: unset, defaulted or reported by the kind's validation.
  if (s.enum && v !== '' && !s.enum.includes(v)) out.push(notSupported(path, v, s.enum));
  if (s.maxLength !== undefined && v.length > s.maxLength) out.push(tooLong(path, s.maxLength));
  if (s.pattern && !new RegExp(s.pattern).test(v)) out.push(invalid(path, v, `${path} in body should match '${s.pattern}'`));
  switch (s.format) {
    case 'date-time':
      if (!isDateTime(v)) out.push(invalid(path, v, `${path} in body must be of type date-time: ${JSON.stringify(v)}`));
      break;
    case 'byte': {
      const e = base64Error(v);
      if (e) out.push(invalid(path, v, e));
      break;
    }
    case 'dns1123-label':
      out.push(...invalidEach(path, v, isDNS1123Label(v)));
      break;
    case 'dns1123-subdomain':
      out.push(...invalidEach(path, v, isDNS1123Subdomain(v)));
      break;
  }
}

function checkBounds(s: { minimum?: number; maximum?: number }, v: number, path: string, out: Cause[]) {
  if (s.minimum !== undefined && v < s.minimum) out.push(invalid(path, v, `must be greater than or equal to ${s.minimum}`));
  if (s.maximum !== undefined && v > s.maximum) out.push(invalid(path, v, `must be less than or equal to ${s.maximum}`));
}

function checkObject(s: ObjectSchema, v: Record<string, unknown>, path: string, out: Cause[]) {
  for (const [k, val] of Object.entries(v)) {
    const p = s.properties?.[k];
    if (p) walk(p, val, child(path, k), out);
    else if (s.additionalProperties) walk(s.additionalProperties, val, s.properties ? child(path, k) : index(path, k), out);
    else if (s.properties) out.push(unknownField(child(path, k)));
  }
  // '' counts as missing: Go's zero value of a required string field.
  for (const r of s.required ?? []) {
    if (v[r] === undefined || v[r] === null || v[r] === '') out.push(required(child(path, r)));
  }
}

/** The key of a list-map element: missing key fields take their schema default (protocol TCP). */
function listMapKey(s: ArraySchema, item: unknown): Record<string, unknown> | undefined {
  if (!isPlainObject(item)) return undefined;
  const keys = s.listMapKeys ?? (s.mergeKey ? [s.mergeKey] : []);
  const props = s.items.type === 'object' ? s.items.properties ?? {} : {};
  const key: Record<string, unknown> = {};
  for (const k of keys) {
    const d = props[k] && 'default' in props[k] ? (props[k] as { default?: unknown }).default : undefined;
    const val = item[k] ?? d;
    if (val !== undefined) key[k] = val;
  }
  return key;
}

function checkArray(s: ArraySchema, v: unknown[], path: string, out: Cause[]) {
  v.forEach((item, i) => walk(s.items, item, index(path, i), out));
  if (s.listType !== 'map' || toleratesDuplicates(s)) return;
  const seen = new Set<string>();
  v.forEach((item, i) => {
    const key = listMapKey(s, item);
    if (!key || !Object.keys(key).length) return;
    const id = JSON.stringify(key);
    if (!seen.has(id)) return void seen.add(id);
    const names = Object.keys(key);
    out.push(names.length === 1
      ? duplicate(child(index(path, i), names[0]), key[names[0]])
      : duplicate(index(path, i), key));
  });
}

/**
 * Removes fields that `schema` does not know (what Kubernetes does when it
 * decodes a body with fieldValidation=Ignore or Warn) and returns their paths.
 */
export function pruneUnknownFields(schema: Schema, value: unknown, path = ''): string[] {
  const dropped: string[] = [];
  prune(schema, value, path, dropped);
  return dropped;
}

function prune(s: Schema, v: unknown, path: string, dropped: string[]) {
  if (s.type === 'array' && Array.isArray(v)) {
    v.forEach((item, i) => prune(s.items, item, index(path, i), dropped));
  } else if (s.type === 'object' && isPlainObject(v)) {
    for (const k of Object.keys(v)) {
      const p = s.properties?.[k];
      if (p) prune(p, v[k], child(path, k), dropped);
      else if (s.additionalProperties) prune(s.additionalProperties, v[k], s.properties ? child(path, k) : index(path, k), dropped);
      else if (s.properties) {
        dropped.push(child(path, k));
        delete v[k];
      }
    }
  }
}
