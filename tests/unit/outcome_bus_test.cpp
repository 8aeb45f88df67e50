#include "gateway/outcome_bus.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tandem::gateway {
namespace {

Outcome outcome_of(std::string_view endpoint, int status) {
  Outcome o;
  o.endpoint = endpoint;
  o.status = status;
  return o;
}

TEST(OutcomeBus, SeveralObserversPerEndpointEachSeeEveryOutcomeOnceInOrder) {
  OutcomeBus bus;
  std::vector<std::string> seen;
  bus.subscribe("digits", [&](const Outcome& o) { seen.push_back("a" + std::to_string(o.status)); });
  bus.subscribe("digits", [&](const Outcome& o) { seen.push_back("b" + std::to_string(o.status)); });
  bus.subscribe("", [&](const Outcome& o) { seen.push_back("all:" + std::string(o.endpoint)); });
  bus.subscribe("other", [&](const Outcome&) { seen.push_back("other"); });
  EXPECT_TRUE(bus.observed("digits"));
  EXPECT_TRUE(bus.observed("nobody-else")) << "the all-endpoints observer";
  bus.publish(outcome_of("digits", 200));
  bus.publish(outcome_of("digits", 503));
  EXPECT_EQ(seen, (std::vector<std::string>{"a200", "b200", "all:digits", "a503", "b503", "all:digits"}));
}

TEST(OutcomeBus, AnObserverMayUnsubscribeItselfOrSubscribeAnotherWhileItRuns) {
  OutcomeBus bus;
  int first = 0, second = 0, added = 0;
  OutcomeBus::Subscription self = 0;
  self = bus.subscribe("digits", [&](const Outcome&) {
    ++first;
    bus.unsubscribe(self); // a rollout that ends on the outcome it observes
    bus.subscribe("digits", [&](const Outcome&) { ++added; });
  });
  bus.subscribe("digits", [&](const Outcome&) { ++second; });
  bus.publish(outcome_of("digits", 200));
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1) << "the observers after it still see the outcome";
  EXPECT_EQ(added, 0) << "one subscribed during a publish sees the next outcome";
  bus.publish(outcome_of("digits", 200));
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 2);
  EXPECT_EQ(added, 1);
  EXPECT_EQ(bus.observers(), 2u);
}

TEST(OutcomeBus, NobodyObservingMeansNothingToBuild) {
  OutcomeBus bus;
  EXPECT_FALSE(bus.observed("digits"));
  auto id = bus.subscribe("digits", [](const Outcome&) {});
  EXPECT_FALSE(bus.observed("other"));
  bus.unsubscribe(id);
  EXPECT_FALSE(bus.observed("digits"));
  EXPECT_EQ(bus.observers(), 0u);
}

} // namespace
} // namespace tandem::gateway
