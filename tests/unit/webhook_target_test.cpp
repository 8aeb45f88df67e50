// The webhook target check: which addresses a job's webhook may reach.
#include "config/webhook_target.hpp"

#include <gtest/gtest.h>

using namespace tandem;

namespace {

std::optional<std::string_view> refusal(const char* address, const std::vector<Cidr>& allow = {}) {
  auto parsed = parse_ip_address(address);
  EXPECT_TRUE(parsed) << address;
  return webhook_target_refusal(*parsed, allow);
}

std::vector<Cidr> ranges(std::initializer_list<const char*> texts) {
  std::vector<Cidr> out;
  for (const char* t : texts) out.push_back(*parse_cidr(t));
  return out;
}

} // namespace

TEST(WebhookTargetTest, ForbiddenRangesAreRefusedWithTheirReason) {
  EXPECT_EQ(refusal("127.0.0.1"), "loopback");
  EXPECT_EQ(refusal("127.255.0.9"), "loopback");
  EXPECT_EQ(refusal("::1"), "loopback");
  EXPECT_EQ(refusal("[::1]"), "loopback");
  EXPECT_EQ(refusal("169.254.169.254"), "link_local");
  EXPECT_EQ(refusal("fe80::1"), "link_local");
  EXPECT_EQ(refusal("10.2.3.4"), "private");
  EXPECT_EQ(refusal("172.16.0.1"), "private");
  EXPECT_EQ(refusal("172.31.255.255"), "private");
  EXPECT_EQ(refusal("192.168.1.1"), "private");
  EXPECT_EQ(refusal("100.64.0.1"), "private");
  EXPECT_EQ(refusal("fd12::1"), "private");
  EXPECT_EQ(refusal("0.0.0.0"), "unspecified");
  EXPECT_EQ(refusal("::"), "unspecified");
  EXPECT_EQ(refusal("224.0.0.1"), "multicast");
  EXPECT_EQ(refusal("ff02::1"), "multicast");
  EXPECT_EQ(refusal("255.255.255.255"), "reserved");
}

TEST(WebhookTargetTest, Ipv4MappedFormsAreJudgedAsTheirIpv4Address) {
  EXPECT_EQ(refusal("::ffff:127.0.0.1"), "loopback");
  EXPECT_EQ(refusal("::ffff:169.254.169.254"), "link_local");
  EXPECT_EQ(refusal("::ffff:10.0.0.1"), "private");
  EXPECT_EQ(refusal("::ffff:7f00:1"), "loopback");
  EXPECT_FALSE(refusal("::ffff:8.8.8.8"));
  EXPECT_EQ(refusal("::127.0.0.1"), "reserved"); // IPv4-compatible, deprecated
}

TEST(WebhookTargetTest, PublicAddressesAreAllowed) {
  EXPECT_FALSE(refusal("8.8.8.8"));
  EXPECT_FALSE(refusal("172.32.0.1"));
  EXPECT_FALSE(refusal("100.128.0.1"));
  EXPECT_FALSE(refusal("2001:4860:4860::8888"));
  EXPECT_TRUE(webhook_target_allowed(*parse_ip_address("1.1.1.1"), {}));
}

TEST(WebhookTargetTest, TheAllowListPermitsOnlyWhatItCovers) {
  const auto allow = ranges({"127.0.0.1/32", "10.1.0.0/16", "fd00::/8"});
  EXPECT_FALSE(refusal("127.0.0.1", allow));
  EXPECT_FALSE(refusal("::ffff:127.0.0.1", allow));
  EXPECT_EQ(refusal("127.0.0.2", allow), "loopback");
  EXPECT_FALSE(refusal("10.1.200.3", allow));
  EXPECT_EQ(refusal("10.2.0.1", allow), "private");
  EXPECT_FALSE(refusal("fd12::1", allow));
  EXPECT_EQ(refusal("fe80::1", allow), "link_local");
}

TEST(WebhookTargetTest, CidrParsingRefusesMalformedText) {
  EXPECT_TRUE(parse_cidr("10.0.0.0/8"));
  EXPECT_TRUE(parse_cidr("::/0"));
  EXPECT_EQ(parse_cidr("10.0.0.1")->prefix_bits, 32);
  EXPECT_FALSE(parse_cidr("10.0.0.0/33"));
  EXPECT_FALSE(parse_cidr("10.0.0.0/"));
  EXPECT_FALSE(parse_cidr("10.0.0.0/-1"));
  EXPECT_FALSE(parse_cidr("10.0.0/8"));
  EXPECT_FALSE(parse_cidr("example.com/8"));
  EXPECT_FALSE(parse_cidr(""));
  EXPECT_FALSE(parse_ip_address("localhost"));
}

TEST(WebhookTargetTest, AConnectionToThisHostOnTheListenPortIsSelf) {
  const auto loop = *parse_ip_address("127.0.0.1");
  const auto own = *parse_ip_address("203.0.113.7");
  const auto other = *parse_ip_address("203.0.113.8");
  EXPECT_TRUE(webhook_target_is_self(loop, 8080, loop, 8080));
  EXPECT_TRUE(webhook_target_is_self(*parse_ip_address("127.0.0.2"), 8080, loop, 8080));
  EXPECT_TRUE(webhook_target_is_self(own, 8080, own, 8080));
  EXPECT_TRUE(webhook_target_is_self(*parse_ip_address("::ffff:203.0.113.7"), 8080, own, 8080));
  EXPECT_FALSE(webhook_target_is_self(own, 9090, own, 8080));
  EXPECT_FALSE(webhook_target_is_self(other, 8080, own, 8080));
  EXPECT_FALSE(webhook_target_is_self(loop, 8080, loop, 0));
}
