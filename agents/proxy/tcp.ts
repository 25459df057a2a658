// Splicing a client connection to the first of several targets that accepts:
// the one place TCP connections are relayed (the service proxy, and the API
// balancer of `flotilla up`). The client is paused until a target connects,
// so nothing it sends is lost while a refusing target is skipped; a clean
// end travels through the pipes (half-close), a broken target connection
// cuts the client off.
import net from 'node:net';

export interface TcpTarget {
  host: string;
  port: number;
}

/** Relays `client` to the first target in `order` that accepts; `done(true)` when one did, `done(false)` when none. */
export function relayToFirst(client: net.Socket, order: TcpTarget[], done?: (connected: boolean) => void): void {
  client.on('error', () => client.destroy());
  client.pause();
  const attempt = (i: number) => {
    if (i >= order.length || client.destroyed) {
      done?.(false);
      client.destroy();
      return;
    }
    const t = order[i]!;
    const up = net.connect({ host: t.host, port: t.port, allowHalfOpen: true });
    let connected = false;
    up.once('connect', () => {
      connected = true;
      done?.(true);
      client.pipe(up);
      up.pipe(client);
      client.resume();
    });
    up.on('error', () => {
      if (!connected) attempt(i + 1);
      else client.destroy();
    });
    up.on('close', (hadError) => {
      if (connected && hadError) client.destroy();
    });
    client.once('close', () => up.destroy());
  };
  attempt(0);
}
