// Files named by command-line flags (keys, certificates, policies, token
// files): read once at start, and every failure — unreadable, or a parse
// error — names the flag and the file, so the process stops with a message
// the operator can act on.
import { readFileSync } from 'node:fs';

/** The text of the file `flag` names; throws `FLAG: cannot read PATH: why`. */
export function readFlagFile(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${flag}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Reads the file `flag` names and parses it; a parse error becomes `FLAG PATH: why`, wrapped by `wrap` (default Error). */
export function parseFlagFile<T>(path: string, flag: string, parse: (text: string) => T, wrap: (message: string) => Error = (m) => new Error(m)): T {
  let text: string;
  try {
    text = readFlagFile(path, flag);
  } catch (e) {
    throw wrap((e as Error).message);
  }
  try {
    return parse(text);
  } catch (e) {
    throw wrap(`${flag} ${path}: ${(e as Error).message}`);
  }
}
