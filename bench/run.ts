// `npm run bench [-- NAME...]`: runs the named benchmarks (all by default),
// prints their figures and records them in bench/RESULTS.md.
import { type Section, writeSection } from './report.ts';

const benches: Record<string, () => Promise<Section>> = {
  raft: async () => (await import('./raft.ts')).benchRaft(),
  api: async () => (await import('./api.ts')).benchApi(),
  'api-paths': async () => (await import('./api-paths.ts')).benchApiPaths(),
  events: async () => (await import('./events.ts')).benchEvents(),
  soak: async () => (await import('./soak.ts')).benchSoak(),
  scheduler: async () => (await import('./scheduler.ts')).benchScheduler(),
  controllers: async () => (await import('./controllers.ts')).benchControllers(),
  agent: async () => (await import('./agent.ts')).benchAgent(),
};

const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const run = names.length ? names : Object.keys(benches);
for (const n of run) {
  const b = benches[n];
  if (!b) {
    console.error(`unknown benchmark "${n}"; known: ${Object.keys(benches).join(', ')}`);
    process.exit(2);
  }
  const s = await b();
  writeSection(s);
  console.log(`\n${s.body}\n\n(written to bench/RESULTS.md)`);
}
process.exit(0);
