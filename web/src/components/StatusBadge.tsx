import type { Job } from "../lib/api-types.ts";

export function StatusBadge({ job }: { job: Pick<Job, "status" | "paused"> }) {
  return (
    <span class={`status status-${job.status}`}>
      {job.status}
      {job.paused && job.status === "running" ? " · paused" : ""}
    </span>
  );
}
