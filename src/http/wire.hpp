#pragma once
// HTTP/1.1 message heads written by hand. Beast's serializer walks its buffer views one
// element at a time, which profiling showed to cost a third of the gateway's instructions
// per request; a head is a short string, and the body goes out as a second buffer, uncopied.
#include "http/types.hpp"

#include <string>

namespace tandem::http {

/// "HTTP/1.1 200 OK\r\n" + Content-Type + the reply's header lines + Content-Length (of its
/// body) + Connection + "\r\n".
std::string response_head(const Reply& reply, bool keep_alive);

} // namespace tandem::http
