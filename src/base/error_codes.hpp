#pragma once
// The one table of error codes. Each says what happened, not how a frontend shows it; the
// frontends map it: HTTP status (v2 REST, the job API, admin), gRPC status code (for a gRPC
// frontend), and the stable snake_case name used as the metric label, in the audit record and
// in logs. Add a code here and every mapping follows; docs/api.md lists them.
//
// X(name, http_status, grpc_code, what happened)
// gRPC codes: 3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, 5 NOT_FOUND, 8 RESOURCE_EXHAUSTED,
// 9 FAILED_PRECONDITION, 12 UNIMPLEMENTED, 13 INTERNAL, 14 UNAVAILABLE.
#define TANDEM_ERROR_CODES(X)                                                                                \
  X(malformed_json, 400, 3, "the body is not JSON")                                                          \
  X(invalid_request, 400, 3, "the request breaks the model's schema or the API's rules")                     \
  X(not_found, 404, 5, "no such endpoint, model, job or record")                                             \
  X(method_not_allowed, 405, 12, "the route does not take this method")                                      \
  X(conflict, 409, 9, "the change contradicts the current state (an immutable version)")                     \
  X(payload_too_large, 413, 8, "the body is larger than the limit")                                          \
  X(overloaded, 429, 8, "admission control: the predicted wait exceeds the latency budget")                  \
  X(queue_full, 429, 8, "a bounded queue (a pool's, the jobs') is full")                                     \
  X(header_too_large, 431, 8, "the request head is larger than the limit")                                   \
  X(worker_rejected_input, 400, 3, "the worker refused the request with a 4xx (passed through)")             \
  X(upstream_error, 502, 14, "the worker failed: a 5xx, or the connection broke")                            \
  X(no_capacity, 503, 14, "no worker is ready or on its way, or none had a slot in time")                    \
  X(unavailable, 503, 14, "the server cannot serve now: shutting down, a store unreadable")                  \
  X(deadline_exceeded, 504, 4, "the deadline passed before the worker answered")                             \
  X(insufficient_storage, 507, 8, "a store's quota (blob bytes) would be exceeded")                          \
  X(internal, 500, 13, "a bug or an unexpected failure on the server")
