// kube-apiserver's --token-auth-file: a CSV of token,user,uid[,"group1,group2"].
import { readFlagFile } from '../../api/flag-file.ts';
import type { UserInfo } from './rules.ts';

/** Splits one CSV line, honouring double quotes (the groups column is quoted when it holds commas). */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (c === '"') quoted = false; else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { out.push(cur); cur = ''; } else cur += c;
  }
  if (quoted) throw new Error('unterminated quote');
  out.push(cur);
  return out;
}

/** Parses the file's text; a malformed line is an error naming the line (the server refuses to start). */
export function parseTokenFile(text: string, source = 'token file'): Map<string, UserInfo> {
  const tokens = new Map<string, UserInfo>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    let f: string[];
    try {
      f = csvFields(line).map((x) => x.trim());
    } catch (e) {
      throw new Error(`${source}, line ${i + 1}: ${(e as Error).message}`);
    }
    if (f.length < 3 || !f[0] || !f[1]) throw new Error(`${source}, line ${i + 1}: expected token,user,uid[,"group1,group2"]`);
    if (tokens.has(f[0])) throw new Error(`${source}, line ${i + 1}: duplicate token`);
    const groups = f[3] ? f[3].split(',').map((g) => g.trim()).filter(Boolean) : [];
    tokens.set(f[0], { user: f[1], uid: f[2], groups });
  });
  return tokens;
}

export function loadTokenFile(path: string): Map<string, UserInfo> {
  return parseTokenFile(readFlagFile(path, '--token-auth-file'), path);
}
