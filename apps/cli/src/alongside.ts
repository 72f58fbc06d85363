import { Allocator } from "@slap/allocator";
import type { MasterDependencies } from "@slap/master";

/** An allocator on the master's own store: the embedded log belongs to one process, so one-process mode runs it there. */
export const withAllocator: NonNullable<MasterDependencies["alongside"]> = (store, logger) => new Allocator({ store, logger, replica: "allocator-0" });
