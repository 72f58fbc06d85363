import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from "fastify";

/** One file of a dashboard: its content type and its bytes. */
export interface DashboardFile {
  contentType: string;
  body: string | Uint8Array;
}

/**
 * A dashboard's files by name, as its composer hands them over (`slap up` gives
 * `@slap/dashboard`'s): `index.html` is required; names are single path segments.
 */
export type DashboardFiles = Readonly<Record<string, DashboardFile>>;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Whether a URL path is one of the dashboard's: public, since its files carry no data (the page asks for a token). */
export function isDashboardPath(url: string): boolean {
  const path = url.split("?", 1)[0] ?? url;
  return path === "/" || path === "/dashboard" || path.startsWith("/dashboard/");
}

/**
 * Checks a dashboard's files before the master starts: an `index.html`, names that are single
 * path segments, a content type for each.
 * @throws Error naming the first file that is not servable.
 */
export function checkDashboardFiles(files: DashboardFiles): DashboardFiles {
  if (files["index.html"] === undefined) throw new Error("the dashboard has no index.html");
  for (const [name, file] of Object.entries(files)) {
    if (!NAME.test(name)) throw new Error(`the dashboard file ${JSON.stringify(name)} is not a plain file name`);
    if (file.contentType.trim() === "") throw new Error(`the dashboard file ${name} has no content type`);
  }
  return files;
}

/**
 * Serves a dashboard's files: its `index.html` under `/` and `/dashboard`, each other file as
 * `/dashboard/<name>`. The page reads the same API as the CLI with the token it is given, so it
 * sees what that token may see.
 */
export function registerDashboard<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  files: DashboardFiles,
): void {
  const serve = (path: string, { contentType, body }: DashboardFile): void => {
    app.get(path, (_request, reply) => reply.header("content-type", contentType).header("cache-control", "no-cache").send(body));
  };
  for (const [name, file] of Object.entries(files)) {
    if (name !== "index.html") serve(`/dashboard/${name}`, file);
    else {
      serve("/", file);
      serve("/dashboard", file);
    }
  }
}
