// The one uPlot wrapper: the chart is created once, when the element has a size, and later data
// goes through setData (no re-creation per update — that is what keeps live charts cheap). Width
// follows the container. Dragging across the plot reports the step range through onSelect.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { AlignedData } from "../lib/series.ts";

export interface ChartProps {
  /** Used once, at creation: a chart's series and scales do not change afterwards. */
  options: Omit<uPlot.Options, "width" | "height">;
  data: AlignedData;
  height: number;
  /** A drag across the plot: the x range selected (the chart does not zoom by itself). */
  onSelect?: (min: number, max: number) => void;
  /** Bump to redraw without new data (e.g. markers drawn by a plugin changed). */
  redrawKey?: unknown;
  label: string;
}

export function UPlotChart({ options, data, height, onSelect, redrawKey, label }: ChartProps) {
  const container = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const selectHandler = useRef(onSelect);
  selectHandler.current = onSelect;

  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const select: uPlot.Plugin = {
      hooks: {
        setSelect: (u) => {
          if (u.select.width < 2) return;
          const min = u.posToVal(u.select.left, "x");
          const max = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          selectHandler.current?.(Math.max(0, Math.floor(min)), Math.ceil(max));
        },
        // For `npm run bench:dashboard`: when the page first drew a chart with data.
        draw: (u) => {
          if ((u.data[0]?.length ?? 0) > 0 && performance.getEntriesByName("gradguard:first-chart").length === 0) performance.mark("gradguard:first-chart");
        },
      },
    };
    const made = new uPlot(
      {
        ...options,
        width: Math.max(60, element.clientWidth),
        height,
        cursor: { ...options.cursor, drag: { x: true, y: false, setScale: false } },
        plugins: [...(options.plugins ?? []), select],
      },
      data as uPlot.AlignedData,
      element,
    );
    chart.current = made;
    const resize = new ResizeObserver(() => made.setSize({ width: Math.max(60, element.clientWidth), height }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      made.destroy();
      chart.current = null;
    };
    // Created once per mount: options and height are fixed for a chart's life (see ChartProps).
  }, []);

  useEffect(() => {
    chart.current?.setData(data as uPlot.AlignedData);
  }, [data]);

  useEffect(() => {
    if (redrawKey !== undefined) chart.current?.redraw(false);
  }, [redrawKey]);

  return <div class="chart" ref={container} role="img" aria-label={label} />;
}
