// Per-layer gradient norms as a layers × steps heatmap on a canvas (log color scale), so the
// layer where a spike starts stands out. Hovering names the layer, step and norm.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { formatStep, formatValue } from "../lib/format.ts";
import { heatColor, heatmapGrid, type StepTable } from "../lib/series.ts";

const ROW_PX = 18;

export function Heatmap({ table }: { table: StepTable }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const grid = useMemo(() => heatmapGrid(table), [table]);
  const [hover, setHover] = useState<string>("");
  const [width, setWidth] = useState(600);

  useEffect(() => {
    const element = canvas.current?.parentElement;
    if (!element) return;
    const observer = new ResizeObserver(() => setWidth(element.clientWidth));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  useEffect(() => {
    const element = canvas.current;
    const ctx = element?.getContext("2d");
    if (!element || !ctx) return;
    const height = Math.max(1, grid.layers.length) * ROW_PX;
    element.width = Math.round(width * devicePixelRatio);
    element.height = Math.round(height * devicePixelRatio);
    element.style.height = `${height}px`;
    ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (grid.columns === 0) return;
    const cellWidth = width / grid.columns;
    const span = grid.max - grid.min || 1;
    for (let layer = 0; layer < grid.layers.length; layer++) {
      for (let col = 0; col < grid.columns; col++) {
        const value = grid.cells[layer * grid.columns + col] as number;
        if (Number.isNaN(value)) continue;
        const [r, g, b] = heatColor((value - grid.min) / span);
        ctx.fillStyle = `rgb(${r},${g},${b})`;
        // Cells overlap by a pixel so thousands of columns leave no hairline gaps.
        ctx.fillRect(Math.floor(col * cellWidth), layer * ROW_PX, Math.ceil(cellWidth) + 1, ROW_PX - 1);
      }
    }
  }, [grid, width]);

  const onMove = (event: MouseEvent) => {
    const target = event.currentTarget as HTMLCanvasElement;
    const rect = target.getBoundingClientRect();
    const col = Math.floor(((event.clientX - rect.left) / rect.width) * grid.columns);
    const layer = Math.floor((event.clientY - rect.top) / ROW_PX);
    const value = grid.cells[layer * grid.columns + col];
    const step = table.step[col];
    if (step === undefined || value === undefined || layer >= grid.layers.length) return setHover("");
    setHover(`${grid.layers[layer]} at step ${formatStep(step)}: ${Number.isNaN(value) ? "no finite norm" : formatValue(10 ** value)}`);
  };

  if (grid.layers.length === 0 || grid.columns === 0) return <p class="empty">No per-layer norms yet.</p>;
  return (
    <div class="heatmap">
      <div class="heatmap-labels">
        {grid.layers.map((name) => (
          <div key={name} style={{ height: `${ROW_PX}px` }} title={name}>
            {name}
          </div>
        ))}
      </div>
      <div class="heatmap-plot">
        <canvas ref={canvas} onMouseMove={onMove} onMouseLeave={() => setHover("")} aria-label="per-layer gradient norm heatmap" />
        <div class="heatmap-legend">
          <span>{formatValue(10 ** grid.min)}</span>
          <span class="heatmap-scale" />
          <span>{formatValue(10 ** grid.max)}</span>
          <span class="muted">{hover || "per-layer norm (log color scale); hover for values"}</span>
        </div>
      </div>
    </div>
  );
}
