// The live channel (socket.io, typed by common/live-contract.ts). One connection per signed-in
// token; pages watch its state and fall back to polling REST while it is not connected, so the
// dashboard works (a little later) against a server without the live channel.
import { useEffect, useState } from "preact/hooks";
import { io, type Socket } from "socket.io-client";
import type { ClientToServerEvents, ServerToClientEvents } from "../../common/live-contract.ts";

export type LiveSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
export type LiveState = "connecting" | "live" | "reconnecting";

let current: { token: string; socket: LiveSocket } | undefined;
let state: LiveState = "connecting";
const listeners = new Set<(state: LiveState) => void>();

function setState(next: LiveState) {
  state = next;
  for (const listener of listeners) listener(next);
}

/** The socket for `token`, connecting on first use (and closing one for another token). */
export function liveSocket(token: string): LiveSocket {
  if (current?.token === token) return current.socket;
  current?.socket.close();
  const socket: LiveSocket = io({ auth: { token }, reconnectionDelayMax: 5000 });
  socket.on("connect", () => setState("live"));
  socket.on("disconnect", () => setState("reconnecting"));
  socket.on("connect_error", () => setState("reconnecting"));
  current = { token, socket };
  setState("connecting");
  return socket;
}

export function closeLive(): void {
  current?.socket.close();
  current = undefined;
  setState("connecting");
}

export function useLiveState(): LiveState {
  const [value, setValue] = useState(state);
  useEffect(() => {
    listeners.add(setValue);
    setValue(state);
    return () => {
      listeners.delete(setValue);
    };
  }, []);
  return value;
}
