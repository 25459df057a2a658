// Whether dist/ was built after the last change to any source file it
// bundles (the TypeScript trees the CLI imports, and package.json). A stat
// walk of a few hundred files: a few milliseconds at each start.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const SOURCE_DIRS = ['api', 'agents', 'apiserver', 'bin', 'raft', 'harness'];

function newestIn(dir, acc) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return acc;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) acc = newestIn(p, acc);
    else if (e.name.endsWith('.ts')) acc = Math.max(acc, statSync(p).mtimeMs);
  }
  return acc;
}

/** The build's entry file when it is newer than every source, else undefined. */
export function freshDist(root) {
  const entry = join(root, 'dist', 'cli.js');
  let built;
  try {
    built = statSync(entry).mtimeMs;
  } catch {
    return undefined;
  }
  let newest = statSync(join(root, 'package.json')).mtimeMs;
  for (const d of SOURCE_DIRS) newest = newestIn(join(root, d), newest);
  return newest < built ? entry : undefined;
}
