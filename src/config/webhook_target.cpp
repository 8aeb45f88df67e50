#include "config/webhook_target.hpp"

#include <arpa/inet.h>
#include <charconv>

namespace tandem {

namespace {

/// ::ffff:a.b.c.d as a.b.c.d; anything else unchanged.
IpAddress unmapped(const IpAddress& a) {
  if (a.v4) return a;
  for (int i = 0; i < 10; ++i)
    if (a.bytes[i] != 0) return a;
  if (a.bytes[10] != 0xff || a.bytes[11] != 0xff) return a;
  IpAddress out;
  out.v4 = true;
  for (int i = 0; i < 4; ++i) out.bytes[i] = a.bytes[12 + i];
  return out;
}

bool in(const IpAddress& a, const char* range) {
  auto cidr = parse_cidr(range);
  return cidr && cidr_contains(*cidr, a);
}

} // namespace

std::optional<IpAddress> parse_ip_address(std::string_view text) {
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() > 64) return std::nullopt;
  const std::string owned(text);
  IpAddress out;
  if (inet_pton(AF_INET, owned.c_str(), out.bytes.data()) == 1) {
    out.v4 = true;
    return out;
  }
  if (inet_pton(AF_INET6, owned.c_str(), out.bytes.data()) == 1) return out;
  return std::nullopt;
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  const auto slash = text.find('/');
  auto address = parse_ip_address(text.substr(0, slash));
  if (!address) return std::nullopt;
  const int width = address->v4 ? 32 : 128;
  int bits = width;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || bits < 0 ||
        bits > width)
      return std::nullopt;
  }
  return Cidr{*address, bits};
}

bool cidr_contains(const Cidr& range, const IpAddress& address) {
  if (range.base.v4 != address.v4) return false;
  int bits = range.prefix_bits;
  for (std::size_t i = 0; bits > 0; ++i, bits -= 8) {
    const auto mask = static_cast<std::uint8_t>(bits >= 8 ? 0xff : 0xff << (8 - bits));
    if ((range.base.bytes[i] & mask) != (address.bytes[i] & mask)) return false;
  }
  return true;
}

std::optional<std::string_view> webhook_target_refusal(const IpAddress& address,
                                                       const std::vector<Cidr>& allow) {
  const IpAddress a = unmapped(address);
  for (const auto& range : allow)
    if (cidr_contains(range, a) || cidr_contains(range, address)) return std::nullopt;
  if (a.v4) {
    if (in(a, "0.0.0.0/8")) return "unspecified";
    if (in(a, "127.0.0.0/8")) return "loopback";
    if (in(a, "169.254.0.0/16")) return "link_local";
    if (in(a, "10.0.0.0/8") || in(a, "172.16.0.0/12") || in(a, "192.168.0.0/16") || in(a, "100.64.0.0/10"))
      return "private";
    if (in(a, "224.0.0.0/4")) return "multicast";
    if (in(a, "240.0.0.0/4")) return "reserved"; // 255.255.255.255 (broadcast) included
    return std::nullopt;
  }
  if (in(a, "::/128")) return "unspecified";
  if (in(a, "::1/128")) return "loopback";
  if (in(a, "fe80::/10")) return "link_local";
  if (in(a, "fc00::/7")) return "private";
  if (in(a, "ff00::/8")) return "multicast";
  if (in(a, "::/96")) return "reserved"; // IPv4-compatible (deprecated), e.g. ::127.0.0.1
  return std::nullopt;
}

bool webhook_target_is_self(const IpAddress& remote, unsigned short remote_port, const IpAddress& local,
                            unsigned short listen_port) {
  if (listen_port == 0 || remote_port != listen_port) return false;
  const IpAddress r = unmapped(remote);
  const IpAddress l = unmapped(local);
  auto loopback = [](const IpAddress& a) { return in(a, "127.0.0.0/8") || in(a, "::1/128"); };
  if (loopback(r) || in(r, "0.0.0.0/8") || in(r, "::/128")) return true;
  return r.v4 == l.v4 && r.bytes == l.bytes;
}

} // namespace tandem
