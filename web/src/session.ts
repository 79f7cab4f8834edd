// Who is signed in: the token (kept in localStorage) and what GET /api/v1/session says it may do.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Role } from "./lib/api-types.ts";

export interface Session {
  token: string;
  role: Role;
  name: string;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in page");
  return session;
}

/** Read tokens watch; write and admin tokens may also submit, cancel, command and acknowledge. */
export function canWrite(session: Session): boolean {
  return session.role !== "read";
}
