// Types of clients/js/index.js; the shapes are those of api/openapi/openapi.json.

export type Kind = 'avatar' | 'pose';
export type GenerationStatus = 'queued' | 'running' | 'succeeded' | 'partial' | 'failed' | 'canceled' | 'expired';
export type Stage = 'starting' | 'generating' | 'postprocessing' | 'storing';
export type Reference = { upload_id: string } | { generation_id: string; index: number };
export type Pose = { preset: string } | { upload_id: string };

export interface GenerationRequest {
  kind: Kind;
  prompt: string;
  negative_prompt?: string;
  width?: number;
  height?: number;
  count?: number;
  seed?: number;
  steps?: number;
  guidance?: number;
  style?: string;
  identity?: Reference;
  poses?: Pose[];
  exports?: string[];
  provider?: string;
  deadline_s?: number;
  webhook_url?: string;
  webhook_events?: string[];
  metadata?: Record<string, unknown>;
}

export interface Accepted {
  id: string;
  kind: Kind;
  status: GenerationStatus;
  cost: number;
  images: number;
  queue_position: number | null;
  created_at: string;
  events_url: string;
  url: string;
}

export interface GenerationError {
  code: string;
  message: string;
  retryable: boolean;
}

export interface Output {
  index: number;
  pose: number;
  variant: string;
  format: 'webp' | 'png' | 'jpeg';
  width: number;
  height: number;
  bytes: number;
  sha256: string;
  seed: number | null;
  url: string | null;
  deleted?: boolean;
}

export interface Generation {
  id: string;
  kind: Kind;
  status: GenerationStatus;
  progress: number;
  stage: Stage | null;
  queue_position: number | null;
  images: number;
  images_done: number;
  images_failed: number;
  params: GenerationRequest & { seed: number };
  cost: number;
  charged: number;
  released: number;
  attempts: number;
  provider: string | null;
  error: GenerationError | null;
  /** One entry per failed image (docs/api.md: besides API.md's fields). */
  failures?: { index: number; error: GenerationError | null }[] | null;
  metadata: Record<string, unknown> | null;
  webhook?: { status: 'pending' | 'delivered' | 'failed'; attempts: number; last_status_code?: number | null; next_attempt_at?: string | null } | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  outputs: Output[];
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Upload {
  id: string;
  format: 'png' | 'jpeg' | 'webp';
  width: number;
  height: number;
  bytes: number;
}

/** An upload as GET /v1/uploads lists it. */
export interface UploadItem extends Upload {
  created_at: string;
}

export interface Credits {
  balance: number;
  held: number;
  available: number;
}

export interface LedgerEntry {
  kind: 'grant' | 'hold' | 'capture' | 'release';
  amount: number;
  generation_id: string | null;
  image_index?: number | null;
  reason?: string | null;
  created_at: string;
}

export interface Presets {
  styles: { name: string; description?: string; prompt_suffix: string }[];
  poses: { name: string; category: string; description: string; keypoints: [number, number, number][]; map_url: string }[];
  exports: { name: string; width: number; height: number; format: 'webp' | 'png' | 'jpeg' }[];
}

/** The data of a queued, started, progress or image event. */
export interface ProgressEventData {
  id: string;
  status?: string;
  queue_position?: number | null;
  stage?: Stage;
  progress?: number;
  index?: number;
  outputs?: Output[];
  error?: GenerationError;
}

export type TerminalEventType = 'succeeded' | 'partial' | 'failed' | 'canceled' | 'expired';

/**
 * `id` is null for an end the kit read with GET when the stream ended
 * without it and no event had come before (there is no id to resume from).
 */
export type StreamEvent =
  | { id: string; type: 'queued' | 'started' | 'progress' | 'image'; data: ProgressEventData }
  | { id: string | null; type: TerminalEventType; data: Generation };

export declare const TERMINAL_EVENTS: readonly TerminalEventType[];

/** A random UUID v4, as createGeneration makes its Idempotency-Key when none is given. */
export declare function newIdempotencyKey(): string;

export declare class ApiError extends Error {
  constructor(e: { status: number; code: string; message: string; field?: string | null; retryAfter?: number | null; requestId?: string | null; idempotencyKey?: string | null });
  /** HTTP status; 0 when no answer came. */
  status: number;
  /** API.md's machine code ("insufficient_credits", "rate_limited", ...); "network_error" when no answer came. */
  code: string;
  field: string | null;
  /** Seconds, from Retry-After. */
  retryAfter: number | null;
  requestId: string | null;
  /** createGeneration's Idempotency-Key: retry with it to hold once. */
  idempotencyKey: string | null;
}

export interface ClientOptions {
  /** The farm's origin; "" (the default) in a page the farm serves. */
  baseUrl?: string;
  /** The bearer JWT. */
  token?: string;
  /** Asked for the token before every request (instead of `token`); again once after a stream's 401. */
  getToken?: () => string | Promise<string>;
  fetch?: typeof fetch;
  /** The first wait before an event stream reconnects, until the server's retry: says otherwise (2000). */
  reconnectDelayMs?: number;
  /** Failures in a row double the wait, with jitter, up to this (30000). */
  maxReconnectDelayMs?: number;
  /** createGeneration's resends with its key when no answer came or on 503 (2). */
  createRetries?: number;
  /** Told of each wait before a stream reconnects or a create is sent again, and why. */
  onRetry?: (e: { error: ApiError; delayMs: number }) => void;
}

type Opts = { signal?: AbortSignal };

export declare class Client {
  constructor(options?: ClientOptions);
  baseUrl: string;
  token: string | undefined;
  getToken: (() => string | Promise<string>) | undefined;
  createGeneration(params: GenerationRequest, options?: Opts & { idempotencyKey?: string }): Promise<Accepted>;
  getGeneration(id: string, options?: Opts): Promise<Generation>;
  list(options?: Opts & { status?: GenerationStatus; kind?: Kind; limit?: number; cursor?: string }): Promise<Page<Generation>>;
  cancel(id: string, options?: Opts): Promise<Generation>;
  remove(id: string, options?: Opts): Promise<null>;
  upload(fileOrBytes: Blob | Uint8Array | ArrayBuffer, options?: Opts & { type?: 'image/png' | 'image/jpeg' | 'image/webp' }): Promise<Upload>;
  uploads(options?: Opts & { limit?: number; cursor?: string }): Promise<Page<UploadItem>>;
  removeUpload(id: string, options?: Opts): Promise<null>;
  credits(options?: Opts): Promise<Credits>;
  ledger(options?: Opts & { limit?: number; cursor?: string }): Promise<Page<LedgerEntry>>;
  presets(options?: Opts): Promise<Presets>;
  watch(id: string, options?: Opts & { lastEventId?: string }): AsyncIterableIterator<StreamEvent>;
  watchAll(options?: Opts & { lastEventId?: string }): AsyncIterableIterator<StreamEvent>;
}
