// Test release profile for the node's timeouts: `mode` picks what hangs. Every run appends a line
// to `entered` in the partition, so a test can count the runs. Hanging processes carry `marker`
// in their argv, so a test can find them in /proc.
import { appendFileSync } from "node:fs";
import { join } from "node:path";

// A command that never ends, ignores SIGTERM and starts a child that never ends either.
const stubborn = (marker) => [
  process.execPath,
  "-e",
  "process.on('SIGTERM', () => {}); require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', process.argv[1] + '-child'], { stdio: 'inherit' }); setInterval(() => {}, 1000)",
  marker,
];

export default async function deploy(slap) {
  const { mode, marker } = slap.parameters;
  appendFileSync(join(slap.partition.path, "entered"), `${mode}\n`);
  if (mode === "hang-profile") await new Promise(() => {});
  if (mode === "hang-run") slap.run("forever", { command: stubborn(`slap-test-${marker}`) });
  if (mode === "hang-promise") slap.promise("forever", { command: stubborn(`slap-test-${marker}`) });
  slap.publish({ mode });
}
