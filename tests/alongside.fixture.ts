import { Allocator } from "@slap/allocator";
import type { MasterDependencies } from "@slap/master";

/** An allocator on the master's own store, as `slap up` runs it (the embedded log belongs to one process). */
export const withAllocator: NonNullable<MasterDependencies["alongside"]> = (store, logger) => new Allocator({ store, logger, replica: "allocator-0" });
