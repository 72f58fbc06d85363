/**
 * @slap/api: the master's HTTP contract in zod, shared by the master, its clients (the CLI, the
 * node) and the dashboard's types. See services/master/API.md.
 */
export {
  Answer,
  ApiError,
  Appended,
  AsOfInfo,
  AuditReport,
  ComputerList,
  ComputerView,
  EventPage,
  EventRecord,
  InstanceDetails,
  InstanceList,
  InstanceView,
  PartitionView,
  SoftwareView,
  TreeView,
} from "./schemas.js";
