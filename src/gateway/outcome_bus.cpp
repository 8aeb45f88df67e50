#include "gateway/outcome_bus.hpp"

#include <algorithm>

namespace tandem::gateway {

OutcomeBus::Subscription OutcomeBus::subscribe(std::string endpoint, Observer observer) {
  const Subscription id = next_++;
  // During a publish, entries_ must not grow (the loop calls observers in place); a new one
  // joins when the publish is over and sees the next outcome.
  (publishing_ > 0 ? pending_ : entries_).push_back({id, std::move(endpoint), std::move(observer)});
  return id;
}

void OutcomeBus::unsubscribe(Subscription subscription) {
  auto same = [&](const Entry& e) { return e.id == subscription; };
  std::erase_if(pending_, same);
  auto it = std::find_if(entries_.begin(), entries_.end(), same);
  if (it == entries_.end()) return;
  if (publishing_ > 0)
    it->live = false; // the publish loop is iterating, maybe inside this very observer
  else
    entries_.erase(it);
}

bool OutcomeBus::observed(std::string_view endpoint) const {
  auto observes = [&](const Entry& e) { return e.live && (e.endpoint.empty() || e.endpoint == endpoint); };
  return std::any_of(entries_.begin(), entries_.end(), observes) ||
         std::any_of(pending_.begin(), pending_.end(), observes);
}

void OutcomeBus::publish(const Outcome& outcome) {
  ++publishing_;
  for (const Entry& e : entries_)
    if (e.live && (e.endpoint.empty() || e.endpoint == outcome.endpoint)) e.observer(outcome);
  if (--publishing_ > 0) return;
  std::erase_if(entries_, [](const Entry& e) { return !e.live; });
  for (auto& e : pending_) entries_.push_back(std::move(e));
  pending_.clear();
}

std::size_t OutcomeBus::observers() const {
  auto live = [](const Entry& e) { return e.live; };
  return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(), live)) + pending_.size();
}

} // namespace tandem::gateway
