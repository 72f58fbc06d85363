/** The node agent arrives with the "Node agent" issue; see README.md. */
export {};
