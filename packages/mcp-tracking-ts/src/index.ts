/** `@mcp-gateway/tracking`: `trackMCP(server, orgId, options)` for servers built on `@modelcontextprotocol/sdk`. */

export { trackMCP, Tracker, TRACKED_METHODS, type TrackableServer } from "./track.js";
export type { TrackOptions, IdentifyFn, IdentifyRequest, UserData } from "./options.js";
export type { Logger } from "./log.js";
export type { SinkStats } from "./sink.js";
export { DEFAULT_SENSITIVE_KEYS, Redactor } from "./redact.js";
export type { CaptureBatch, CaptureEvent, CaptureSession, Operation, PrimitiveType } from "./wire.js";
