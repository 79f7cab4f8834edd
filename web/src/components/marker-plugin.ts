// A uPlot plugin that draws watchdog interventions over a chart — major ones (LR lowered,
// rollback, skip, divergence, commands) as full-height lines with a triangle, clips as ticks
// along the top — and reports the marker under the cursor for the evidence card.
import type uPlot from "uplot";
import { type Marker, nearestMarker, visibleMarkers } from "../lib/markers.ts";

/** How close (CSS pixels) the cursor must be to a marker for its evidence to show. */
const HOVER_PX = 6;

export function markerPlugin(getMarkers: () => readonly Marker[], onHover: (marker: Marker | undefined, left: number) => void): uPlot.Plugin {
  return {
    hooks: {
      draw: (u) => {
        const min = u.scales.x?.min;
        const max = u.scales.x?.max;
        if (min === undefined || max === undefined) return;
        const { ctx } = u;
        const { top, height } = u.bbox;
        const ratio = devicePixelRatio;
        ctx.save();
        for (const marker of visibleMarkers(getMarkers(), min, max)) {
          const x = Math.round(u.valToPos(marker.step, "x", true));
          ctx.strokeStyle = marker.style.color;
          ctx.fillStyle = marker.style.color;
          if (marker.style.major) {
            ctx.lineWidth = 1.5 * ratio;
            ctx.setLineDash([4 * ratio, 3 * ratio]);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            ctx.setLineDash([]);
            ctx.beginPath();
            ctx.moveTo(x - 5 * ratio, top);
            ctx.lineTo(x + 5 * ratio, top);
            ctx.lineTo(x, top + 7 * ratio);
            ctx.closePath();
            ctx.fill();
          } else {
            ctx.fillRect(x - ratio, top, 2 * ratio, 5 * ratio);
          }
        }
        ctx.restore();
      },
      setCursor: (u) => {
        const left = u.cursor.left;
        if (left === undefined || left < 0) return onHover(undefined, 0);
        const step = u.posToVal(left, "x");
        const stepsPerPx = Math.abs(u.posToVal(left + 1, "x") - step);
        onHover(nearestMarker(getMarkers(), step, HOVER_PX * stepsPerPx), left);
      },
    },
  };
}
