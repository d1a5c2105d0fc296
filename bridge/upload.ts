/**
 * A decomposition's upload: the `decompose` message announces its image, and the connection's
 * next frame must be that image, binary, of the announced size. What a connection expects next
 * (`PendingUpload`), and the checks on the frame that cost nothing whatever it holds: its length
 * against the announcement, then the PNG's header against the layout's canvas
 * (gpu-server/pipeline/flat-image.ts `checkPngHeader`). The bounded decode comes after, on the
 * image decoder's thread (image-decoder.ts). Nothing here keeps the bytes.
 */
import { checkPngHeader } from '../gpu-server/pipeline/flat-image.ts';
import type { DecomposeMessage, ErrorCode } from './protocol/messages.ts';

/**
 * What the next frame of a connection is, after a `decompose`: the image of an accepted message
 * (`accepted`), or of one already refused (its frame is discarded unread, not answered twice).
 */
export interface PendingUpload {
  requestId?: string;
  accepted?: { message: DecomposeMessage; model: string };
}

/** Why an uploaded frame is refused before it is decoded, or undefined. O(1) work. */
export function frameRefusal(message: DecomposeMessage, frame: Uint8Array): { code: ErrorCode; message: string } | undefined {
  const announced = message.image.bytes;
  if (frame.length < announced)
    return { code: 'image_truncated', message: `the image frame has ${frame.length} of the ${announced} bytes decompose announced: the upload was cut off; send decompose and the whole PNG again` };
  if (frame.length > announced)
    return { code: 'image_too_large', message: `the image frame has ${frame.length} bytes, decompose announced ${announced}: announce the PNG's exact size` };
  const header = checkPngHeader(frame, message.layout);
  return header.ok ? undefined : header;
}
