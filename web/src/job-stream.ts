// One job's data as its page shows it: the job, its steps (a downsampled overview, then live
// rows), its events; live over socket.io when connected, else polled from REST. Zooming reads a
// range at full detail (GET /steps?from&to&maxPoints) without touching the live overview.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { type ApiError, api } from "./api.ts";
import { liveSocket, useLiveState } from "./live.ts";
import type { Command, Job, JobEvent, LiveSteps, StepsResponse } from "./lib/api-types.ts";
import { isActive } from "./lib/jobs-table.ts";
import { appendSteps, emptyTable, STEP_FIELDS, type StepTable, tableFromResponse } from "./lib/series.ts";
import { useSession } from "./session.ts";

/** Points in an overview: about one per pixel of a wide chart. */
export const OVERVIEW_POINTS = 1500;
/** Live rows appended past this many points: the overview is read again, downsampled. */
const REDOWNSAMPLE_AT = 6000;
const POLL_MS = 1000;
const EVENT_PAGES = 10;

export interface JobStream {
  job: Job | undefined;
  table: StepTable;
  events: JobEvent[];
  error: ApiError | undefined;
  loading: boolean;
}

export function useJobStream(jobId: string): JobStream {
  const { token } = useSession();
  const live = useLiveState();
  const [job, setJob] = useState<Job>();
  const [table, setTable] = useState<StepTable>(emptyTable());
  const [events, setEvents] = useState<JobEvent[]>([]);
  const [error, setError] = useState<ApiError>();
  const [loading, setLoading] = useState(true);
  const tableRef = useRef(table);
  tableRef.current = table;
  const eventsRef = useRef(events);
  eventsRef.current = events;

  const addEvents = useCallback((incoming: JobEvent[]) => {
    if (incoming.length === 0) return;
    setEvents((list) => {
      const last = list.length > 0 ? BigInt((list.at(-1) as JobEvent).id) : -1n;
      const fresh = incoming.filter((e) => BigInt(e.id) > last);
      return fresh.length > 0 ? list.concat(fresh) : list;
    });
  }, []);

  const loadOverview = useCallback(async () => {
    const body = await api<StepsResponse>(`/jobs/${jobId}/steps?maxPoints=${OVERVIEW_POINTS}&fields=${STEP_FIELDS}`);
    setTable(tableFromResponse(body));
  }, [jobId]);

  // First load: the job, its overview and its events.
  useEffect(() => {
    let stopped = false;
    (async () => {
      try {
        const first = await api<Job>(`/jobs/${jobId}`);
        if (stopped) return;
        setJob(first);
        await loadOverview();
        let after = "";
        for (let page = 0; page < EVENT_PAGES; page++) {
          const { items } = await api<{ items: JobEvent[] }>(`/jobs/${jobId}/events?limit=1000${after}`);
          if (stopped) return;
          addEvents(items);
          if (items.length < 1000) break;
          after = `&after=${(items.at(-1) as JobEvent).id}`;
        }
      } catch (failure) {
        if (!stopped) setError(failure as ApiError);
      } finally {
        if (!stopped) setLoading(false);
      }
    })();
    return () => {
      stopped = true;
    };
  }, [jobId, loadOverview, addEvents]);

  const active = job === undefined || isActive(job);

  // Live: subscribe from the step after the last one held (again after every reconnect).
  useEffect(() => {
    if (live !== "live" || loading || !active) return;
    const socket = liveSocket(token);
    const onSteps = (rows: LiveSteps) => {
      if (rows.jobId === jobId) setTable((t) => appendSteps(t, rows));
    };
    const onEvent = (event: JobEvent) => {
      if (event.jobId === jobId) addEvents([event]);
    };
    const onStatus = (status: Partial<Job> & { jobId: string }) => {
      if (status.jobId === jobId) setJob((j) => (j ? { ...j, status: status.status ?? j.status, paused: status.paused ?? j.paused, lastStep: status.lastStep ?? j.lastStep, error: status.error ?? j.error } : j));
    };
    socket.on("job:steps", onSteps);
    socket.on("job:event", onEvent);
    socket.on("job:status", onStatus);
    const fromStep = (tableRef.current.step.at(-1) ?? -1) + 1;
    socket.emit("job:subscribe", { jobId, fromStep }, (result) => {
      if ("data" in result) onStatus(result.data.job);
    });
    return () => {
      socket.off("job:steps", onSteps);
      socket.off("job:event", onEvent);
      socket.off("job:status", onStatus);
      socket.emit("job:unsubscribe", { jobId }, () => {});
    };
  }, [live, loading, active, token, jobId, addEvents]);

  // Polling while the live channel is down: new steps, events and the job itself.
  useEffect(() => {
    if (live === "live" || loading || !active) return;
    let running = false;
    const poll = async () => {
      if (running) return;
      running = true;
      try {
        const from = (tableRef.current.step.at(-1) ?? -1) + 1;
        const lastEvent = eventsRef.current.at(-1);
        const [next, rows, newEvents] = await Promise.all([
          api<Job>(`/jobs/${jobId}`),
          api<StepsResponse>(`/jobs/${jobId}/steps?from=${from}&limit=5000&fields=${STEP_FIELDS}`),
          api<{ items: JobEvent[] }>(`/jobs/${jobId}/events?limit=1000${lastEvent ? `&after=${lastEvent.id}` : ""}`),
        ]);
        setJob(next);
        setTable((t) => appendSteps(t, rows));
        addEvents(newEvents.items);
        setError(undefined);
      } catch (failure) {
        setError(failure as ApiError);
      } finally {
        running = false;
      }
    };
    const timer = setInterval(poll, POLL_MS);
    return () => clearInterval(timer);
  }, [live, loading, active, jobId, addEvents]);

  // A long live run outgrows step-by-step points: read the overview again, downsampled.
  useEffect(() => {
    if (table.step.length > REDOWNSAMPLE_AT) void loadOverview().catch(setError);
  }, [table.step.length, loadOverview]);

  return { job, table, events, error, loading };
}

/** The job's commands; polled while one is waiting for the trainer to apply it. */
export function useCommands(jobId: string) {
  const [commands, setCommands] = useState<Command[]>([]);
  const load = useCallback(async () => setCommands((await api<{ items: Command[] }>(`/jobs/${jobId}/commands`)).items), [jobId]);
  useEffect(() => {
    void load().catch(() => {});
  }, [load]);
  const pending = commands.some((c) => c.status === "pending");
  useEffect(() => {
    if (!pending) return;
    const timer = setInterval(() => void load().catch(() => {}), POLL_MS);
    return () => clearInterval(timer);
  }, [pending, load]);
  const send = useCallback(
    async (command: Record<string, unknown>) => {
      await api<Command>(`/jobs/${jobId}/commands`, { method: "POST", body: command });
      await load();
    },
    [jobId, load],
  );
  return { commands, send };
}

/** Steps `from`…`to` at full detail (or downsampled to OVERVIEW_POINTS when longer). */
export async function loadRange(jobId: string, from: number, to: number): Promise<StepTable> {
  return tableFromResponse(await api<StepsResponse>(`/jobs/${jobId}/steps?from=${from}&to=${to}&maxPoints=${OVERVIEW_POINTS}&fields=${STEP_FIELDS}`));
}
