// What every Flotilla process's command line shares: strict parsing with
// the usage in the error, --help, booleans as Go parses them, and the
// signals that stop it. One place, so the processes (controllers, scheduler,
// dns, ingress, proxy) behave alike.
import { parseArgs } from 'node:util';

export type FlagOptions = Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }>;
export type FlagValues = Record<string, string | boolean | undefined>;

/** Parses `argv` strictly; prints the usage and returns undefined for --help. Errors carry the usage. */
export function parseFlags(argv: string[], options: FlagOptions, usage: string): FlagValues | undefined {
  let values: FlagValues;
  try {
    values = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values as FlagValues;
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${usage}`);
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return undefined;
  }
  return values;
}

/** A boolean flag's value as Go's strconv.ParseBool reads the common spellings. */
export function parseBool(v: string, flag: string): boolean {
  if (/^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  throw new Error(`invalid value "${v}" for --${flag}: expected true or false`);
}

/** Runs `stop` once on SIGINT or SIGTERM. */
export function onTermination(stop: (signal: string) => Promise<void> | void): void {
  let stopping = false;
  const handle = (signal: string) => {
    if (stopping) return;
    stopping = true;
    void stop(signal);
  };
  process.on('SIGINT', () => handle('SIGINT'));
  process.on('SIGTERM', () => handle('SIGTERM'));
}
