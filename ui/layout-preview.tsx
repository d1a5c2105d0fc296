/** One selected frame's layout: its boxes drawn over the canvas, numbered, with their names. */
import type { FrameLayout } from '../plugin/layout.ts';

export function LayoutPreview({ layout, note }: { layout: FrameLayout; note: string | null }) {
  const { width, height } = layout.layout;
  const children = layout.regions.slice(2);
  return (
    <figure class="layout" data-testid="layout-preview" data-frame={layout.frameName}>
      <figcaption>
        <strong>{layout.frameName}</strong>
        <span class="muted" data-testid="layer-count">
          {' '}
          · {children.length} layer{children.length === 1 ? '' : 's'} · {width}×{height}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} class="canvas" role="img" aria-label={`Layout of ${layout.frameName}`}>
        <rect x={0} y={0} width={width} height={height} class="canvas-bg" />
        {children.map((region, i) => {
          const [x1, y1, x2, y2] = region.box;
          const label = Math.max(10, Math.min(width, height) / 14);
          return (
            <g key={region.nodeId ?? i} class="box">
              <title>{region.name}</title>
              <rect x={x1} y={y1} width={x2 - x1} height={y2 - y1} style={{ strokeWidth: Math.max(1, width / 256) }} />
              <text x={x1 + label * 0.3} y={y1 + label} style={{ fontSize: `${label}px` }}>
                {i + 1}
              </text>
            </g>
          );
        })}
      </svg>
      <ol class="names">
        {children.map((region, i) => (
          <li key={region.nodeId ?? i}>{region.name}</li>
        ))}
      </ol>
      {note && <p class="warning">{note}</p>}
    </figure>
  );
}
