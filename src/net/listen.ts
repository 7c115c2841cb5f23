import { createSocket as createUdpSocket } from 'node:dgram';
import { createServer as createNetServer, isIPv6, type Server } from 'node:net';
import { NeuwerkError } from '../errors.js';
import { formatHostPort, type HostPort } from '../config/address.js';

/**
 * Binds a server and resolves with the bound address; a failure names the address and the
 * setting it came from (`--http-bind 127.0.0.1:8443 is already in use`).
 */
export function listen(server: Server, address: HostPort, setting: string): Promise<HostPort> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      reject(bindError(err, address, setting, ''));
    };
    const onListening = (): void => {
      server.off('error', onError);
      const bound = server.address();
      const port = bound !== null && typeof bound === 'object' ? bound.port : address.port;
      resolve({ host: address.host, port });
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: address.host, port: address.port, exclusive: true });
  });
}

/**
 * Why an address could not be bound, naming the setting it came from (a flag, or a config key and
 * its file; see `NodeConfig.bindSettings`); `protocol`: '', ' (UDP)' or ' (TCP)'.
 */
export function bindError(err: NodeJS.ErrnoException, address: HostPort, setting: string, protocol: string): NeuwerkError {
  const shown = formatHostPort(address);
  if (err.code === 'EADDRINUSE') {
    return new NeuwerkError('NW_ERR_ADDRESS_IN_USE', `${setting} ${shown}${protocol} is already in use`, {
      actions: [`Stop whatever listens on ${shown}${protocol}, or choose another address with ${setting}.`],
    });
  }
  return new NeuwerkError('NW_ERR_LISTEN_FAILED', `${setting} ${shown}${protocol}: cannot listen (${err.code ?? err.message})`);
}

/** Closes a server, ending idle keep-alive connections so the close does not wait for clients. */
export function closeServer(server: Server & { closeIdleConnections?: () => void; closeAllConnections?: () => void }, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    const force = setTimeout(() => server.closeAllConnections?.(), graceMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections?.();
  });
}

/** A listener a node is about to open: its address, the setting it came from, and its protocols. */
export interface PlannedListener {
  readonly address: HostPort;
  readonly setting: string;
  /** Also a UDP socket on the same address (the DNS proxy). */
  readonly udp?: boolean;
}

/**
 * Binds and at once releases every planned listener (port 0 ones are skipped), so a step that
 * cannot be undone — a join, which makes the node a member — never runs when a listener is taken.
 * Fails with the same error `listen` would.
 */
export async function checkListenersFree(planned: readonly PlannedListener[]): Promise<void> {
  for (const listener of planned) {
    if (listener.address.port === 0) continue;
    const server = createNetServer();
    await listen(server, listener.address, listener.setting);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (listener.udp === true) await checkUdpFree(listener.address, listener.setting);
  }
}

function checkUdpFree(address: HostPort, setting: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createUdpSocket(isIPv6(address.host) ? 'udp6' : 'udp4');
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.close();
      reject(bindError(err, address, setting, ' (UDP)'));
    });
    socket.bind({ address: address.host, port: address.port, exclusive: true }, () => socket.close(() => resolve()));
  });
}
