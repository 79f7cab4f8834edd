// Filtering and sorting the jobs table: pure, so the rules are tested in node.
import type { Job, JobStatus } from "./api-types.ts";

export type SortKey = "created" | "name" | "status" | "step";
export interface JobFilter {
  /** Matches the name or id, case-insensitively. */
  text: string;
  status: JobStatus | "all" | "active";
}

const STATUS_ORDER: JobStatus[] = ["running", "queued", "diverged", "failed", "cancelled", "succeeded"];

export function filterJobs(jobs: readonly Job[], filter: JobFilter): Job[] {
  const text = filter.text.trim().toLowerCase();
  return jobs.filter((job) => {
    if (filter.status === "active" && job.status !== "running" && job.status !== "queued") return false;
    if (filter.status !== "all" && filter.status !== "active" && job.status !== filter.status) return false;
    return text === "" || job.name.toLowerCase().includes(text) || job.id.startsWith(text);
  });
}

export function sortJobs(jobs: readonly Job[], key: SortKey, descending: boolean): Job[] {
  const compare = (a: Job, b: Job): number => {
    switch (key) {
      case "name":
        return a.name.localeCompare(b.name);
      case "status":
        return STATUS_ORDER.indexOf(a.status) - STATUS_ORDER.indexOf(b.status);
      case "step":
        return (a.lastStep ?? -1) - (b.lastStep ?? -1);
      default:
        return Date.parse(a.createdAt) - Date.parse(b.createdAt);
    }
  };
  const sorted = [...jobs].sort(compare);
  return descending ? sorted.reverse() : sorted;
}

export function isActive(job: Pick<Job, "status">): boolean {
  return job.status === "running" || job.status === "queued";
}
