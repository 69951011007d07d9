/**
 * The Agnost wire format: what `POST /api/v1/capture-session`, `/capture-event` and mcp-gateway's
 * `/capture-batch` carry. Field for field as seed 003 documents it, plus the optional extras the Python
 * SDK sends (`mcp_gateway/tracking/wire.py`): `event_id` and `timestamp` (so a backend can deduplicate a
 * retried event), `error_type`, `operation` and `transport`. Backends that do not know them ignore them.
 */

export type PrimitiveType = "tool" | "resource" | "prompt";
export type Operation = "call" | "list";

/** Body of `POST /api/v1/capture-session`: one client connection to an MCP server. */
export interface CaptureSession {
  session_id: string;
  client_config: string;
  connection_type: string;
  ip: string;
  tools: string[];
  user_data: Record<string, unknown> | null;
  /** When the session started, ms since the epoch. */
  timestamp: number;
  transport: string | null;
}

/** Body of `POST /api/v1/capture-event`: one tool, resource or prompt request. */
export interface CaptureEvent {
  session_id: string;
  primitive_type: PrimitiveType;
  primitive_name: string;
  /** Milliseconds. */
  latency: number;
  success: boolean;
  /** JSON text; absent with `disableInput`. */
  args?: string;
  /** JSON text; absent with `disableOutput`. */
  result?: string;
  event_id: string;
  /** When the request started, ms since the epoch. */
  timestamp: number;
  error_type: string | null;
  operation: Operation;
}

/** Body of `POST /api/v1/capture-batch`: sessions first, then events. */
export interface CaptureBatch {
  sessions: CaptureSession[];
  events: CaptureEvent[];
}

export type CaptureItem = { kind: "session"; body: CaptureSession } | { kind: "event"; body: CaptureEvent };

export const SESSION_PATH = "/api/v1/capture-session";
export const EVENT_PATH = "/api/v1/capture-event";
export const BATCH_PATH = "/api/v1/capture-batch";

/** Most sessions one `/capture-batch` request may carry (the gateway's limit). */
export const MAX_BATCH_SESSIONS = 100;
