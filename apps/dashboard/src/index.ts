import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** One file of the dashboard: its content type and its bytes, as the master serves them. */
export interface DashboardFile {
  contentType: string;
  body: string;
}

/**
 * The dashboard's files by name: `index.html` (the master serves it at `/` and `/dashboard`),
 * `dashboard.mjs` (the script, bundled from `web/dashboard.ts`) and `dashboard.css`, each other
 * one at `/dashboard/<name>`.
 */
export type DashboardFiles = Readonly<Record<string, DashboardFile>>;

/** The dashboard's TypeScript source, which runs in the browser once bundled. */
export const DASHBOARD_SOURCE = fileURLToPath(new URL("../web/dashboard.ts", import.meta.url));
const PUBLIC_DIR = new URL("../public/", import.meta.url);

/**
 * Reads the page and its style and bundles the script (the source with eventsource-parser, in
 * memory with esbuild: nothing is written), for a composer to hand to the master. Takes a few
 * hundred milliseconds; call it once per master.
 * @throws Error when the source does not bundle (esbuild's messages) or a file is missing.
 */
export async function dashboardFiles(): Promise<DashboardFiles> {
  const [html, css, script] = await Promise.all([
    readFile(new URL("index.html", PUBLIC_DIR), "utf8"),
    readFile(new URL("dashboard.css", PUBLIC_DIR), "utf8"),
    build({
      entryPoints: [DASHBOARD_SOURCE],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
      charset: "utf8",
      legalComments: "none",
      logLevel: "silent",
    }),
  ]);
  const bundle = script.outputFiles[0];
  if (bundle === undefined) throw new Error("esbuild bundled the dashboard into no file");
  return {
    "index.html": { contentType: "text/html; charset=utf-8", body: html },
    "dashboard.mjs": { contentType: "text/javascript; charset=utf-8", body: bundle.text },
    "dashboard.css": { contentType: "text/css; charset=utf-8", body: css },
  };
}
