// session_loop.hpp — nvrfsd's FUSE request loop, in place of fuse_loop_mt.
//
// A fixed pool of workers reads requests from the session's /dev/fuse
// descriptor and hands each to libfuse, except the ones wire_guard.hpp answers
// first because libfuse's high-level layer would hang on them. Returns when
// the file system is unmounted or a signal handler (fuse_set_signal_handlers)
// ends the session; requests being served finish first.
#pragma once
#define FUSE_USE_VERSION 312
#include <fuse.h>

namespace nvrfs {

// 0 when the session ended normally, 1 when reading the device failed.
int run_session(fuse* f, unsigned workers);

}  // namespace nvrfs
