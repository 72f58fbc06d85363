/**
 * @slap/api: the master's HTTP contract in zod, shared by the master, its clients (the CLI, the
 * node), the tests and the dashboard's types. One route table (`routes`): for each operation its
 * method, path, inputs, every answer by status and who may call it; the OpenAPI document is
 * generated from it, the master registers its handlers for it, `MasterClient` calls through it.
 * See services/master/API.md.
 */
export {
  Answer,
  ApiError,
  Appended,
  AsOfInfo,
  AuditReport,
  ComputerChanged,
  ComputerDetails,
  ComputerList,
  ComputerView,
  DesiredState,
  ERROR_CODES,
  EventPage,
  EventRecord,
  Health,
  HeartbeatAnswer,
  InstanceChanged,
  InstanceDetails,
  InstanceList,
  InstanceView,
  InstanceHealth,
  Liveness,
  NodeLiveness,
  PartitionView,
  Readiness,
  SoftwareView,
  TokenInfo,
  TokenList,
  TokenRevoked,
  TreeView,
  WhoAmI,
} from "./schemas.js";
export {
  AsOfQuery,
  Bang,
  BangComputer,
  ChangeRequestedState,
  ComputerIdParam,
  DesiredQuery,
  EmptyBody,
  EventsQuery,
  InstanceIdParam,
  LogPosition,
  MomentQuery,
  PublishConnectionParameters,
  ReadQuery,
  ReferenceParam,
  RegisterComputer,
  ReportInstanceStatus,
  ReportSoftwareStatus,
  RequestInstance,
  RevisionHeader,
  SecretsQuery,
  SeenHeader,
  SupplySoftware,
  TokenIdParam,
  WaitQuery,
  WatchQuery,
  oneMoment,
  showSecrets,
} from "./inputs.js";
export { ROUTES, routes, pathOf, routerPath, type OperationId, type ResponseSpec, type Role, type RouteSpec, type Routes } from "./routes.js";
export { openApiDocument } from "./openapi.js";
export { MasterError, MasterRejected, MasterTimedOut, MasterUnreachable, UnexpectedAnswer, type ApiIssue } from "./errors.js";
export {
  CALL_TIMEOUT_MS,
  MasterClient,
  fetchTrusting,
  type AnswerOf,
  type AsOfMoment,
  type CallInput,
  type CallOptions,
  type EventOf,
  type JsonOperation,
  type MasterClientOptions,
  type StreamOperation,
} from "./client.js";
export { serverSentEvents, type ServerSentEvent } from "./sse.js";
export { checkParameters, type ParametersCheck } from "./parameters.js";
