#include "session_loop.hpp"

#include "base/io.hpp"
#include "wire_guard.hpp"

#include <fuse_lowlevel.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <optional>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <vector>

namespace nvrfs {
namespace {

struct Session {
    fuse_session* se;
    int dev;
    UniqueFd ended;  // eventfd: a worker found the session over (unmounted)
    std::atomic<bool> failed{false};
};

void reply(int dev, uint64_t unique, int err) {
    const fuse_out_header out{sizeof(fuse_out_header), -err, unique};
    // Fails only when the request was interrupted or the mount is gone.
    if (::write(dev, &out, sizeof out) < 0) { /* nothing left to tell */ }
}

// Owns the worker's request buffer (libfuse allocates it at the first read),
// also when the worker is cancelled in its read.
struct Buffer {
    fuse_buf buf{};
    ~Buffer() { std::free(buf.mem); }
};

// A worker blocks in read(2) on /dev/fuse as fuse_loop_mt's do: the kernel
// hands each request to one of them. It can be cancelled only there, while
// it holds no request (run_session cancels the idle ones at the end).
void* work(void* arg) {
    auto& s = *static_cast<Session*>(arg);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
    Buffer b;
    bool ok = true;
    while (!fuse_session_exited(s.se)) {
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, nullptr);
        const int res = fuse_session_receive_buf(s.se, &b.buf);
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
        if (res == -EINTR) continue;
        if (res <= 0) {  // 0: unmounted (libfuse marked the session exited)
            ok = res == 0;
            break;
        }
        const auto answer = (b.buf.flags & FUSE_BUF_IS_FD) ? std::nullopt : answer_before_libfuse(b.buf.mem, b.buf.size);
        if (answer) {
            fuse_in_header in;
            std::memcpy(&in, b.buf.mem, sizeof in);
            reply(s.dev, in.unique, *answer);
        } else {
            fuse_session_process_buf(s.se, &b.buf);
        }
    }
    if (!ok) s.failed = true;
    fuse_session_exit(s.se);
    const uint64_t one = 1;
    if (::write(s.ended.get(), &one, sizeof one) < 0) { /* the counter is full: already told */ }
    return nullptr;
}

}  // namespace

int run_session(fuse* f, unsigned workers) {
    fuse_session* se = fuse_get_session(f);
    Session s{se, fuse_session_fd(se), UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))};
    if (!s.ended) {
        fmt::print(stderr, "nvrfsd: cannot set up the request loop: {}\n", std::strerror(errno));
        return 1;
    }
    if (fuse_start_cleanup_thread(f) != 0) return 1;
    // Workers take no signals: SIGTERM/SIGINT/SIGHUP reach this thread's
    // poll below, whose handler (libfuse's) ends the session.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    std::vector<pthread_t> pool;
    for (unsigned i = 0; i < workers; ++i) {
        pthread_t t;
        if (pthread_create(&t, nullptr, work, &s) == 0) pool.push_back(t);
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pool.empty()) s.failed = true;
    // A signal taken by another of nvrfsd's threads only sets the flag: the
    // timeout notices it within a second.
    pollfd p{s.ended.get(), POLLIN, 0};
    while (!pool.empty() && !fuse_session_exited(se) && ::poll(&p, 1, 1000) <= 0) {
    }
    // Workers busy with a request finish it; idle ones are cancelled in their read.
    for (pthread_t t : pool) pthread_cancel(t);
    for (pthread_t t : pool) pthread_join(t, nullptr);
    fuse_stop_cleanup_thread(f);
    return s.failed ? 1 : 0;
}

}  // namespace nvrfs
