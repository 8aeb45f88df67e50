#pragma once
// Storage for an object made and destroyed once per request, kept for the next one on the same
// thread instead of going back to malloc: a free and a malloc of a few hundred bytes are about
// 200 instructions, a push and a pop here a dozen. Bounded, so a burst leaves at most kKeep
// blocks behind per thread.
#include <array>
#include <cstddef>
#include <new>

namespace tandem {

/// Derive `T` from Recycled<T> to give it class-level operator new/delete over a per-thread
/// cache of up to kKeep blocks of sizeof(T). A class derived from T (another size) is
/// allocated as usual. A block freed on another thread than its own joins that thread's cache,
/// which is only ever sized for T.
template <class T, std::size_t kKeep = 64> class Recycled {
public:
  static void* operator new(std::size_t size) {
    if (size == sizeof(T) && !thread_cache_gone) {
      Cache& cache = thread_cache;
      if (cache.count > 0) return cache.blocks[--cache.count];
    }
    return ::operator new(size);
  }

  static void operator delete(void* block, std::size_t size) noexcept {
    if (size == sizeof(T) && !thread_cache_gone) {
      Cache& cache = thread_cache;
      if (cache.count < kKeep) {
        cache.blocks[cache.count++] = block;
        return;
      }
    }
    ::operator delete(block);
  }

private:
  struct Cache {
    std::array<void*, kKeep> blocks{};
    std::size_t count = 0;
    Cache() = default;
    Cache(const Cache&) = delete;
    Cache& operator=(const Cache&) = delete;
    ~Cache() {
      for (std::size_t i = 0; i < count; ++i) ::operator delete(blocks[i]);
      thread_cache_gone = true; // objects destroyed later in the thread's exit use the heap
    }
  };

  static inline thread_local Cache thread_cache;
  // Trivially destructible: still readable once thread_cache is gone.
  static inline thread_local bool thread_cache_gone = false;
};

} // namespace tandem
