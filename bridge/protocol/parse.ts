/**
 * Parsing a client's text frame: JSON, then the work caps (depth, array items, values in all),
 * then the schema; every failure is an error code and a message naming the field. The caller
 * checks the frame's byte size first.
 */
import { MAX_LAYERS } from '../../domain/layout.ts';
import { MAX_HELLO_BYTES, MAX_JSON_ARRAY_ITEMS, MAX_JSON_DEPTH, MAX_JSON_VALUES, MAX_MESSAGE_BYTES, REQUEST_ID_PATTERN } from './limits.ts';
import { CLIENT_MESSAGE_TYPES, clientMessageSchema, helloSchema, type ClientMessage, type ErrorCode, type HelloMessage } from './messages.ts';

export type ParseResult =
  | { ok: true; message: ClientMessage }
  /** `type`: the message's type when it named a known one (a refused `decompose` still owns the frame after it). */
  | { ok: false; code: ErrorCode; message: string; requestId?: string; type?: ClientMessage['type'] };

/**
 * Parses one client text frame. The caller checks the frame's byte size against
 * MAX_MESSAGE_BYTES before decoding it (this function sees characters, not bytes).
 */
export function parseClientMessage(text: string): ParseResult {
  if (text.length > MAX_MESSAGE_BYTES)
    return fail('message_too_large', `message is larger than ${MAX_MESSAGE_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail('malformed_json', 'message is not valid JSON; send one JSON object per text frame');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return fail('invalid_message', 'message must be a JSON object with a "type" field');
  const record = raw as Record<string, unknown>;
  const echoedId =
    typeof record.requestId === 'string' && REQUEST_ID_PATTERN.test(record.requestId)
      ? record.requestId
      : undefined;
  if (typeof record.type !== 'string')
    return fail('invalid_message', 'message has no "type" field', echoedId);
  if (!(CLIENT_MESSAGE_TYPES as readonly string[]).includes(record.type))
    return fail(
      'unknown_type',
      `unknown message type "${record.type.slice(0, 40)}"; expected one of ${CLIENT_MESSAGE_TYPES.join(', ')}`,
      echoedId,
    );
  const tooMuch = shapeProblem(raw);
  const type = record.type as ClientMessage['type'];
  if (tooMuch) return { ...fail(codeForPath(tooMuch.path), `${tooMuch.path.join('.') || record.type}: ${tooMuch.message}`, echoedId), type };
  const parsed = clientMessageSchema.safeParse(raw);
  if (parsed.success) return { ok: true, message: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue.path.length ? issue.path.join('.') : record.type;
  return { ...fail(codeForPath(issue.path, issue.code === 'too_big'), `${where}: ${issue.message}`, echoedId), type };
}

export type HelloParse =
  | { ok: true; message: HelloMessage }
  /** `attempt`: the frame was a `hello` (a pairing try, answered and then closed); `token`: its
   *  token when it had a string one, to tell a client with the right token but an old protocol. */
  | { ok: false; code: ErrorCode; message: string; attempt: boolean; token?: string };

/**
 * Parses a frame from a client that has not paired: nothing but `hello` is looked at, so a
 * stranger's frame costs no schema work. The caller refuses frames over MAX_HELLO_BYTES unread.
 */
export function parseHello(text: string): HelloParse {
  const refuse = (message: string): HelloParse => ({ ok: false, code: 'unauthorized', message, attempt: false });
  if (text.length > MAX_HELLO_BYTES) return refuse(`send hello with the pairing token first (a hello is at most ${MAX_HELLO_BYTES} bytes)`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return refuse('send hello with the pairing token first (this frame is not even JSON)');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || (raw as { type?: unknown }).type !== 'hello')
    return refuse('send hello with the pairing token first');
  const token = (raw as { token?: unknown }).token;
  const parsed = helloSchema.safeParse(raw);
  if (parsed.success) return { ok: true, message: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue.path.length ? issue.path.join('.') : 'hello';
  return {
    ok: false,
    code: codeForPath(issue.path),
    message: `${where}: ${issue.message}`,
    attempt: true,
    ...(typeof token === 'string' ? { token } : {}),
  };
}

/**
 * The first place a parsed value exceeds the work caps (depth, array items, values in all), or
 * undefined. Stops at the first excess, so its cost is bounded by the caps, not by the input.
 */
export function shapeProblem(value: unknown): { path: (string | number)[]; message: string } | undefined {
  let values = 0;
  const walk = (v: unknown, path: (string | number)[]): { path: (string | number)[]; message: string } | undefined => {
    if (++values > MAX_JSON_VALUES) return { path, message: `message has more than ${MAX_JSON_VALUES} values` };
    if (typeof v !== 'object' || v === null) return undefined;
    if (path.length >= MAX_JSON_DEPTH) return { path, message: `nested deeper than ${MAX_JSON_DEPTH} levels` };
    if (Array.isArray(v)) {
      if (v.length > MAX_JSON_ARRAY_ITEMS) return { path, message: `array of ${v.length} items; at most ${MAX_JSON_ARRAY_ITEMS} are read (layouts have at most ${MAX_LAYERS} boxes)` };
      for (let i = 0; i < v.length; i++) {
        const problem = walk(v[i], [...path, i]);
        if (problem) return problem;
      }
      return undefined;
    }
    for (const key of Object.keys(v)) {
      const problem = walk((v as Record<string, unknown>)[key], [...path, key]);
      if (problem) return problem;
    }
    return undefined;
  };
  return walk(value, []);
}

/** `tooBig`: the issue is a value over its maximum (an announced image over the cap has its own code). */
function codeForPath(path: (string | number)[], tooBig = false): ErrorCode {
  switch (path[0]) {
    case 'protocol':
      return 'protocol_version';
    case 'token':
      return 'unauthorized';
    case 'prompt':
      return 'invalid_prompt';
    case 'layout':
      return 'invalid_layout';
    case 'params':
      return 'invalid_params';
    case 'base':
      return path[1] === 'keep' ? 'invalid_keep' : 'invalid_message';
    case 'image':
      return tooBig ? 'image_too_large' : 'invalid_message';
    default:
      return 'invalid_message';
  }
}

function fail(code: ErrorCode, message: string, requestId?: string): Extract<ParseResult, { ok: false }> {
  return requestId === undefined ? { ok: false, code, message } : { ok: false, code, message, requestId };
}
