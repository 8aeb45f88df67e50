#pragma once
// Which addresses a job webhook may be delivered to. A webhook is a URL chosen by whoever
// submits a job, so without a check it reaches anything the gateway can reach: its own admin
// API, loopback services, cloud metadata (169.254.169.254), private networks. Pure: parsing and
// comparison only; the caller resolves names and reads the connected socket's endpoints.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

struct IpAddress {
  std::array<std::uint8_t, 16> bytes{}; // IPv4: the first 4
  bool v4 = false;
};

/// A literal IPv4 or IPv6 address ("10.0.0.1", "::1", "[::1]"); nullopt for anything else.
std::optional<IpAddress> parse_ip_address(std::string_view text);

struct Cidr {
  IpAddress base;
  int prefix_bits = 0;
};

/// "10.1.0.0/16", "fd00::/8", or a bare address (a single host); nullopt when malformed.
std::optional<Cidr> parse_cidr(std::string_view text);
bool cidr_contains(const Cidr& range, const IpAddress& address);

/// Why a webhook may not go to `address`: "loopback", "link_local", "private", "unspecified",
/// "multicast" or "reserved"; nullopt when it may (a public address, or one `allow` covers).
/// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as the IPv4 address it carries.
std::optional<std::string_view> webhook_target_refusal(const IpAddress& address,
                                                       const std::vector<Cidr>& allow);
inline bool webhook_target_allowed(const IpAddress& address, const std::vector<Cidr>& allow) {
  return !webhook_target_refusal(address, allow).has_value();
}

/// Whether a connection from `local` to `remote` reaches this server itself: the same host
/// (the addresses are equal, or both loopback) on the port the server listens on. Never allowed,
/// whatever the allow-list says, so that a job cannot drive the admin API.
bool webhook_target_is_self(const IpAddress& remote, unsigned short remote_port, const IpAddress& local,
                            unsigned short listen_port);

} // namespace tandem
