// The http.Server setup shared by `mixtune serve` and `mixtune ui`: timeouts for long generations
// and for clients that keep idle connections, a listen() that resolves with the bound address,
// and a close that waits for open requests a little, then cuts the rest.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export function createHttpServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Server {
  const http = createServer(handle);
  // generation can take minutes; let the client decide when to give up
  http.requestTimeout = 0;
  // Clients (the openai SDKs, fetch) keep idle connections and reuse them: with Node's default
  // 5 s keep-alive the server may close a socket just as a client sends on it (a "connection
  // error" after a pause). 65 s outlasts the usual client pools; headers must arrive sooner.
  http.keepAliveTimeout = 65_000;
  http.headersTimeout = 66_000;
  return http;
}

/** Listens on host:port; resolves with the bound address, rejects with the listen error (EADDRINUSE, ...). */
export function listenHttp(http: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => {
      http.off('error', reject);
      resolve(http.address() as AddressInfo);
    });
  });
}

/**
 * Closes the server: idle connections at once, then `beforeCut` (e.g. wait for running requests),
 * then up to 1 s for the rest to finish before every connection is closed.
 */
export async function closeHttp(http: Server, beforeCut?: () => Promise<void>): Promise<void> {
  const closed = new Promise<void>((r) => http.close(() => r()));
  http.closeIdleConnections();
  if (beforeCut) {
    await beforeCut();
    http.closeIdleConnections();
  }
  await Promise.race([closed, new Promise((r) => setTimeout(r, 1000).unref())]);
  http.closeAllConnections();
  await closed;
}
