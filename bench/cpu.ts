// CPU time of a process and of everything it started (an embedded PostgreSQL and its
// backends), read from /proc: on a shared machine, CPU per unit of work says more than
// throughput, and the two together say which side limits it.
import { readdir, readFile } from "node:fs/promises";

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

async function stat(pid: number): Promise<{ ppid: number; ownMs: number; reapedChildrenMs: number } | undefined> {
  try {
    // Fields after "(comm) ": state ppid … utime(14) stime(15) cutime(16) cstime(17), numbered from 1 for pid.
    const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
    const ticks = (field: number) => Number(fields[field - 3]);
    return { ppid: ticks(4), ownMs: ((ticks(14) + ticks(15)) * 1000) / TICKS_PER_SECOND, reapedChildrenMs: ((ticks(16) + ticks(17)) * 1000) / TICKS_PER_SECOND };
  } catch {
    return undefined; // exited while we looked
  }
}

/** CPU ms used so far by `pid` itself, and by its descendants (live ones, plus those already reaped). */
export async function processTreeCpuMs(pid: number): Promise<{ processMs: number; descendantsMs: number }> {
  const pids = (await readdir("/proc")).filter((name) => /^\d+$/.test(name)).map(Number);
  const stats = new Map<number, NonNullable<Awaited<ReturnType<typeof stat>>>>();
  for (const p of pids) {
    const s = await stat(p);
    if (s) stats.set(p, s);
  }
  const root = stats.get(pid);
  if (!root) throw new Error(`process ${pid} is gone`);
  let descendantsMs = root.reapedChildrenMs;
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift() as number;
    for (const [child, s] of stats) {
      if (s.ppid !== parent) continue;
      descendantsMs += s.ownMs + s.reapedChildrenMs;
      queue.push(child);
    }
  }
  return { processMs: root.ownMs, descendantsMs };
}
