// Request bodies in (size-limited, JSON or YAML, or protobuf for a few kinds) and responses out (JSON,
// YAML, Kubernetes Status on errors).
import type { IncomingMessage, ServerResponse } from 'node:http';
import YAML from 'yaml';
import { ApiError, errors } from '../errors.ts';
import { PROTOBUF_TYPE, decodeProtobufBody } from './protobuf-body.ts';

/** Kubernetes' limit on request bodies. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw errors.tooLarge(limit);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      req.resume();
      throw errors.tooLarge(limit);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? 'application/json').split(';')[0].trim().toLowerCase();
}

/** Decodes a body as JSON or YAML by content type; a decoding failure is a 400 that names the problem. */
export function decodeBody(body: Buffer, type: string): unknown {
  if (type === PROTOBUF_TYPE) return decodeProtobufBody(body);
  const text = body.toString('utf8');
  if (!text.trim()) throw errors.badRequest('the request body is empty');
  const yaml = type === 'application/yaml' || type === 'application/apply-patch+yaml' || type === 'text/yaml';
  try {
    if (!yaml) return JSON.parse(text);
  } catch (e) {
    throw errors.badRequest(`the body of the request could not be decoded as JSON: ${(e as Error).message}`);
  }
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true });
  if (docs.length !== 1) throw errors.badRequest(`the body must hold exactly one YAML document (found ${docs.length})`);
  const doc = docs[0];
  if (doc.errors.length) throw errors.badRequest(`the body of the request could not be decoded as YAML: ${doc.errors[0].message}`);
  return doc.toJS({ maxAliasCount: 100 });
}

export function wantsYaml(req: IncomingMessage): boolean {
  const a = req.headers.accept ?? '';
  return /application\/yaml/.test(a) && !/application\/json/.test(a);
}

/** 406 unless the client accepts something we can write. */
export function checkAcceptable(req: IncomingMessage): void {
  const a = req.headers.accept;
  if (!a) return;
  if (/application\/json|application\/yaml|\*\/\*|application\/\*|text\/plain/.test(a)) return;
  throw errors.notAcceptable(`only the following media types are accepted: application/json, application/yaml (got "${a}")`);
}

export function sendJson(res: ServerResponse, code: number, body: unknown, req?: IncomingMessage): void {
  if (req && wantsYaml(req)) {
    const text = YAML.stringify(typeof body === 'string' ? JSON.parse(body) : body);
    res.writeHead(code, { 'content-type': 'application/yaml', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Size of the buffers a LIST body is encoded into (see sendJsonParts). */
const PART_BYTES = 1024 * 1024;

/**
 * A JSON body made of pieces - a list's head, its stored objects' text with
 * commas between, its tail - encoded straight into a few large buffers: no
 * joined string of the whole body, no separate pass to measure it, no second
 * copy when it is written. The bytes are those of sendJson(head + items.join(',') + tail).
 */
export function sendJsonParts(res: ServerResponse, code: number, head: string, items: string[], tail: string, req?: IncomingMessage): void {
  if (req && wantsYaml(req)) return sendJson(res, code, `${head}${items.join(',')}${tail}`, req);
  const { parts, total } = encodeJsonParts(head, items, tail);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': total });
  for (let i = 0; i < parts.length - 1; i++) res.write(parts[i]);
  res.end(parts[parts.length - 1]);
}

/** head + items.join(',') + tail as UTF-8, in buffers of about PART_BYTES (never empty), and their total length. */
export function encodeJsonParts(head: string, items: string[], tail: string): { parts: Buffer[]; total: number } {
  const parts: Buffer[] = [];
  let buf = Buffer.allocUnsafe(PART_BYTES);
  let off = 0;
  let total = 0;
  const put = (text: string) => {
    // UTF-8 takes at most 3 bytes per UTF-16 unit: check the exact size only when that bound does not fit.
    if (off + text.length * 3 > buf.length && off + Buffer.byteLength(text) > buf.length) {
      if (off) parts.push(buf.subarray(0, off));
      total += off;
      if (Buffer.byteLength(text) > PART_BYTES) {
        const big = Buffer.from(text);
        parts.push(big);
        total += big.length;
        buf = Buffer.allocUnsafe(PART_BYTES);
        off = 0;
        return;
      }
      buf = Buffer.allocUnsafe(PART_BYTES);
      off = 0;
    }
    off += buf.write(text, off);
  };
  put(head);
  for (let i = 0; i < items.length; i++) {
    if (i) put(',');
    put(items[i]);
  }
  put(tail);
  if (off) parts.push(buf.subarray(0, off));
  total += off;
  return { parts, total };
}

export function sendError(res: ServerResponse, e: unknown): void {
  const err = e instanceof ApiError ? e : errors.internal((e as Error)?.message ?? String(e));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (err.details?.retryAfterSeconds) headers['retry-after'] = String(err.details.retryAfterSeconds);
  const text = JSON.stringify(err.toStatus());
  res.writeHead(err.code, { ...headers, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function statusSuccess(details?: Record<string, unknown>): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', ...(details ? { details } : {}) };
}
