// Brings a fresh clone to a runnable state using Node built-ins only: npm
// packages (npm ci) and, when missing, Debian's nats-server. Runs as npm's
// prestart/pretest hook, so `npm start` and `npm test` need no step before them.
import { execSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (m) => process.stderr.write(`[bootstrap] ${m}\n`);

function npmInstalled() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  if (!existsSync(marker)) return false;
  return statSync(marker).mtimeMs >= statSync(join(root, 'package-lock.json')).mtimeMs - 1000;
}

if (!npmInstalled()) {
  log('installing npm packages (npm ci)');
  execSync('npm ci --no-audit --no-fund', { cwd: root, stdio: 'inherit' });
}

// tap compiles its plugin set at install time; ours (no ts-node plugin, which
// crashes on the native TypeScript 7 compiler) must be built before the first
// run, or that run loads the default set.
const tapConfig = JSON.stringify(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).tap ?? {});
const tapMarker = join(root, 'node_modules', '.flotilla-tap-build');
if (!existsSync(tapMarker) || readFileSync(tapMarker, 'utf8') !== tapConfig) {
  log('building tap plugins');
  execSync('npx tap build', { cwd: root, stdio: 'inherit' });
  writeFileSync(tapMarker, tapConfig);
}

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

// [command, Debian package]: nats-server for the event stream, kubectl for
// the compatibility tests (Debian's kubernetes-client).
const aptPackages = [['nats-server', 'nats-server'], ['kubectl', 'kubernetes-client']];
const missing = aptPackages.filter(([cmd]) => !has(cmd)).map(([, pkg]) => pkg);
if (missing.length) {
  if (process.getuid && process.getuid() === 0 && has('apt-get')) {
    log(`installing Debian packages: ${missing.join(' ')}`);
    execSync('apt-get update -qq', { stdio: 'inherit' });
    execSync(`DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`, { stdio: 'inherit' });
  } else {
    log(`missing: ${missing.join(' ')}. Run: sudo apt-get install -y ${missing.join(' ')}`);
  }
}

// The compiled build bin/flotilla.js runs (scripts/build.mjs), when the
// sources changed since the last one.
const { freshDist } = await import('./freshness.mjs');
if (!freshDist(root)) {
  log('compiling to dist/');
  const { buildDist } = await import('./build.mjs');
  await buildDist();
}
