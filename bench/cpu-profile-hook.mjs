// Loaded into `flotilla server` processes through NODE_OPTIONS=--import=...
// by bench/profile-api.ts (Node refuses --cpu-prof in NODE_OPTIONS): samples
// the main thread from start to exit and writes FLOTILLA_PROFILE_DIR/<pid>.cpuprofile
// (open in Chrome DevTools or speedscope). Inert in any other process.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
if (process.argv.includes('server') && process.env.FLOTILLA_PROFILE_DIR) {
  const s = new Session();
  s.connect();
  s.post('Profiler.enable');
  s.post('Profiler.setSamplingInterval', { interval: 1000 });
  s.post('Profiler.start');
  process.on('exit', () => {
    s.post('Profiler.stop', (err, r) => {
      if (!err) writeFileSync(`${process.env.FLOTILLA_PROFILE_DIR}/${process.pid}.cpuprofile`, JSON.stringify(r.profile));
    });
  });
}
