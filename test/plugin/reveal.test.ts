import { test } from 'node:test';
import assert from 'node:assert/strict';
import { afterSelectionChange, revealPlan, type SelectionState } from '../../plugin/reveal.ts';

const view = { x: 0, y: 0, width: 1000, height: 800 };
const inView = { id: 'r1', box: { x: 100, y: 100, width: 200, height: 100 } };
const offScreen = { id: 'r2', box: { x: 2000, y: 0, width: 200, height: 100 } };

test('the designer’s selection changes count; the plugin’s own does not', () => {
  let s: SelectionState = { stamp: 0, own: [] };
  s = afterSelectionChange(s, ['1:1']);
  assert.equal(s.stamp, 1);
  const plan = revealPlan(s, { stamp: 1, onCurrentPage: true }, ['1:1'], inView, view);
  assert.deepEqual(plan.select, ['r1']);
  // Figma fires selectionchange for the plugin's own selection too: recognised, not counted.
  s = afterSelectionChange(plan.state, ['r1']);
  assert.equal(s.stamp, 1);
  s = afterSelectionChange(s, ['9:9']);
  assert.equal(s.stamp, 2);
});

test('N results of one Generate: selected together, and only off-screen ones scroll the view', () => {
  let s: SelectionState = { stamp: 4, own: [] };
  const first = revealPlan(s, { stamp: 4, onCurrentPage: true }, ['1:1', '1:2'], inView, view);
  assert.deepEqual([first.select, first.zoom], [['r1'], false], 'already in view: no zoom');
  s = afterSelectionChange(first.state, ['r1']);
  const second = revealPlan(s, { stamp: 4, onCurrentPage: true }, ['r1'], offScreen, view);
  assert.deepEqual([second.select, second.zoom], [['r1', 'r2'], true]);
});

test('the designer moved on, or the result is on another page: selection and view are left alone', () => {
  const s: SelectionState = { stamp: 7, own: [] };
  assert.deepEqual(revealPlan(s, { stamp: 6, onCurrentPage: true }, ['5:5'], offScreen, view), { select: null, zoom: false, state: s });
  assert.equal(revealPlan(s, { stamp: 7, onCurrentPage: false }, [], offScreen, view).select, null);
  // A restored job (stamp -1) never takes the selection.
  assert.equal(revealPlan(s, { stamp: -1, onCurrentPage: true }, [], offScreen, view).select, null);
});
