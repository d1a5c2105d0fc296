/**
 * Pairing: a connection must say `hello` with the pairing token within a deadline before anything
 * else it sends is read. The right token is welcomed at once; a failed hello is answered (a wrong
 * token after a delay that grows with every wrong guess, see GuessThrottle) and closed with 1008.
 */
import { MAX_HELLO_BYTES } from './protocol/limits.ts';
import { PROTOCOL_VERSION, type ErrorCode, type WelcomeMessage } from './protocol/messages.ts';
import { parseHello, type HelloParse } from './protocol/parse.ts';
import { tokenMatches } from './pairing-token.ts';
import { GuessThrottle } from './rate-limit.ts';
import { CLOSE, type Connection } from './connection.ts';

export interface PairingLimits {
  /** Wrong tokens (from anyone) within `tokenWindowMs` answered at once; after that each wrong
   *  token's answer waits `wrongTokenDelayMs`, doubling, at most `wrongTokenMaxDelayMs`. The right
   *  token is never delayed or refused (see GuessThrottle). */
  wrongTokens: number;
  tokenWindowMs: number;
  wrongTokenDelayMs: number;
  wrongTokenMaxDelayMs: number;
  /** A connection that has not paired this long after its upgrade is closed. */
  helloTimeoutMs: number;
}

interface Refusal {
  code: ErrorCode;
  message: string;
  /** The close frame's reason. */
  reason: string;
}

export class Pairing {
  private readonly guesses: GuessThrottle;

  constructor(
    private readonly token: string,
    private readonly limits: PairingLimits,
    /** The welcome a paired connection gets (the models offered now). */
    private readonly welcome: () => WelcomeMessage,
  ) {
    this.guesses = new GuessThrottle({
      free: limits.wrongTokens,
      windowMs: limits.tokenWindowMs,
      delayMs: limits.wrongTokenDelayMs,
      maxDelayMs: limits.wrongTokenMaxDelayMs,
    });
  }

  /** Starts a new connection's hello deadline. */
  expectHello(client: Connection): void {
    client.later(this.limits.helloTimeoutMs, () => {
      if (client.state !== 'unpaired') return;
      client.sendError('unauthorized', `no hello within ${this.limits.helloTimeoutMs} ms; send hello with the pairing token right after connecting`);
      client.close(CLOSE.policy, 'no hello');
    });
  }

  /**
   * A frame from a connection that has not paired: nothing but a small `hello` is read, so a
   * stranger's frame costs no schema work; a bigger frame is a failed hello, unread.
   */
  onUnpairedFrame(client: Connection, bytes: number, text: () => string): void {
    if (bytes > MAX_HELLO_BYTES)
      return this.answer(client, { ok: false, code: 'unauthorized', message: `a hello is at most ${MAX_HELLO_BYTES} bytes, this frame is ${bytes}`, attempt: true });
    const hello = parseHello(text());
    if (hello.ok || hello.attempt) return this.answer(client, hello);
    client.sendError('unauthorized', hello.message);
  }

  /** Answers a `hello` (also one from a connection that paired already). */
  answer(client: Connection, hello: HelloParse): void {
    const presented = hello.ok ? hello.message.token : hello.token;
    const rightToken = presented !== undefined && tokenMatches(this.token, presented);
    const refusal = refusalOf(hello, rightToken);
    if (!refusal) {
      client.pair();
      return client.send(this.welcome());
    }
    client.refuse();
    const answer = () => {
      client.sendError(refusal.code, refusal.message);
      client.close(CLOSE.policy, refusal.reason);
    };
    const delay = rightToken ? 0 : this.guesses.fail(Date.now());
    if (delay === 0) answer();
    else client.later(delay, answer);
  }
}

/** Why a hello is refused, or undefined: a malformed hello, a wrong token, then another protocol version. */
function refusalOf(hello: HelloParse, rightToken: boolean): Refusal | undefined {
  if (!hello.ok) return { code: hello.code, message: `${hello.message}; the plugin sends {"type":"hello","protocol":${PROTOCOL_VERSION},"token":"..."}`, reason: 'bad hello' };
  if (!rightToken) return { code: 'unauthorized', message: 'wrong pairing token; copy the token the bridge printed at start into the plugin', reason: 'unauthorized' };
  const { protocol } = hello.message;
  if (protocol === PROTOCOL_VERSION) return undefined;
  const update =
    protocol < PROTOCOL_VERSION
      ? 'the plugin is older than the bridge: update the plugin (npm run build in the bridge\'s checkout, then reopen the plugin in Figma)'
      : 'the bridge is older than the plugin: update the bridge (git pull, then npm start)';
  return { code: 'protocol_version', message: `this bridge speaks protocol ${PROTOCOL_VERSION}, the plugin ${protocol}; ${update}`, reason: 'protocol version' };
}
