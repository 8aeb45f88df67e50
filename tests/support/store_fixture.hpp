#pragma once
// A test with its own fresh state store: a temporary directory with a created and migrated
// tandem.db, opened as the server opens it.
#include "state/sqlite_store.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

namespace tandem::testing {

class FreshStoreTest : public ::testing::Test {
protected:
  void SetUp() override {
    file_ = registry::sqlite_path(dir_.path());
    auto opened = registry::open_sqlite_store(file_);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(*opened);
  }

  registry::StateStore& store() { return *store_; }

  TempDir dir_;
  std::filesystem::path file_;
  std::unique_ptr<registry::StateStore> store_;
};

} // namespace tandem::testing
