import { Allocator } from "@slap/allocator";
import type { DashboardFiles, MasterDependencies } from "@slap/master";

/** An allocator on the master's own store: the embedded log belongs to one process, so one-process mode runs it there. */
export const withAllocator: NonNullable<MasterDependencies["alongside"]> = (store, logger) => new Allocator({ store, logger, replica: "allocator-0" });

/**
 * The dashboard's files for the master, or none when they cannot be made (the bundler missing
 * or failing): the API does not depend on its page, so the master starts without it and says why.
 */
export async function dashboardOrNone(warn: (line: string) => void): Promise<{ dashboard?: DashboardFiles }> {
  try {
    const { dashboardFiles } = await import("@slap/dashboard");
    return { dashboard: await dashboardFiles() };
  } catch (error) {
    warn(`the dashboard is not served: ${(error as Error).message.split("\n", 1)[0] ?? ""}`);
    return {};
  }
}
