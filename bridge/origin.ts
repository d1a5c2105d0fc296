/**
 * Which WebSocket origins may reach the bridge. Figma plugin iframes send `Origin: null`;
 * a web page in the user's browser sends its own origin and is refused unless allowed by flag.
 * A request without an Origin header comes from a non-browser program on this machine (a CLI,
 * a test): browsers always send one, so such a request cannot be a web page; the token still applies.
 */
export function originAllowed(origin: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return true;
  if (origin === 'null') return true;
  return allowed.includes(origin);
}
