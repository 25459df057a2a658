// bench/RESULTS.md: one section per benchmark, replaced in place on each run,
// under a header that says which machine produced the figures.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../harness/procs.ts';

export interface Section {
  name: string;
  title: string;
  body: string;
}

export const RESULTS = join(ROOT, 'bench', 'RESULTS.md');

export function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

export function machine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}/${process.arch}`;
}

export function writeSection(s: Section): void {
  const text = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '# Benchmark results\n\nWritten by `npm run bench`; each section is replaced when its benchmark runs again.\n';
  const begin = `<!-- bench:${s.name} -->`;
  const end = `<!-- /bench:${s.name} -->`;
  const block = `${begin}\n## ${s.title}\n\nRun ${new Date().toISOString()} on ${machine()}.\n\n${s.body}\n${end}`;
  const re = new RegExp(`${begin}[\\s\\S]*?${end}`);
  const out = re.test(text) ? text.replace(re, block) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(RESULTS, out);
}
