#pragma once
// The embedded state store: one SQLite file (WAL mode) in the state directory.
#include "state/state_store.hpp"

#include <filesystem>

namespace tandem::registry {

/// The file the store lives in, inside a state directory.
std::filesystem::path sqlite_path(const std::filesystem::path& state_dir);

/// Opens (creating if needed) the store at `file` and applies pending schema migrations, in
/// order, each in its own transaction. Fails with a clear message if the file was written by a
/// newer tandem (a schema version this binary does not know) or is not a tandem database.
Result<std::unique_ptr<StateStore>> open_sqlite_store(const std::filesystem::path& file);

/// The migrations this binary knows, newest last (for `tandem` diagnostics and tests).
int latest_schema_version();

} // namespace tandem::registry
