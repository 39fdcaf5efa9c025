import { lastWriteWasAsync, newShutdownReq, newWriteReq, readResult, type TcpHandle, type WriteReq } from './tcp-handle.js';

const kReply = Symbol('licgate.reply');
type ReplyHandle = TcpHandle & { [kReply]: Reply };

/**
 * Writes `text` to `handle`, sends our FIN, and closes once the peer has sent its own (what it
 * sends meanwhile is read and dropped: closing with unread bytes would turn our close into a
 * reset that can destroy the reply in flight). A peer that never closes is cut off after `lingerMs`.
 * Returns the bytes handed to the socket for the peer (0 when the write failed), for the log.
 */
export function replyAndClose(handle: TcpHandle, text: string, lingerMs: number): number {
  const reply = new Reply(handle as ReplyHandle);
  const data = Buffer.from(text, 'latin1');
  const req = newWriteReq(onReplyWritten);
  if (handle.writeBuffer(req, data) !== 0) {
    reply.hangUp();
    return 0;
  }
  if (lastWriteWasAsync()) req.buffer = data;
  if (handle.shutdown(newShutdownReq(ignore)) !== 0) reply.hangUp();
  else {
    reply.linger = setTimeout(() => reply.hangUp(), lingerMs);
    reply.linger.unref();
    handle.onread = onDrainRead;
    handle.readStart();
  }
  return data.length;
}

class Reply {
  linger: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly handle: ReplyHandle) {
    handle[kReply] = this;
  }

  hangUp(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.linger) clearTimeout(this.linger);
    this.handle.close();
  }
}

function onReplyWritten(this: WriteReq): void {
  this.buffer = null;
}

function onDrainRead(this: ReplyHandle): void {
  if (readResult() < 0) this[kReply].hangUp();
}

const ignore = (): void => {
  // The FIN's outcome changes nothing: the handle closes on the peer's FIN or the linger timeout.
};
