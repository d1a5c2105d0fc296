/// <reference path="../../node_modules/@figma/plugin-typings/plugin-api.d.ts" />
/**
 * A fake of the Figma API subset that plugin/insert.ts uses, typed against @figma/plugin-typings
 * through insert.ts's Pick<> declarations: if Figma's types change, this stops compiling. No
 * Node APIs, so the e2e harness bundles it for the browser as well.
 */
import type { SceneApi, SceneFrame, SceneParent, SceneRect } from '../../plugin/insert.ts';

let nextId = 100;

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
/** figma.createImage's documented limit. */
export const MAX_IMAGE_SIDE = 4096;

export function pngSize(bytes: Uint8Array): { width: number; height: number } | null {
  if (bytes.length < 24 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

interface Child {
  parent: FakeContainer<never> | null;
}

/** Page coordinates of a node's top-left corner: its own position plus every positioned parent's. */
function origin(parent: unknown): { x: number; y: number } {
  let x = 0;
  let y = 0;
  for (let p = parent as { x?: number; y?: number; parent?: unknown } | null; p; p = (p.parent ?? null) as typeof p) {
    x += p.x ?? 0;
    y += p.y ?? 0;
  }
  return { x, y };
}

class FakeContainer<C extends Child> {
  children: C[] = [];
  appendChild(child: C): void {
    if (child.parent) child.parent.children = child.parent.children.filter((c) => c !== child);
    this.children.push(child);
    child.parent = this as unknown as FakeContainer<never>;
  }
}

export class FakeRect implements SceneRect {
  readonly id = `${nextId++}:1`;
  readonly type = 'RECTANGLE';
  name = 'Rectangle';
  x = 0;
  y = 0;
  width = 100;
  height = 100;
  fills: RectangleNode['fills'] = [{ type: 'SOLID', color: { r: 0.85, g: 0.85, b: 0.85 } }];
  locked = false;
  visible = true;
  removed = false;
  parent: FakeContainer<never> | null = null;
  /** Read back by plugin/read-scene.ts when the new frame is selected. */
  get absoluteBoundingBox(): Rect {
    const o = origin(this.parent);
    return { x: o.x + this.x, y: o.y + this.y, width: this.width, height: this.height };
  }
  resize(width: number, height: number): void {
    if (!(width >= 0.01 && height >= 0.01)) throw new Error(`resize: ${width}x${height} is below Figma's minimum`);
    this.width = width;
    this.height = height;
  }
  remove(): void {
    if (this.removed) throw new Error('The node has been removed');
    this.removed = true;
    if (this.parent) this.parent.children = this.parent.children.filter((c) => c !== (this as never));
    this.parent = null;
  }
}

export class FakeFrame extends FakeContainer<FakeRect> implements SceneFrame<FakeRect> {
  readonly id = `${nextId++}:1`;
  readonly type = 'FRAME';
  name = 'Frame';
  x = 0;
  y = 0;
  width = 100;
  height = 100;
  fills: FrameNode['fills'] = [{ type: 'SOLID', color: { r: 1, g: 1, b: 1 } }];
  clipsContent = true;
  visible = true;
  removed = false;
  parent: FakeContainer<never> | null = null;
  /** Test hook: fail the n-th appendChild, to check that nothing is left behind. */
  failOnAppend: number | null = null;
  private appends = 0;
  /** Read back by plugin/read-scene.ts when the new frame is selected. */
  get absoluteBoundingBox(): Rect {
    const o = origin(this.parent);
    return { x: o.x + this.x, y: o.y + this.y, width: this.width, height: this.height };
  }
  override appendChild(child: FakeRect): void {
    if (this.failOnAppend !== null && ++this.appends === this.failOnAppend) throw new Error('appendChild failed (test)');
    super.appendChild(child);
  }
  resize(width: number, height: number): void {
    if (!(width >= 0.01 && height >= 0.01)) throw new Error(`resize: ${width}x${height} is below Figma's minimum`);
    this.width = width;
    this.height = height;
  }
  remove(): void {
    if (this.removed) throw new Error('The node has been removed');
    this.removed = true;
    for (const child of [...this.children]) child.remove();
    if (this.parent) this.parent.children = this.parent.children.filter((c) => c !== (this as never));
    this.parent = null;
  }
}

export class FakeParent extends FakeContainer<FakeFrame> implements SceneParent<FakeFrame> {}

export type SceneEvent = 'commitUndo' | 'createFrame' | 'createRectangle' | 'createImage';

export class FakeScene implements SceneApi<FakeFrame, FakeRect> {
  readonly images = new Map<string, Uint8Array>();
  readonly events: SceneEvent[] = [];
  readonly created: Array<FakeFrame | FakeRect> = [];
  /** Test hook: the frame createFrame returns next. */
  nextFrame: FakeFrame | null = null;
  createFrame(): FakeFrame {
    this.events.push('createFrame');
    const frame = this.nextFrame ?? new FakeFrame();
    this.nextFrame = null;
    this.created.push(frame);
    return frame;
  }
  createRectangle(): FakeRect {
    this.events.push('createRectangle');
    const rect = new FakeRect();
    this.created.push(rect);
    return rect;
  }
  createImage(data: Uint8Array): Pick<Image, 'hash'> {
    this.events.push('createImage');
    const size = pngSize(data);
    if (!size) throw new Error('Image type is unsupported');
    if (size.width > MAX_IMAGE_SIDE || size.height > MAX_IMAGE_SIDE) throw new Error('Image is too large');
    const hash = `img${this.images.size}-${data.length}`;
    this.images.set(hash, data.slice());
    return { hash };
  }
  commitUndo(): void {
    this.events.push('commitUndo');
  }
}
