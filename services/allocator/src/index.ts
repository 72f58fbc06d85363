/** The allocator arrives with the "Request lifecycle" issue; see README.md. */
export {};
