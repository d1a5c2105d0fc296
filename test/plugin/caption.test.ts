import { test } from 'node:test';
import assert from 'node:assert/strict';
import { captionDraft, MAX_DRAFT_CHARS } from '../../plugin/caption.ts';
import { frame, node, rect, text } from './trees.ts';

const box = { x: 0, y: 0, width: 400, height: 300 };

test('text layers appear in quotes, nested ones too, in order, once each', () => {
  const draft = captionDraft(
    frame('Sale poster', box, [
      rect('Rectangle 1', 0, 0, 400, 300),
      text('Title', 'Summer  SALE\n2025', 10, 10),
      node('GROUP', 'Group 2', box, { children: [text('Sub', 'Up to 50% off', 0, 0), text('Dup', 'Summer SALE 2025', 0, 0)] }),
    ]),
  );
  assert.match(draft, /"Summer SALE 2025"/);
  assert.match(draft, /"Up to 50% off"/);
  assert.ok(draft.indexOf('Summer SALE') < draft.indexOf('Up to 50%'), draft);
  assert.equal(draft.split('Summer SALE').length - 1, 1, draft);
  assert.match(draft, /^A Sale poster design/);
});

test('meaningful layer names are listed; Figma default names and hidden layers are not', () => {
  const draft = captionDraft(
    frame('Frame 12', box, [
      rect('Rectangle 4', 0, 0, 10, 10),
      rect('Sunset photo', 0, 0, 10, 10),
      node('ELLIPSE', 'Ellipse', box),
      rect('Logo', 0, 0, 10, 10),
      rect('Secret', 0, 0, 10, 10, { visible: false }),
      text('Hidden text', 'nope', 0, 0, { visible: false }),
    ]),
  );
  assert.equal(draft, 'A design with sunset photo and logo.');
});

test('quotes inside text do not break the quoting', () => {
  const draft = captionDraft(frame('Card', box, [text('Quote', 'She said "hi"', 0, 0)]));
  assert.equal(draft, `A Card design with the text "She said 'hi'".`);
});

test('very long text is cut to the draft limit', () => {
  const long = Array.from({ length: 40 }, (_, i) => text(`t${i}`, `Paragraph number ${i} with some words in it`, 0, 0));
  const draft = captionDraft(frame('Article', box, long));
  assert.ok(draft.length <= MAX_DRAFT_CHARS, `${draft.length}`);
  assert.ok(draft.endsWith('…'));
});

test('a frame with nothing nameable still gets a non-empty draft', () => {
  assert.equal(captionDraft(frame('Frame 1', box, [rect('Rectangle 1', 0, 0, 1, 1)])), 'A design.');
});
