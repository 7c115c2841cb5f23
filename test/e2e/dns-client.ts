import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';
import type { DecodedPacket } from 'dns-packet';

/** Asks one A query over UDP from 127.0.0.1; null when no answer comes within `waitMs`. */
export function askUdp(address: string, name: string, waitMs = 3000): Promise<DecodedPacket | null> {
  const host = address.slice(0, address.lastIndexOf(':'));
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(null);
    }, waitMs);
    socket.on('message', (message) => {
      clearTimeout(timer);
      socket.close();
      resolve(dnsPacket.decode(message));
    });
    socket.on('error', reject);
    const bytes = dnsPacket.encode({ type: 'query', id: Math.floor(Math.random() * 65535), flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }] });
    socket.bind(0, '127.0.0.1', () => socket.send(bytes, port, host));
  });
}

/** The response code of an answer, or null for no answer. */
export function rcode(answer: DecodedPacket | null): number | null {
  return answer === null ? null : ((answer.flags ?? 0) & 0xf);
}
