// Must not compile: policy is pure and may use base only (docs/architecture.md). The test
// layering.policy_cannot_include_http builds this with the policy layer's flags and expects the
// compiler to say the header cannot be found.
#include "http/server.hpp"
#include "policy/router.hpp"
