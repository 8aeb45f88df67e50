// The YAML config loader. Paths in the config resolve against a fixed base directory; the loader
// only reads the text it is given.
#include "cli/worker_args.hpp"
#include "config/config.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = tandem::parse_config(text, "/nonexistent/tandem-fuzz", {.worker_args = tandem::cli::worker_args_error});
  (void)config;
  return 0;
}
