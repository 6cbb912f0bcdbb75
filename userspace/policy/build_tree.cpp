// Linked into programs run from the build tree (tests, benchmarks, demo): no installed manifest.
#include "product/integrity.hpp"
bool nvrfs::integrity_enforced() { return false; }
