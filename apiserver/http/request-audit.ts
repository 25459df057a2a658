// Who made a request, as Kubernetes' audit Event records it: the
// authenticated user's groups, the source addresses and the user agent. It
// travels in the replicated write command (apiserver/command.ts), so the
// event on the stream says the same whichever member took the request.
import type { IncomingMessage } from 'node:http';
import type { RequestAudit } from '../command.ts';
import type { UserInfo } from '../auth/rules.ts';

/** Kubernetes' cap on a recorded user agent (longer ones are cut and marked). */
export const MAX_USER_AGENT = 1024;
const TRUNCATED = '...TRUNCATED';
/** X-Forwarded-For entries kept (a client can send any number). */
const MAX_FORWARDED = 8;

/**
 * Kubernetes' sourceIPs: the X-Forwarded-For entries (as sent: a client can
 * write anything there, so they are a claim, not proof), then X-Real-Ip,
 * then the connection's peer address, which is the only one we saw ourselves
 * and is always last. Only syntactically plausible addresses are kept.
 */
export function sourceIPs(req: IncomingMessage): string[] {
  const out: string[] = [];
  const add = (v: string) => {
    const ip = v.trim().replace(/^::ffff:(?=\d+\.)/i, '');
    if (ip && /^[0-9a-fA-F:.]{2,45}$/.test(ip) && !out.includes(ip)) out.push(ip);
  };
  const xff = req.headers['x-forwarded-for'];
  if (xff) for (const v of String(xff).split(',').slice(0, MAX_FORWARDED)) add(v);
  const real = req.headers['x-real-ip'];
  if (real && !out.length) add(String(real));
  const peer = req.socket.remoteAddress;
  if (peer) {
    const ip = peer.replace(/^::ffff:(?=\d+\.)/i, '');
    // The peer address is the one fact here: it goes last even if a header repeated it.
    const i = out.indexOf(ip);
    if (i >= 0) out.splice(i, 1);
    out.push(ip);
  }
  return out;
}

export function userAgent(req: IncomingMessage): string {
  const ua = String(req.headers['user-agent'] ?? '');
  return ua.length > MAX_USER_AGENT ? ua.slice(0, MAX_USER_AGENT) + TRUNCATED : ua;
}

export function requestAudit(req: IncomingMessage, who: UserInfo): RequestAudit {
  return { groups: [...who.groups], sourceIPs: sourceIPs(req), userAgent: userAgent(req) };
}
