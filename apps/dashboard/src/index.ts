import { fileURLToPath } from "node:url";

/** The folder of the dashboard's static files (`index.html`, its script and style): the master serves it as given. */
export const DASHBOARD_DIR = fileURLToPath(new URL("../public/", import.meta.url));
