// GET /openapi/v2 in its protobuf form: the gnostic `openapi.v2.Document`
// message (github.com/google/gnostic openapiv2/OpenAPIv2.proto), which
// kubectl asks for (Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf)
// when a kind is missing from /openapi/v3. Only what clients build their
// models from is encoded: swagger, info and the definitions (schemas, with
// their x-kubernetes-* extensions); paths are left out.
import { openApiV2 } from '../../api/schema/openapi.ts';

/** What clients ask for (the '@' form is what client-go sends) and what is answered (kube-openapi's form: Go's mime parser refuses '@'). */
export const OPENAPI_V2_PROTOBUF_ACCEPT = ['application/com.github.proto-openapi.spec.v2@v1.0+protobuf', 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf'];
export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

type Json = Record<string, unknown>;

/** A minimal protobuf writer: varints, length-delimited fields, doubles. */
class Writer {
  private chunks: Buffer[] = [];

  private varint(n: number): void {
    const out: number[] = [];
    let v = BigInt.asUintN(64, BigInt(Math.trunc(n)));
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.chunks.push(Buffer.from(out));
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  string(field: number, s: string | undefined): void {
    if (s === undefined || s === '') return;
    this.bytes(field, Buffer.from(s, 'utf8'));
  }

  bytes(field: number, b: Buffer): void {
    this.tag(field, 2);
    this.varint(b.length);
    this.chunks.push(b);
  }

  message(field: number, build: (w: Writer) => void): void {
    const w = new Writer();
    build(w);
    this.bytes(field, w.finish());
  }

  bool(field: number, b: unknown): void {
    if (b !== true) return;
    this.tag(field, 0);
    this.varint(1);
  }

  boolPresent(field: number, b: boolean): void {
    this.tag(field, 0);
    this.varint(b ? 1 : 0);
  }

  int64(field: number, n: unknown): void {
    if (typeof n !== 'number' || n === 0) return;
    this.tag(field, 0);
    this.varint(n);
  }

  double(field: number, n: unknown): void {
    if (typeof n !== 'number') return;
    this.tag(field, 1);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(n);
    this.chunks.push(b);
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** gnostic's `Any`: the value as YAML text (JSON is YAML). */
function any(w: Writer, field: number, v: unknown): void {
  w.message(field, (a) => a.string(2, JSON.stringify(v)));
}

function namedAny(w: Writer, field: number, name: string, v: unknown): void {
  w.message(field, (n) => {
    n.string(1, name);
    any(n, 2, v);
  });
}

function schema(w: Writer, s: Json): void {
  w.string(1, s.$ref as string);
  w.string(2, s.format as string);
  w.string(3, s.title as string);
  w.string(4, s.description as string);
  if (s.default !== undefined) any(w, 5, s.default);
  w.double(6, s.multipleOf);
  w.double(7, s.maximum);
  w.bool(8, s.exclusiveMaximum);
  w.double(9, s.minimum);
  w.bool(10, s.exclusiveMinimum);
  w.int64(11, s.maxLength);
  w.int64(12, s.minLength);
  w.string(13, s.pattern as string);
  w.int64(14, s.maxItems);
  w.int64(15, s.minItems);
  w.bool(16, s.uniqueItems);
  w.int64(17, s.maxProperties);
  w.int64(18, s.minProperties);
  for (const r of (s.required as string[] | undefined) ?? []) w.string(19, r);
  for (const e of (s.enum as unknown[] | undefined) ?? []) any(w, 20, e);
  const ap = s.additionalProperties;
  if (ap !== undefined) {
    w.message(21, (a) => {
      // A oneof member is written even when false: its presence is the point.
      if (typeof ap === 'boolean') a.boolPresent(2, ap);
      else a.message(1, (x) => schema(x, ap as Json));
    });
  }
  if (s.type !== undefined) w.message(22, (t) => { for (const v of [s.type].flat() as string[]) t.string(1, v); });
  if (s.items !== undefined) w.message(23, (it) => { for (const x of [s.items].flat() as Json[]) it.message(1, (y) => schema(y, x)); });
  for (const x of (s.allOf as Json[] | undefined) ?? []) w.message(24, (y) => schema(y, x));
  const props = s.properties as Record<string, Json> | undefined;
  if (props) {
    w.message(25, (p) => {
      for (const [name, v] of Object.entries(props)) p.message(1, (n) => { n.string(1, name); n.message(2, (y) => schema(y, v)); });
    });
  }
  w.string(26, s.discriminator as string);
  w.bool(27, s.readOnly);
  if (s.example !== undefined) any(w, 30, s.example);
  for (const [k, v] of Object.entries(s)) if (k.startsWith('x-')) namedAny(w, 31, k, v);
}

let encoded: Buffer | undefined;

/** The encoded document (built once: the kinds are fixed at startup). */
export function openApiV2Protobuf(): Buffer {
  if (encoded) return encoded;
  const doc = openApiV2() as Json;
  const w = new Writer();
  w.string(1, String(doc.swagger ?? '2.0'));
  const info = (doc.info ?? {}) as Json;
  w.message(2, (i) => {
    i.string(1, info.title as string);
    i.string(2, info.version as string);
    i.string(3, info.description as string);
  });
  const defs = (doc.definitions ?? {}) as Record<string, Json>;
  w.message(9, (d) => {
    for (const [name, s] of Object.entries(defs)) d.message(1, (n) => { n.string(1, name); n.message(2, (y) => schema(y, s)); });
  });
  encoded = w.finish();
  return encoded;
}
