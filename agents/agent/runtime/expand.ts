// Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion) for
// command, args and env values: $(NAME) becomes NAME's value when NAME is
// defined, and stays as written otherwise; $$ escapes ("$$(X)" → "$(X)");
// a "$" followed by anything else, or an unterminated "$(", stays as written
// (and the text after it is still expanded).
export function expand(input: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  let i = 0;
  while (i < input.length) {
    const ch = input[i];
    if (ch !== '$' || i + 1 >= input.length) {
      out += ch;
      i++;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        // An incomplete reference stays as written; what follows is still expanded.
        out += '$(';
        i += 2;
        continue;
      }
      const name = input.slice(i + 2, close);
      const v = name ? lookup(name) : undefined;
      out += v === undefined ? `$(${name})` : v;
      i = close + 1;
      continue;
    }
    out += ch;
    i++;
  }
  return out;
}
