/**
 * HTTP API errors in OpenAI's shape: `{ error: { message, type, param, code } }` with a 4xx/5xx status. Every
 * failure the server reports goes through `ApiError`, so clients (the openai package included) parse them all.
 */
import { RecurformerError } from '../tensor/errors.js';

export type ApiErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error'
  | 'server_error' | 'service_unavailable';

export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

export class ApiError extends RecurformerError {
  constructor(
    readonly status: number,
    readonly type: ApiErrorType,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (Retry-After on 429 and 503). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = 'invalid_value'): ApiError =>
  new ApiError(400, 'invalid_request_error', message, param, code);

/** The queue is full: the client should retry after `seconds`. */
export const queueFull = (seconds: number): ApiError =>
  new ApiError(429, 'rate_limit_error', 'the request queue is full, retry later', null, 'queue_full',
    { 'retry-after': String(seconds) });

export const shuttingDown = (): ApiError =>
  new ApiError(503, 'service_unavailable', 'the server is shutting down', null, 'shutting_down', { 'retry-after': '5' });

/** What the request said, for errors that should name it. */
export interface RequestHints {
  /** The server's body limit in bytes. */
  bodyLimit?: number;
  contentType?: string;
}

/** Maps fastify's own errors (body parsing, limits, routing) and anything unexpected to an ApiError. */
export function toApiError(e: unknown, hints: RequestHints = {}): ApiError {
  if (e instanceof ApiError) return e;
  const err = e as { code?: string; statusCode?: number; message?: string };
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': {
      const limit = hints.bodyLimit === undefined ? 'the limit' : `the limit of ${hints.bodyLimit} bytes`;
      return new ApiError(413, 'invalid_request_error', `the request body is larger than ${limit} (raise it with --body-limit)`,
        null, 'body_too_large');
    }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      const given = hints.contentType ? `Content-Type ${hints.contentType} is not supported` : 'the body has no Content-Type';
      return new ApiError(415, 'invalid_request_error', `${given}: send the body as application/json`, null, 'unsupported_media_type');
    }
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return badRequest('the request body is empty; send a JSON object', null, 'invalid_json');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return badRequest(`the request body is not valid JSON: ${err.message ?? ''}`, null, 'invalid_json');
  }
  const status = err.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new ApiError(status, 'invalid_request_error', err.message ?? 'bad request', null, err.code ?? null);
  }
  return new ApiError(500, 'server_error', 'internal server error', null, 'internal_error');
}
