// ops.hpp — the FUSE operation table of nvrfsd.
//
// Handlers are thin: fetch the Daemon from the FUSE context, call the Volume,
// and turn an Error into -errno. This is the only place that conversion happens.
#pragma once
#define FUSE_USE_VERSION 312
#include <fuse.h>

namespace nvrfs {
const fuse_operations& nvrfs_operations();
}
