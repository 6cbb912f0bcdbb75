// Linked into programs run from the build tree (tests, benchmarks, demo): no installed manifest.
#include "integrity.hpp"
bool nvrfs::integrity_enforced() { return false; }
