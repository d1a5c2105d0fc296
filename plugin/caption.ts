/**
 * A caption draft from the frame: ART's training captions quote the text an image shows, so the
 * frame's text layers go in quotes; meaningful layer names say what else is there. The designer
 * edits it; it is only a start.
 */
import type { PlainNode } from './scene.ts';

/** Figma's default names ("Rectangle 12", "Frame 3") say nothing about the content. */
const DEFAULT_NAME =
  /^(frame|group|rectangle|ellipse|line|vector|polygon|star|image|text|component|instance|section|slice|union|subtract|intersect|exclude|boolean)( \d+)?$/i;

/** Longest draft offered; T5 reads 512 tokens and a draft should stay readable. */
export const MAX_DRAFT_CHARS = 600;

function clean(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/"/g, "'").trim();
}

function collectTexts(node: PlainNode, out: string[]): void {
  if (!node.visible) return;
  if (node.type === 'TEXT' && node.characters) {
    const text = clean(node.characters);
    if (text && !out.includes(text)) out.push(text);
  }
  for (const child of node.children ?? []) collectTexts(child, out);
}

function joinList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

export function captionDraft(frame: PlainNode): string {
  const texts: string[] = [];
  if (frame.texts) {
    // Read from Figma already (plugin/read-scene.ts): visible, in document order.
    for (const t of frame.texts) {
      const text = clean(t);
      if (text && !texts.includes(text)) texts.push(text);
    }
  } else collectTexts(frame, texts);
  const names: string[] = [];
  for (const child of frame.children ?? []) {
    if (!child.visible || child.type === 'TEXT') continue;
    const name = clean(child.name);
    if (name && !DEFAULT_NAME.test(name) && !names.includes(name)) names.push(name);
  }
  const frameName = clean(frame.name);
  const subject = frameName && !DEFAULT_NAME.test(frameName) ? `A ${frameName} design` : 'A design';
  let draft = subject;
  if (names.length) draft += ` with ${joinList(names.map((n) => n.toLowerCase()))}`;
  if (texts.length) draft += `${names.length ? ',' : ''} with the text ${joinList(texts.map((t) => `"${t}"`))}`;
  draft += '.';
  if (draft.length > MAX_DRAFT_CHARS) draft = `${draft.slice(0, MAX_DRAFT_CHARS - 1).trimEnd()}…`;
  return draft;
}
