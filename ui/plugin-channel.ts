/**
 * The UI side of Figma's postMessage wiring: messages to the plugin go to the parent window
 * wrapped as `{ pluginMessage }`; messages from the plugin arrive the same way.
 */
import type { PluginMessageEnvelope, PluginToUi, UiToPlugin } from '../plugin/messages.ts';

export function postToPlugin(message: UiToPlugin): void {
  const envelope: PluginMessageEnvelope = { pluginMessage: message };
  parent.postMessage(envelope, '*');
}

/** Calls `handler` with every message from the plugin; returns the unsubscribe function. */
export function onPluginMessage(handler: (message: PluginToUi) => void): () => void {
  const listener = (event: MessageEvent) => {
    // Only the host window (Figma, or the test harness standing in for it) speaks for the plugin.
    if (event.source !== parent) return;
    const data: unknown = event.data;
    if (typeof data !== 'object' || data === null || !('pluginMessage' in data)) return;
    const message = (data as { pluginMessage: PluginToUi }).pluginMessage;
    if (message && typeof message.type === 'string') handler(message);
  };
  window.addEventListener('message', listener);
  return () => window.removeEventListener('message', listener);
}
