import { readFile, readdir } from "node:fs/promises";
import { extname, join } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from "fastify";

/** The content types of the files a dashboard folder may serve; any other file is not served. */
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

/** Whether a URL path is one of the dashboard's: public, since its files carry no data (the page asks for a token). */
export function isDashboardPath(url: string): boolean {
  const path = url.split("?", 1)[0] ?? url;
  return path === "/" || path === "/dashboard" || path.startsWith("/dashboard/");
}

/** A dashboard folder as listed at start: the files it may serve. */
export interface DashboardFolder {
  dir: string;
  names: readonly string[];
}

/** Lists a dashboard folder: it must hold an `index.html`; files of other types than TYPES' are left out. */
export async function readDashboardFolder(dir: string): Promise<DashboardFolder> {
  const names = (await readdir(dir).catch((error: Error) => {
    throw new Error(`cannot read the dashboard folder ${dir}: ${error.message}`);
  })).filter((name) => TYPES[extname(name)] !== undefined && !name.endsWith(".d.ts"));
  if (!names.includes("index.html")) throw new Error(`the dashboard folder ${dir} has no index.html`);
  return { dir, names };
}

/**
 * Serves a dashboard's static files from `dir` (the `@slap/dashboard` app in `slap up`): its
 * `index.html` under `/` and `/dashboard`, each other file of the folder as `/dashboard/<name>`.
 * The page reads the same API as the CLI with the token it is given, so it sees what that
 * token may see. Files are read on first request and kept.
 */
export function registerDashboard<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  { dir, names }: DashboardFolder,
): void {
  const loaded = new Map<string, Promise<Buffer>>();
  const load = (name: string): Promise<Buffer> => {
    let content = loaded.get(name);
    if (content === undefined) {
      content = readFile(join(dir, name));
      // A failed read is not kept: the next request tries again.
      content.catch(() => loaded.delete(name));
      loaded.set(name, content);
    }
    return content;
  };
  const serve = (path: string, name: string): void => {
    app.get(path, async (_request, reply) =>
      reply.header("content-type", TYPES[extname(name)]).header("cache-control", "no-cache").send(await load(name)),
    );
  };
  serve("/", "index.html");
  serve("/dashboard", "index.html");
  for (const name of names) if (name !== "index.html") serve(`/dashboard/${name}`, name);
}
