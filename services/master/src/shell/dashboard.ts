import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from "fastify";

/** The dashboard's files, shipped in the repository next to this folder (no bundler, no build step). */
const DASHBOARD_DIR = new URL("../dashboard/", import.meta.url);

/** Each file the dashboard serves, by URL path: the page itself under `/` and `/dashboard`. */
const ASSETS: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard/dashboard.mjs": { file: "dashboard.mjs", type: "text/javascript; charset=utf-8" },
  "/dashboard/dashboard.css": { file: "dashboard.css", type: "text/css; charset=utf-8" },
};

/** The paths of the dashboard's static files: public, since they carry no data (the page asks for a token). */
export const DASHBOARD_PATHS: readonly string[] = Object.keys(ASSETS);

/**
 * Serves the live dashboard: one static page and its script and style. The page reads the same
 * API as the CLI (`/v1/instances`, `/v1/computers`, `/v1/events/stream`) with the identity of
 * its `?user=` (default admin), so it sees what that user may see, secrets masked. Files are
 * read on first request and kept.
 */
export function registerDashboard<L extends FastifyBaseLogger>(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>): void {
  const loaded = new Map<string, Promise<Buffer>>();
  const load = (file: string): Promise<Buffer> => {
    let content = loaded.get(file);
    if (content === undefined) {
      content = readFile(new URL(file, DASHBOARD_DIR));
      // A failed read is not kept: the next request tries again.
      content.catch(() => loaded.delete(file));
      loaded.set(file, content);
    }
    return content;
  };
  for (const [path, asset] of Object.entries(ASSETS)) {
    app.get(path, async (_request, reply) =>
      reply.header("content-type", asset.type).header("cache-control", "no-cache").send(await load(asset.file)),
    );
  }
}
