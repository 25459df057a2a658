// Compiles the CLI and every process it starts into dist/ (one esbuild
// bundle, split at the lazily imported commands), so `flotilla` runs plain
// JavaScript instead of compiling TypeScript through the tsx loader at each
// start. npm packages stay external. bin/flotilla.js uses dist/ only while it
// is newer than every source file (see scripts/freshness.mjs), so a stale
// build never runs edited code. Runs from the bootstrap (npm start, npm test)
// and as `npm run build`.
import { rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist');
const tmp = join(root, `dist.tmp-${process.pid}`);

export async function buildDist() {
  rmSync(tmp, { recursive: true, force: true });
  await build({
    entryPoints: [join(root, 'bin', 'cli.ts')],
    outdir: tmp,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  });
  // Swap whole directories so a process starting meanwhile sees the old build or the new one.
  rmSync(out, { recursive: true, force: true });
  const { renameSync } = await import('node:fs');
  renameSync(tmp, out);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t0 = Date.now();
  await buildDist();
  process.stderr.write(`[build] dist/ in ${Date.now() - t0} ms\n`);
}
