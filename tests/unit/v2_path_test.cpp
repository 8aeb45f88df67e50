#include "protocol/v2_path.hpp"

#include <gtest/gtest.h>

namespace tandem::v2 {
namespace {

TEST(ParseModelPath, Metadata) {
  auto path = parse_model_path("/v2/models/digits");
  ASSERT_TRUE(path.has_value());
  EXPECT_EQ(path->name, "digits");
  EXPECT_EQ(path->version, "");
  EXPECT_EQ(path->action, ModelAction::metadata);
}

TEST(ParseModelPath, Ready) {
  auto path = parse_model_path("/v2/models/digits/ready");
  ASSERT_TRUE(path.has_value());
  EXPECT_EQ(path->name, "digits");
  EXPECT_EQ(path->version, "");
  EXPECT_EQ(path->action, ModelAction::ready);
}

TEST(ParseModelPath, Infer) {
  auto path = parse_model_path("/v2/models/digits/infer");
  ASSERT_TRUE(path.has_value());
  EXPECT_EQ(path->name, "digits");
  EXPECT_EQ(path->version, "");
  EXPECT_EQ(path->action, ModelAction::infer);
}

TEST(ParseModelPath, VersionMetadata) {
  auto path = parse_model_path("/v2/models/digits/versions/3f2a9c01b7de");
  ASSERT_TRUE(path.has_value());
  EXPECT_EQ(path->name, "digits");
  EXPECT_EQ(path->version, "3f2a9c01b7de");
  EXPECT_EQ(path->action, ModelAction::metadata);
}

TEST(ParseModelPath, VersionReadyAndInfer) {
  auto infer = parse_model_path("/v2/models/digits/versions/v1/infer");
  ASSERT_TRUE(infer.has_value());
  EXPECT_EQ(infer->name, "digits");
  EXPECT_EQ(infer->version, "v1");
  EXPECT_EQ(infer->action, ModelAction::infer);

  auto ready = parse_model_path("/v2/models/digits/versions/v1/ready");
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->version, "v1");
  EXPECT_EQ(ready->action, ModelAction::ready);
}

TEST(ParseModelPath, NameMayLookLikeAKeyword) {
  auto path = parse_model_path("/v2/models/infer/infer");
  ASSERT_TRUE(path.has_value());
  EXPECT_EQ(path->name, "infer");
  EXPECT_EQ(path->action, ModelAction::infer);
}

TEST(ParseModelPath, ViewsPointIntoTheTarget) {
  constexpr std::string_view target = "/v2/models/digits/versions/v7/infer";
  auto path = parse_model_path(target);
  ASSERT_TRUE(path.has_value());
  EXPECT_EQ(path->name.data(), target.data() + 11);
  EXPECT_EQ(path->version.data(), target.data() + 27);
}

TEST(ParseModelPath, RejectsInvalid) {
  for (std::string_view target : {
           "",                                      // nothing
           "/v2/models",                            // no trailing slash, no name
           "/v2/models/",                           // empty name
           "/v2/models//infer",                     // empty name
           "/v2/model/digits",                      // wrong prefix
           "/v1/models/digits",                     // wrong protocol version
           "v2/models/digits",                      // not absolute
           "/v2/models/digits/bogus",               // unknown action
           "/v2/models/digits/INFER",               // actions are case-sensitive
           "/v2/models/digits/versions",            // versions without a version
           "/v2/models/digits/versions/",           // empty version
           "/v2/models/digits/versions//infer",     // empty version
           "/v2/models/digits/infer/junk",          // trailing junk
           "/v2/models/digits/ready/infer",         // two actions
           "/v2/models/digits/versions/v1/bogus",   // unknown action after a version
           "/v2/models/digits/versions/v1/infer/x", // trailing junk after a version
           "/v2/models/digits//infer",              // empty segment
       }) {
    EXPECT_FALSE(parse_model_path(target).has_value()) << "accepted \"" << target << "\"";
  }
}

TEST(StripQuery, DropsTheQueryString) {
  EXPECT_EQ(strip_query("/v2/models/digits/infer?x=1&y=2"), "/v2/models/digits/infer");
  EXPECT_EQ(strip_query("/v2/models/digits"), "/v2/models/digits");
  EXPECT_EQ(strip_query("/metrics?"), "/metrics");
  auto path = parse_model_path(strip_query("/v2/models/digits/ready?verbose"));
  ASSERT_TRUE(path.has_value());
  EXPECT_EQ(path->action, ModelAction::ready);
}

} // namespace
} // namespace tandem::v2
