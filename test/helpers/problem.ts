// The error policy seen from a test: every refusal is application/problem+json.
import { expect } from "vitest";

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: { in: string; field: string; message: string }[];
}

/** Asserts an RFC 9457 answer with this status and returns its body. */
export function expectProblem(response: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number): Problem {
  expect(response.statusCode).toBe(status);
  expect(response.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const body = response.json() as Problem;
  expect(body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  return body;
}
