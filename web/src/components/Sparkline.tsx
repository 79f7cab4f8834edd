// A gradient-norm sparkline for the jobs table: a bare uPlot (no axes, legend or cursor) on a
// log scale, bucket maxima so spikes show.
import { UPlotChart } from "./UPlotChart.tsx";
import type { AlignedData } from "../lib/series.ts";

const OPTIONS = {
  legend: { show: false },
  cursor: { show: false },
  select: { show: false, left: 0, top: 0, width: 0, height: 0 },
  axes: [{ show: false }, { show: false }],
  scales: { x: { time: false }, y: { distr: 3 } },
  series: [{}, { stroke: "#e8a33d", width: 1.25, spanGaps: true, points: { show: false } }],
  padding: [2, 0, 2, 0] as [number, number, number, number],
};

export function Sparkline({ data, label }: { data: AlignedData; label: string }) {
  if (data[0].length < 2) return <span class="muted">—</span>;
  return (
    <div class="sparkline">
      <UPlotChart options={OPTIONS} data={data} height={30} label={label} />
    </div>
  );
}
