#pragma once
// The bytes all request bodies of one server may hold at once (server.limits.max_inflight_body_bytes).
//
// Without it, each connection could hold a body of max_body_bytes: 10 000 connections of 16 MiB
// each is 160 GB. A body is reserved before its memory is allocated (the declared Content-Length
// when the head arrives; a chunked body as it grows) and released when its request is done, by
// the Reservation's destructor, so that no exit path (error, disconnect, timeout) can leak it.
// Bodies under kSmallBodyBytes may also use a further kSmallReserveBytes, so that small
// inference requests are still answered while large uploads hold the whole budget. What bodies
// hold is therefore at most limit_bytes() + kSmallReserveBytes. One per server, on its io thread.
#include "telemetry/metrics.hpp"

#include <cstddef>
#include <utility>

namespace tandem::http {

class BodyBudget {
public:
  static constexpr std::size_t kSmallBodyBytes = 64u << 10;
  static constexpr std::size_t kSmallReserveBytes = 16u << 20;

  /// The bytes one request's body holds of the budget; released when destroyed.
  class Reservation {
  public:
    Reservation() = default;
    explicit Reservation(BodyBudget& budget) : budget_(&budget) {}
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    Reservation(Reservation&& other) noexcept :
        budget_(std::exchange(other.budget_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
    Reservation& operator=(Reservation&& other) noexcept {
      if (this != &other) {
        release();
        budget_ = std::exchange(other.budget_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
      }
      return *this;
    }
    ~Reservation() { release(); }

    /// Grows the reservation to `total_bytes` (a smaller value changes nothing). False, and
    /// nothing changed, when the budget cannot grant it.
    [[nodiscard]] bool grow_to(std::size_t total_bytes) {
      if (budget_ == nullptr) return false;
      if (total_bytes <= bytes_) return true;
      if (!budget_->grant(bytes_, total_bytes)) return false;
      bytes_ = total_bytes;
      return true;
    }

    void release() {
      if (budget_ != nullptr && bytes_ > 0) budget_->give_back(bytes_);
      bytes_ = 0;
    }

    [[nodiscard]] std::size_t bytes() const { return bytes_; }

  private:
    BodyBudget* budget_ = nullptr;
    std::size_t bytes_ = 0;
  };

  /// `in_flight_gauge`, if given, follows in_flight_bytes().
  explicit BodyBudget(std::size_t limit_bytes, Gauge* in_flight_gauge = nullptr) :
      limit_bytes_(limit_bytes), gauge_(in_flight_gauge) {}
  BodyBudget(const BodyBudget&) = delete;
  BodyBudget& operator=(const BodyBudget&) = delete;

  /// An empty reservation against this budget.
  Reservation open() { return Reservation(*this); }

  /// The largest total a reservation of kSmallBodyBytes or more that now holds `held_bytes`
  /// could grow to.
  [[nodiscard]] std::size_t grantable_bytes(std::size_t held_bytes) const {
    const std::size_t others = in_flight_bytes_ - held_bytes;
    return others >= limit_bytes_ ? held_bytes : limit_bytes_ - others;
  }

  [[nodiscard]] std::size_t in_flight_bytes() const { return in_flight_bytes_; }
  [[nodiscard]] std::size_t limit_bytes() const { return limit_bytes_; }

private:
  bool grant(std::size_t from_bytes, std::size_t to_bytes) {
    const std::size_t ceiling = to_bytes < kSmallBodyBytes ? limit_bytes_ + kSmallReserveBytes : limit_bytes_;
    const std::size_t others = in_flight_bytes_ - from_bytes;
    if (others > ceiling || to_bytes > ceiling - others) return false;
    in_flight_bytes_ += to_bytes - from_bytes;
    publish();
    return true;
  }

  void give_back(std::size_t bytes) {
    in_flight_bytes_ -= bytes;
    publish();
  }

  void publish() {
    if (gauge_ != nullptr) gauge_->set(static_cast<double>(in_flight_bytes_));
  }

  std::size_t limit_bytes_;
  std::size_t in_flight_bytes_ = 0;
  Gauge* gauge_;
};

} // namespace tandem::http
