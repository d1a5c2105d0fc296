/**
 * A decomposition's upload: the `decompose` message announces its image, and the connection's
 * next frame must be that image, binary, of the announced size. What a connection expects next
 * (`PendingUpload`), and the check of the frame when it comes: its length against the
 * announcement, then the PNG against the layout's canvas (gpu-server/pipeline/flat-image.ts:
 * header first, bounded inflate). Nothing here keeps the bytes: a refused upload is dropped.
 */
import { decodeFlatImage } from '../gpu-server/pipeline/flat-image.ts';
import type { SourceImage } from '../gpu-server/pipeline/types.ts';
import type { DecomposeMessage, ErrorCode } from './protocol/messages.ts';

/**
 * What the next frame of a connection is, after a `decompose`: the image of an accepted message
 * (`accepted`), or of one already refused (its frame is discarded unread, not answered twice).
 */
export interface PendingUpload {
  requestId?: string;
  accepted?: { message: DecomposeMessage; model: string };
}

export type ReceivedImage = { ok: true; png: Uint8Array; image: SourceImage } | { ok: false; code: ErrorCode; message: string };

/** Checks an uploaded frame against its `decompose` and decodes it (bounded; see flat-image.ts). */
export function receiveImage(message: DecomposeMessage, frame: Uint8Array): ReceivedImage {
  const announced = message.image.bytes;
  if (frame.length < announced)
    return { ok: false, code: 'image_truncated', message: `the image frame has ${frame.length} of the ${announced} bytes decompose announced: the upload was cut off; send decompose and the whole PNG again` };
  if (frame.length > announced)
    return { ok: false, code: 'image_too_large', message: `the image frame has ${frame.length} bytes, decompose announced ${announced}: announce the PNG's exact size` };
  const decoded = decodeFlatImage(frame, message.layout);
  return decoded.ok ? { ok: true, png: frame, image: decoded.image } : decoded;
}
