// NATS server lists with credentials. A cluster whose NATS servers require a
// user (what `flotilla up` starts) is named by URLs carrying it,
// `nats://user:password@127.0.0.1:4222`, in the same places that name any
// NATS URL (`--nats`, $FLOTILLA_NATS, cluster.json). nats.js does not read
// credentials from a URL, so every connection goes through these options:
// the servers without their userinfo, plus `user`/`pass`.

export interface NatsServerOptions {
  servers: string[];
  user?: string;
  pass?: string;
}

/** "nats://u:p@a:4222,nats://u:p@b:4222" (or a list) → servers and the one user they share. */
export function natsServerOptions(v: string | readonly string[]): NatsServerOptions {
  const list = (typeof v === 'string' ? v.split(',') : [...v]).map((s) => s.trim()).filter(Boolean);
  const servers: string[] = [];
  let creds: { user: string; pass: string } | undefined;
  for (const raw of list) {
    const m = /^([a-z][a-z0-9+.-]*:\/\/)?([^@/]*)@(.*)$/i.exec(raw);
    if (!m) {
      servers.push(raw);
      continue;
    }
    const [user, ...rest] = m[2].split(':');
    const these = { user: decodeURIComponent(user), pass: decodeURIComponent(rest.join(':')) };
    if (creds && (creds.user !== these.user || creds.pass !== these.pass)) {
      throw new Error('the NATS URLs name different users; give every server of a list the same credentials');
    }
    creds = these;
    servers.push(`${m[1] ?? ''}${m[3]}`);
  }
  return creds ? { servers, ...creds } : { servers };
}

/** A URL list without its credentials, for messages and logs. */
export function redactNatsUrls(v: string | readonly string[]): string {
  return natsServerOptions(v).servers.join(',');
}
