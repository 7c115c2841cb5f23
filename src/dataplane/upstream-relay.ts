/**
 * The reading side of a socket the forward proxy dialled (the upstream of a tunnel), copied into
 * the client socket without a Buffer and a stream 'data' event per chunk: libuv reads straight
 * into a buffer the relay owns (`net.connect`'s `onread` option), and each read is written on.
 *
 * The buffer is reused only while nothing refers to it: a write the kernel takes at once leaves
 * `to.writableLength` at 0 and the buffer free for the next read; a write that stays queued keeps
 * the buffer, and the relay reads into a fresh one from then on (what Node does for every read).
 * A write that fills `to` beyond its high-water mark stops reading until `to` drains
 * (backpressure). Bytes that arrive before `start` (between connect and the tunnel) are copied
 * and reading pauses until then. The end of input is passed on as a half-close (`passEnd`).
 *
 * The buffer follows the traffic, so that an idle or chatty tunnel holds a small one: a read that
 * fills the buffer moves to the bulk size, a read of at most the small size moves back.
 */

/** Largest read of a dialled socket in bulk (the buffer of a tunnel whose reads fill it). */
export const UPSTREAM_READ_BYTES = 64 * 1024;
/**
 * The buffer of a tunnel whose reads are small (and of a new one). One byte under 4 KiB, so that
 * `Buffer.allocUnsafe` slices it from Node's shared pool (it pools sizes below half its 8 KiB pool)
 * instead of allocating a backing store of its own for every new tunnel.
 */
export const UPSTREAM_SMALL_READ_BYTES = 4 * 1024 - 1;

/** What the relay uses of the socket it writes to (the client's). */
export interface RelaySink {
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  destroy(): unknown;
  on(event: 'drain', listener: () => void): unknown;
  readonly writableLength: number;
  /** True once the sink's own input has ended (a socket); absent on a write-only sink. */
  readonly readableEnded?: boolean;
}

/**
 * Passes the end of one direction of a tunnel on to `to`, the socket that direction writes to.
 * Usually a half-close (`end()`: shutdown, then close once `to` has ended as well). When `to` has
 * already read its own end and has no write queued, that half-close would be its last act: it is
 * closed at once instead, which sends the same FIN after the same bytes without the separate
 * shutdown and its completion (nothing is left unread, so the close is not a reset).
 */
export function passEnd(to: RelaySink): void {
  if (to.readableEnded === true && to.writableLength === 0) to.destroy();
  else to.end();
}

/** What the relay uses of the socket it reads (the one made with `onread`). */
export interface RelaySource {
  resume(): unknown;
  once(event: 'end', listener: () => void): unknown;
}

export class UpstreamRelay {
  private buffer = Buffer.allocUnsafe(UPSTREAM_SMALL_READ_BYTES);
  private to: RelaySink | null = null;
  private early: Buffer | null = null;

  /** The `onread` option for `net.connect` that makes the socket read through this relay. */
  readonly onread = { buffer: (): Buffer => this.buffer, callback: (bytes: number, buffer: Uint8Array): boolean => this.onRead(bytes, buffer) };

  /** Starts copying `from` (the socket made with `onread`) into `to`, with backpressure and half-close. */
  start(from: RelaySource, to: RelaySink): void {
    to.on('drain', () => from.resume());
    from.once('end', () => passEnd(to));
    if (this.attach(to)) from.resume();
  }

  /**
   * Directs reads into `to` from now on and writes the bytes read before; the caller resumes the
   * source when this returns true and on `to`'s 'drain', and passes the end on (what `start` adds).
   */
  attach(to: RelaySink): boolean {
    this.to = to;
    const early = this.early;
    this.early = null;
    return early === null || to.write(early);
  }

  /** Called on every read once attached, before the bytes are written on (a subclass notes activity). */
  protected noteRead(): void {}

  /** One read: `bytes` bytes at the start of `buffer`. Returning false stops reading until resumed. */
  private onRead(bytes: number, buffer: Uint8Array): boolean {
    const to = this.to;
    if (to === null) {
      const copy = Buffer.from(buffer.subarray(0, bytes));
      this.early = this.early === null ? copy : Buffer.concat([this.early, copy]);
      return false;
    }
    this.noteRead();
    const more = to.write(buffer.subarray(0, bytes));
    const size = bytes === buffer.length ? UPSTREAM_READ_BYTES : bytes <= UPSTREAM_SMALL_READ_BYTES ? UPSTREAM_SMALL_READ_BYTES : buffer.length;
    // Still queued in `to`: that write owns the buffer now.
    if (to.writableLength > 0 || size !== buffer.length) this.buffer = Buffer.allocUnsafe(size);
    return more;
  }
}
