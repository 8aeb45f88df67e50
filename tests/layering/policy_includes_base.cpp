// The control for policy_includes_http.cpp: the same flags compile a policy file that uses what
// it may (base), so that test's failure is the layer rule and not a broken probe.
#include "base/clock.hpp"
#include "policy/router.hpp"
