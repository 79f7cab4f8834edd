// One error policy for the whole API: every error leaves as application/problem+json
// (RFC 9457). 4xx bodies say exactly what was wrong; 5xx bodies say nothing internal and point
// at the request id, under which the error is logged.
import type { FastifyError, FastifyInstance } from "fastify";
import Type from "typebox";

/** A field of the request that is wrong: JSON pointer within its part, and why. */
export interface FieldProblem {
  in: "body" | "querystring" | "params" | "headers";
  field: string;
  message: string;
}

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(
      Type.Array(Type.Object({ in: Type.String(), field: Type.String(), message: Type.String() })),
    ),
  },
  { description: "RFC 9457 problem details" },
);

/** An error with an HTTP status and a message safe to show the client. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly type = "about:blank",
    readonly errors?: FieldProblem[],
  ) {
    super(detail);
    this.name = "HttpProblem";
  }
}

export class NotFoundProblem extends HttpProblem {
  constructor(what: string) {
    super(404, "Not Found", `${what} does not exist`);
  }
}

export class ConflictProblem extends HttpProblem {
  constructor(detail: string) {
    super(409, "Conflict", detail, "urn:gradguard:problem:invalid-state");
  }
}

export class InvalidRequestProblem extends HttpProblem {
  constructor(detail: string, errors: FieldProblem[], type = "urn:gradguard:problem:invalid-request") {
    super(400, "Invalid request", detail, type, errors);
  }
}

const STATUS_TITLES: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  406: "Not Acceptable",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    let problem: HttpProblem;
    if (error instanceof HttpProblem) {
      problem = error;
    } else if (error.validation) {
      const part = (error.validationContext ?? "body") as FieldProblem["in"];
      const errors = error.validation.map((v) => ({ in: part, ...describeValidation(v.instancePath, v.message, v.params) }));
      problem = new InvalidRequestProblem(
        errors.map((e) => `${part}${e.field === "/" ? "" : e.field}: ${e.message}`).join("; "),
        errors,
      );
    } else if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      problem = new HttpProblem(413, "Content Too Large", `the request body is larger than the ${request.routeOptions.bodyLimit} bytes this route accepts`);
    } else if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      // Fastify's own client errors (malformed JSON, body too large, bad content type, …).
      problem = new HttpProblem(error.statusCode, STATUS_TITLES[error.statusCode] ?? "Client Error", error.message);
    } else {
      request.log.error({ err: error }, "request failed");
      problem = new HttpProblem(500, "Internal Server Error", `an internal error occurred; the server log has it under request id ${request.id}`);
    }
    reply
      .code(problem.status)
      .type("application/problem+json")
      .send({
        type: problem.type,
        title: problem.title,
        status: problem.status,
        detail: problem.detail,
        instance: request.url,
        ...(problem.errors ? { errors: problem.errors } : {}),
      });
  });

  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .type("application/problem+json")
      .send({ type: "about:blank", title: "Not Found", status: 404, detail: `no route ${request.method} ${request.url.split("?")[0]}`, instance: request.url });
  });
}

/** Ajv's error as the field it is about (not its parent) and a message that says what to send. */
function describeValidation(path: string, message: string | undefined, params: Record<string, unknown>): { field: string; message: string } {
  if (typeof params.missingProperty === "string") return { field: `${path}/${params.missingProperty}`, message: "is required" };
  if (typeof params.additionalProperty === "string") return { field: `${path}/${params.additionalProperty}`, message: "is not a known field" };
  const field = path || "/";
  if (Array.isArray(params.allowedValues)) return { field, message: `must be one of ${params.allowedValues.map((v) => JSON.stringify(v)).join(", ")}` };
  return { field, message: message ?? "is invalid" };
}
