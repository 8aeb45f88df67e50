#pragma once
// The v2 REST frontend's mapping: an inference POST onto an engine::InferenceRequest, and an
// engine::InferenceResult back onto the answer with its x-tandem-* headers. The engine knows
// nothing of HTTP; everything HTTP-shaped about an inference is here.
#include "engine/inference.hpp"
#include "http/types.hpp"

#include <optional>

namespace tandem::gateway {

/// Fills `out` from the request's head and body (views into `request`). An Error when a header
/// the frontend understands is malformed (x-tandem-priority) or asks for what it does not
/// serve (the binary tensor extension).
std::optional<Error> v2_inference_request(const http::Request& request, std::string_view endpoint,
                                          engine::InferenceRequest& out);

/// The answer for `result`: the worker's body and status when one answered, else the error's
/// status with {"error": message}; the headers of docs/api.md; the deferred work of the
/// result as the reply's after_sent.
http::Reply v2_reply(engine::InferenceResult&& result);

} // namespace tandem::gateway
