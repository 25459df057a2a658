// Label and field selectors, as Kubernetes parses and matches them
// (k8s.io/apimachinery/pkg/labels, pkg/fields, metav1.LabelSelectorAsSelector).
//
// Label selector syntax (labels.Parse):
//   selector    ::= requirement ("," requirement)*       (comma = AND; "" selects everything)
//   requirement ::= ["!"] KEY
//                 | KEY ("=" | "==" | "!=") VALUE        (VALUE may be empty: "a=")
//                 | KEY ("in" | "notin") "(" VALUE ("," VALUE)* ")"
//                 | KEY (">" | "<") INTEGER
// Keys must be qualified names ([prefix/]name), values valid label values.
// Requirements come back sorted by key; `requirementsToString` gives the
// canonical form Kubernetes prints (values of in/notin sorted).
//
// Field selector syntax (fields.ParseSelector): "path=value", "path==value",
// "path!=value", comma = AND, "\," "\=" "\\" escape those characters in values.
// Paths are dotted paths into the object (metadata.name, spec.nodeName,
// status.phase, involvedObject.name…); a missing field reads as "" (so
// "spec.nodeName=" selects unscheduled pods). Numbers and booleans compare as
// their JSON text.
//
// Every syntax error throws a SelectorError (HTTP 400 BadRequest).

import { isQualifiedName, isValidLabelValue } from './schema/validate.ts';

export class SelectorError extends Error {
  readonly code = 400;
  readonly reason = 'BadRequest';
  constructor(message: string) {
    super(message);
    this.name = 'SelectorError';
  }
}

// ---------------------------------------------------------------------------
// label selectors

/** selection.Operator values. */
export type LabelOperator = 'in' | 'notin' | '=' | '==' | '!=' | 'exists' | '!' | 'gt' | 'lt';

export interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  /** Empty for exists / !; one value for = == != gt lt; one or more for in / notin. */
  values: string[];
}

/** Alias kept short for callers. */
export type Requirement = LabelRequirement;

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | string;
  values?: string[];
}

/** metav1.LabelSelector (spec.selector of workloads). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** validation.IsQualifiedName: the problems with a label key (empty when valid). */
export const qualifiedNameErrors = isQualifiedName;

/** validation.IsValidLabelValue: the problems with a label value (empty when valid). */
export const labelValueErrors = isValidLabelValue;

/** labels.NewRequirement: validate and build one requirement (throws SelectorError). */
export function newRequirement(key: string, operator: LabelOperator, values: string[]): LabelRequirement {
  const errs: string[] = [];
  const keyErrs = qualifiedNameErrors(key);
  if (keyErrs.length) errs.push(`key: Invalid value: ${JSON.stringify(key)}: ${keyErrs.join('; ')}`);
  switch (operator) {
    case 'in':
    case 'notin':
      if (values.length === 0) errs.push(`values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty`);
      break;
    case '=':
    case '==':
    case '!=':
      if (values.length !== 1) errs.push(`values: Invalid value: ${JSON.stringify(values)}: exact-match compatibility requires one single value`);
      break;
    case 'exists':
    case '!':
      if (values.length !== 0) errs.push(`values: Invalid value: ${JSON.stringify(values)}: values set must be empty for exists and does not exist`);
      break;
    case 'gt':
    case 'lt':
      if (values.length !== 1) errs.push(`values: Invalid value: ${JSON.stringify(values)}: for 'Gt', 'Lt' operators, exactly one value is required`);
      values.forEach((v, i) => {
        if (parseInt64(v) === undefined) errs.push(`values[${i}]: Invalid value: ${JSON.stringify(v)}: for 'Gt', 'Lt' operators, the value must be an integer`);
      });
      break;
    default:
      errs.push(`operator: Unsupported value: ${JSON.stringify(operator)}: supported values: "in", "notin", "=", "==", "!=", "exists", "!", "gt", "lt"`);
  }
  values.forEach((v, i) => {
    const ve = labelValueErrors(v);
    if (ve.length) errs.push(`values[${i}][${key}]: Invalid value: ${JSON.stringify(v)}: ${ve.join('; ')}`);
  });
  if (errs.length === 1) throw new SelectorError(errs[0]);
  if (errs.length > 1) throw new SelectorError(`[${errs.join(', ')}]`);
  return { key, operator, values: [...values] };
}

function parseInt64(s: string): bigint | undefined {
  if (!/^[+-]?\d+$/.test(s)) return undefined;
  const n = BigInt(s);
  return n >= -(2n ** 63n) && n < 2n ** 63n ? n : undefined;
}

// --- lexer (labels.Lexer)

type Tok =
  | 'ident' | 'end' | 'error' | ',' | '(' | ')' | '!' | '=' | '==' | '!=' | '>' | '<' | 'in' | 'notin';

const SPECIAL = new Set(['=', '!', '(', ')', ',', '>', '<']);
const SYMBOLS: Record<string, Tok> = { ')': ')', ',': ',', '!': '!', '==': '==', '=': '=', '>': '>', '<': '<', '!=': '!=', '(': '(' };

function lex(input: string): { tok: Tok; lit: string }[] {
  const out: { tok: Tok; lit: string }[] = [];
  let i = 0;
  const ws = (c: string): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';
  for (;;) {
    while (i < input.length && ws(input[i])) i++;
    if (i >= input.length) {
      out.push({ tok: 'end', lit: '' });
      return out;
    }
    if (SPECIAL.has(input[i])) {
      let buf = '';
      let last: { tok: Tok; lit: string } | undefined;
      while (i < input.length && SPECIAL.has(input[i])) {
        const next = buf + input[i];
        if (SYMBOLS[next]) {
          buf = next;
          last = { tok: SYMBOLS[next], lit: next };
          i++;
        } else if (last) {
          break;
        } else {
          buf = next;
          i++;
        }
      }
      if (!last) {
        out.push({ tok: 'error', lit: `error expected: keyword found '${buf}'` });
        out.push({ tok: 'end', lit: '' });
        return out;
      }
      out.push(last);
      continue;
    }
    let buf = '';
    while (i < input.length && !SPECIAL.has(input[i]) && !ws(input[i])) buf += input[i++];
    out.push({ tok: buf === 'in' ? 'in' : buf === 'notin' ? 'notin' : 'ident', lit: buf });
  }
}

// --- parser (labels.Parser)

class LabelParser {
  private pos = 0;
  constructor(private readonly items: { tok: Tok; lit: string }[]) {}

  /** In a values context, "in" and "notin" are plain identifiers. */
  private peek(values: boolean): { tok: Tok; lit: string } {
    const it = this.items[this.pos];
    return values && (it.tok === 'in' || it.tok === 'notin') ? { tok: 'ident', lit: it.lit } : it;
  }

  private next(values: boolean): { tok: Tok; lit: string } {
    const it = this.peek(values);
    if (this.pos < this.items.length - 1) this.pos++;
    return it;
  }

  parse(): LabelRequirement[] {
    const reqs: LabelRequirement[] = [];
    for (;;) {
      const { tok, lit } = this.peek(true);
      switch (tok) {
        case 'ident':
        case '!': {
          try {
            reqs.push(this.requirement());
          } catch (e) {
            throw new SelectorError(`unable to parse requirement: ${(e as Error).message}`);
          }
          const t = this.next(true);
          if (t.tok === 'end') return reqs;
          if (t.tok === ',') {
            const t2 = this.peek(true);
            if (t2.tok !== 'ident' && t2.tok !== '!') throw new SelectorError(`found '${t2.lit}', expected: identifier after ','`);
            continue;
          }
          throw new SelectorError(`found '${t.lit}', expected: ',' or 'end of string'`);
        }
        case 'end':
          return reqs;
        default:
          throw new SelectorError(`found '${lit}', expected: !, identifier, or 'end of string'`);
      }
    }
  }

  private requirement(): LabelRequirement {
    let t = this.next(true);
    let notExists = false;
    if (t.tok === '!') {
      notExists = true;
      t = this.next(true);
    }
    if (t.tok !== 'ident') throw new Error(`found '${t.lit}', expected: identifier`);
    const key = t.lit;
    const keyErrs = qualifiedNameErrors(key);
    if (keyErrs.length) throw new Error(`key: Invalid value: ${JSON.stringify(key)}: ${keyErrs.join('; ')}`);
    const after = this.peek(true).tok;
    if (notExists) return newRequirement(key, '!', []);
    if (after === 'end' || after === ',') return newRequirement(key, 'exists', []);
    const op = this.operator();
    const values = op === 'in' || op === 'notin' ? this.valueSet() : this.exactValue();
    return newRequirement(key, op, values);
  }

  private operator(): LabelOperator {
    const t = this.next(false);
    switch (t.tok) {
      case 'in': return 'in';
      case 'notin': return 'notin';
      case '=': return '=';
      case '==': return '==';
      case '!=': return '!=';
      case '>': return 'gt';
      case '<': return 'lt';
      case 'error': throw new Error(t.lit);
      default: throw new Error(`found '${t.lit}', expected: in, notin, =, ==, !=, gt, lt`);
    }
  }

  private valueSet(): string[] {
    const t = this.next(true);
    if (t.tok !== '(') throw new Error(`found '${t.lit}' expected: '('`);
    const la = this.peek(true);
    if (la.tok === ')') {
      this.next(true);
      return [''];
    }
    if (la.tok !== 'ident' && la.tok !== ',') throw new Error(`found '${la.lit}', expected: ',', ')' or identifier`);
    const set = this.identifiersList();
    const close = this.next(true);
    if (close.tok !== ')') throw new Error(`found '${close.lit}', expected: ')'`);
    return [...set].sort();
  }

  /** A comma-separated list of (possibly empty) identifiers, up to but not including ")". */
  private identifiersList(): Set<string> {
    const set = new Set<string>();
    for (;;) {
      const t = this.next(true);
      if (t.tok === 'ident') {
        set.add(t.lit);
        const n = this.peek(true);
        if (n.tok === ',') continue;
        if (n.tok === ')') return set;
        throw new Error(`found '${n.lit}', expected: ',' or ')'`);
      }
      if (t.tok !== ',') throw new Error(`found '${t.lit}', expected: ',', or identifier`);
      if (set.size === 0) set.add('');
      const n = this.peek(true);
      if (n.tok === ')') {
        set.add('');
        return set;
      }
      if (n.tok === ',') {
        this.next(true);
        set.add('');
      }
    }
  }

  private exactValue(): string[] {
    const la = this.peek(true);
    if (la.tok === 'end' || la.tok === ',') return [''];
    const t = this.next(true);
    if (t.tok === 'ident') return [t.lit];
    throw new Error(t.tok === 'error' ? t.lit : `found '${t.lit}', expected: identifier`);
  }
}

function sortByKey(reqs: LabelRequirement[]): LabelRequirement[] {
  return reqs
    .map((r, i) => ({ r, i }))
    .sort((a, b) => (a.r.key < b.r.key ? -1 : a.r.key > b.r.key ? 1 : a.i - b.i))
    .map((e) => e.r);
}

/** Parse a label selector string (?labelSelector=, kubectl -l). "" selects everything. */
export function parseLabelSelector(selector: string): LabelRequirement[] {
  return sortByKey(new LabelParser(lex(selector)).parse());
}

/** Whether a label set satisfies one requirement (labels.Requirement.Matches). */
export function requirementMatches(r: LabelRequirement, labels: Record<string, string> | undefined): boolean {
  const ls = labels ?? {};
  const present = Object.prototype.hasOwnProperty.call(ls, r.key);
  const value = present ? String(ls[r.key]) : '';
  switch (r.operator) {
    case 'in':
    case '=':
    case '==':
      return present && r.values.includes(value);
    case 'notin':
    case '!=':
      return !present || !r.values.includes(value);
    case 'exists':
      return present;
    case '!':
      return !present;
    case 'gt':
    case 'lt': {
      if (!present || r.values.length !== 1) return false;
      const lv = parseInt64(value);
      const rv = parseInt64(r.values[0]);
      if (lv === undefined || rv === undefined) return false;
      return r.operator === 'gt' ? lv > rv : lv < rv;
    }
    default:
      return false;
  }
}

/** Whether a label set satisfies every requirement (an empty list matches everything). */
export function matchesLabels(reqs: readonly LabelRequirement[], labels: Record<string, string> | undefined): boolean {
  return reqs.every((r) => requirementMatches(r, labels));
}

/** The canonical string of one requirement (labels.Requirement.String). */
export function requirementToString(r: LabelRequirement): string {
  let s = (r.operator === '!' ? '!' : '') + r.key;
  switch (r.operator) {
    case 'exists':
    case '!':
      return s;
    case '=': s += '='; break;
    case '==': s += '=='; break;
    case '!=': s += '!='; break;
    case 'in': s += ' in '; break;
    case 'notin': s += ' notin '; break;
    case 'gt': s += '>'; break;
    case 'lt': s += '<'; break;
  }
  const vals = r.values.length === 1 ? r.values[0] : [...r.values].sort().join(',');
  return r.operator === 'in' || r.operator === 'notin' ? `${s}(${vals})` : s + vals;
}

/** The canonical string of a selector: requirements joined by ",". */
export function requirementsToString(reqs: readonly LabelRequirement[]): string {
  return reqs.map(requirementToString).join(',');
}

/**
 * metav1.LabelSelectorAsSelector: the requirements of a LabelSelector object
 * (sorted by key). `null`/`undefined` selects nothing and gives null; `{}`
 * selects everything and gives []. Throws SelectorError for a bad operator,
 * key or value.
 */
export function labelSelectorToRequirements(sel: LabelSelector | null | undefined): LabelRequirement[] | null {
  if (sel === null || sel === undefined) return null;
  const reqs: LabelRequirement[] = [];
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) reqs.push(newRequirement(k, '=', [String(v)]));
  for (const e of sel.matchExpressions ?? []) {
    let op: LabelOperator;
    switch (e.operator) {
      case 'In': op = 'in'; break;
      case 'NotIn': op = 'notin'; break;
      case 'Exists': op = 'exists'; break;
      case 'DoesNotExist': op = '!'; break;
      default: throw new SelectorError(`${JSON.stringify(e.operator)} is not a valid label selector operator`);
    }
    reqs.push(newRequirement(e.key, op, [...(e.values ?? [])]));
  }
  return sortByKey(reqs);
}

/**
 * The canonical string form of a LabelSelector, as in a Scale's
 * status.selector and kubectl's SELECTOR column: "app=web,tier in (a,b)".
 * A null/undefined or empty selector gives "".
 */
export function labelSelectorToString(sel: LabelSelector | null | undefined): string {
  return requirementsToString(labelSelectorToRequirements(sel) ?? []);
}

/** Whether labels match a LabelSelector object (null/undefined matches nothing, {} everything). */
export function labelSelectorMatches(sel: LabelSelector | null | undefined, labels: Record<string, string> | undefined): boolean {
  const reqs = labelSelectorToRequirements(sel);
  return reqs !== null && matchesLabels(reqs, labels);
}

// ---------------------------------------------------------------------------
// field selectors

export interface FieldRequirement {
  /** Dotted path: "metadata.name", "spec.nodeName", "involvedObject.name". */
  path: string;
  /** "==" is normalised to "=". */
  op: '=' | '!=';
  /** Unescaped value. */
  value: string;
}

function splitTerms(s: string): string[] {
  if (s.length === 0) return [];
  const terms: string[] = [];
  let start = 0;
  let inSlash = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (inSlash) inSlash = false;
    else if (c === '\\') inSlash = true;
    else if (c === ',') {
      terms.push(s.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(s.slice(start));
  return terms;
}

const TERM_OPERATORS = ['!=', '==', '='] as const;

function splitTerm(term: string): [string, '!=' | '==' | '=', string] | undefined {
  for (let i = 0; i < term.length; i++) {
    for (const op of TERM_OPERATORS) {
      if (term.startsWith(op, i)) return [term.slice(0, i), op, term.slice(i + op.length)];
    }
  }
  return undefined;
}

/** fields.UnescapeValue. */
function unescapeValue(s: string): string {
  if (!/[\\,=]/.test(s)) return s;
  let out = '';
  let inSlash = false;
  for (const c of s) {
    if (inSlash) {
      if (c !== '\\' && c !== ',' && c !== '=') throw new SelectorError(`invalid field selector: invalid escape sequence: \\${c}`);
      out += c;
      inSlash = false;
      continue;
    }
    if (c === '\\') inSlash = true;
    else if (c === ',' || c === '=') throw new SelectorError(`invalid field selector: unescaped character in value: ${c}`);
    else out += c;
  }
  if (inSlash) throw new SelectorError('invalid field selector: invalid escape sequence: \\');
  return out;
}

/** Escape a value for use in a field selector string. */
export function escapeFieldValue(v: string): string {
  return v.replace(/[\\,=]/g, (c) => `\\${c}`);
}

export interface ParseFieldSelectorOptions {
  /** The field paths this resource supports; others fail with "field label not supported: <path>". */
  allowedFields?: readonly string[];
}

/** Parse a field selector string (?fieldSelector=). "" selects everything. Terms come back sorted. */
export function parseFieldSelector(selector: string, opts: ParseFieldSelectorOptions = {}): FieldRequirement[] {
  const parts = splitTerms(selector).sort();
  const reqs: FieldRequirement[] = [];
  for (const part of parts) {
    if (part === '') continue;
    const t = splitTerm(part);
    if (!t) throw new SelectorError(`invalid selector: '${selector}'; can't understand '${part}'`);
    const [path, op, raw] = t;
    const value = unescapeValue(raw);
    if (opts.allowedFields && !opts.allowedFields.includes(path)) {
      throw new SelectorError(`field label not supported: ${path}`);
    }
    reqs.push({ path, op: op === '!=' ? '!=' : '=', value });
  }
  return reqs;
}

/** The string value of a dotted path in an object, as a field selector sees it ("" when absent). */
export function fieldValue(obj: unknown, path: string): string {
  let cur: unknown = obj;
  for (const p of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) return '';
    cur = Object.prototype.hasOwnProperty.call(cur, p) ? (cur as Record<string, unknown>)[p] : undefined;
  }
  if (cur === undefined || cur === null) return '';
  if (typeof cur === 'string') return cur;
  if (typeof cur === 'number' || typeof cur === 'boolean') return String(cur);
  return JSON.stringify(cur);
}

/** Whether an object satisfies every field requirement (an empty list matches everything). */
export function matchesFields(reqs: readonly FieldRequirement[], obj: unknown): boolean {
  return reqs.every((r) => (fieldValue(obj, r.path) === r.value) === (r.op === '='));
}

/** The canonical string of a field selector ("metadata.name=x,spec.nodeName!="). */
export function fieldSelectorToString(reqs: readonly FieldRequirement[]): string {
  return reqs.map((r) => `${r.path}${r.op}${escapeFieldValue(r.value)}`).join(',');
}
