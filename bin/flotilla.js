#!/usr/bin/env node
// Entry point for `flotilla`: runs the compiled build in dist/ (made by the
// bootstrap or `npm run build`) when it is up to date with the sources, and
// otherwise the TypeScript sources through the tsx loader — slower to start,
// never stale. FLOTILLA_TSX=1 forces the sources.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freshDist } from '../scripts/freshness.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = process.env.FLOTILLA_TSX === '1' ? undefined : freshDist(root);
if (dist) {
  process.setSourceMapsEnabled(true);
  await import(pathToFileURL(dist).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./cli.ts');
}
