#pragma once
// One HTTP/1.1 request on a fresh connection to an http:// URL, with a deadline: for
// deliveries that happen rarely and to arbitrary hosts (job webhooks), where a keep-alive pool
// would buy nothing.
#include "base/io_inbox.hpp"
#include "base/status.hpp"
#include "http/types.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace tandem::http {

struct HttpUrl {
  std::string host;
  std::string port = "80";
  std::string target = "/";  // path and query
};

/// Parses http://HOST[:PORT][/PATH]; nullopt for anything else (https included).
std::optional<HttpUrl> parse_http_url(std::string_view url);

/// Judges where a connection goes: given the remote endpoint (and the local one once connected;
/// before, a default endpoint), a reason to refuse it, or nullopt to go on.
using EndpointVetter = std::function<std::optional<std::string>(const tcp::endpoint& remote, const tcp::endpoint& local)>;

/// POSTs `body` as JSON; returns the response status. Errors: timeout, upstream_error
/// (resolve, connect or transport failure), forbidden-target refusals by `vet` as
/// invalid_request. `vet` sees each resolved address before connecting and the connected
/// socket's endpoints before anything is sent. Redirects are never followed (the status is
/// returned). A host name is looked up on a short-lived thread that reports back through
/// `inbox` (the io thread's).
asio::awaitable<Result<unsigned>> post_json(asio::any_io_executor executor, const HttpUrl& url, std::string body,
                                            std::chrono::milliseconds timeout, IoInbox& inbox,
                                            EndpointVetter vet = {});

} // namespace tandem::http
