// The import boundaries the layout promises (README, Layout): consumers never
// reach into the server's private modules, the Raft library knows nothing of
// Kubernetes, and nothing outside test/ imports from test/.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import t from 'tap';
import { ROOT } from '../harness/procs.ts';

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, name);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...tsFiles(rel));
    else if (name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** Every relative import of a file, as a path from the repository root. */
function importsOf(file: string): string[] {
  const src = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    out.push(relative(ROOT, resolve(ROOT, dirname(file), m[1]!)));
  }
  return out;
}

function violations(dirs: string[], forbidden: string[], allow: (file: string, target: string) => boolean = () => false): string[] {
  const bad: string[] = [];
  for (const dir of dirs) {
    for (const file of tsFiles(dir)) {
      for (const target of importsOf(file)) {
        if (forbidden.some((f) => target === f || target.startsWith(`${f}/`)) && !allow(file, target)) bad.push(`${file} imports ${target}`);
      }
    }
  }
  return bad;
}

t.test('consumers import shared types from api/, never the server internals', async (t) => {
  // bin/cli.ts starts the server for `flotilla server`; bench/api-paths.ts times the server's hot paths in one
  // process (as Go benchmarks live beside their package): the allowed edges.
  const bad = violations(['agents', 'bin', 'chaos', 'bench', 'examples', 'harness'], ['apiserver'], (file, target) => (file === 'bin/cli.ts' && target === 'apiserver/main.ts') || file === 'bench/api-paths.ts');
  t.same(bad, []);
});

t.test('api/ is shared: it imports nothing of the server or the consumers', async (t) => {
  t.same(violations(['api'], ['apiserver', 'agents', 'bin', 'raft', 'test', 'harness']), []);
});

t.test('raft/ knows nothing of Kubernetes', async (t) => {
  t.same(violations(['raft'], ['api', 'apiserver', 'agents', 'bin']), []);
});

t.test('nothing outside test/ imports from test/', async (t) => {
  t.same(violations(['api', 'apiserver', 'agents', 'bin', 'chaos', 'bench', 'harness', 'raft', 'examples'], ['test']), []);
});
