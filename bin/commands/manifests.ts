// Reading manifests for apply and delete -f: files, directories (*.yaml,
// *.yml, *.json), or stdin; multi-document YAML and JSON (JSON is parsed as
// YAML, so both report the same line numbers); `kind: List` expanded into its
// items. Every problem names the file and line, because a manifest set is
// usually many files and "could not parse" alone sends the user hunting.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import YAML, { LineCounter } from 'yaml';
import type { KubeObject } from '../../api/schema/types.ts';

export interface Manifest {
  obj: KubeObject;
  /** The file it came from ("STDIN" for -). */
  source: string;
  /** 1-based line where its document starts. */
  line: number;
}

export class ManifestError extends Error {
  override name = 'ManifestError';
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Whether an object is a list of objects to expand (v1 List or a typed XxxList). */
function isList(o: Record<string, unknown>): boolean {
  return typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items);
}

/** The objects in one file's text. */
export function parseManifests(text: string, source: string): Manifest[] {
  const lines = new LineCounter();
  const docs = YAML.parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true });
  const out: Manifest[] = [];
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) {
      const pos = err.linePos?.[0];
      // The library's message repeats the position and quotes the source; keep its first sentence.
      const what = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
      throw new ManifestError(`error parsing ${source}: ${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}${what}`);
    }
    // Where the object itself starts (after any comments and the `---` marker).
    const line = lines.linePos(doc.contents?.range?.[0] ?? doc.range[0]).line;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      throw new ManifestError(`error parsing ${source}: line ${line}: ${(e as Error).message}`);
    }
    if (value === null || value === undefined) continue; // an empty document (a stray `---`)
    if (!isObj(value)) {
      throw new ManifestError(`error validating ${source}: line ${line}: a manifest must be a mapping (apiVersion, kind, metadata…), not ${Array.isArray(value) ? 'a sequence' : 'a scalar'}`);
    }
    const items = isList(value) ? (value.items as unknown[]) : [value];
    items.forEach((item, i) => {
      const where = isList(value) ? `line ${line}, items[${i}]` : `line ${line}`;
      out.push({ obj: validateManifest(item, `${source}: ${where}`), source, line });
    });
  }
  return out;
}

/** apiVersion, kind and metadata.name must be there; apply never generates names. */
function validateManifest(v: unknown, where: string): KubeObject {
  if (!isObj(v)) throw new ManifestError(`error validating ${where}: a list item must be a mapping`);
  const missing: string[] = [];
  if (typeof v.apiVersion !== 'string' || !v.apiVersion) missing.push('apiVersion not set');
  if (typeof v.kind !== 'string' || !v.kind) missing.push('kind not set');
  const meta = v.metadata;
  if (meta !== undefined && !isObj(meta)) missing.push('metadata must be a mapping');
  else if (typeof meta?.name !== 'string' || !meta.name) {
    missing.push(meta && typeof meta.generateName === 'string' ? 'metadata.generateName cannot be used with apply or delete; set metadata.name' : 'metadata.name not set');
  }
  if (missing.length) throw new ManifestError(`error validating ${where}: [${missing.join(', ')}]`);
  return v as KubeObject;
}

/** The manifest files a path names: itself, or a directory's *.yaml/*.yml/*.json sorted by name. */
export function manifestFiles(path: string, recursive = false): string[] {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ManifestError(code === 'ENOENT' ? `the path "${path}" does not exist` : `cannot read "${path}": ${(e as Error).message}`);
  }
  if (!st.isDirectory()) return [path];
  const out: string[] = [];
  for (const ent of readdirSync(path, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(path, ent.name);
    if (ent.isDirectory()) {
      if (recursive) out.push(...manifestFiles(p, true));
    } else if (MANIFEST_EXTENSIONS.has(extname(ent.name).toLowerCase())) {
      out.push(p);
    }
  }
  return out;
}

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Every object named by -f arguments, in order. All files are parsed before
 * anything is sent, so a typo in the last file does not leave a half-applied set.
 */
export async function readManifests(
  paths: string[],
  opts: { recursive?: boolean; stdin?: NodeJS.ReadableStream; verb?: string } = {},
): Promise<Manifest[]> {
  const out: Manifest[] = [];
  for (const p of paths) {
    if (p === '-') {
      out.push(...parseManifests(await readStream(opts.stdin ?? process.stdin), 'STDIN'));
      continue;
    }
    const files = manifestFiles(p, opts.recursive);
    for (const f of files) {
      let text: string;
      try {
        text = readFileSync(f, 'utf8');
      } catch (e) {
        throw new ManifestError(`cannot read "${f}": ${(e as Error).message}`);
      }
      out.push(...parseManifests(text, f));
    }
  }
  if (!out.length) throw new ManifestError(`no objects passed to ${opts.verb ?? 'apply'} (nothing found in ${paths.join(', ')})`);
  return out;
}
