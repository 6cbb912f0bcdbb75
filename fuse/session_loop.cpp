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
#include <fcntl.h>
#include <optional>
#include <pthread.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace nvrfs {
namespace {

struct Session {
    fuse_session* se;
    int dev;            // /dev/fuse, non-blocking: a worker woken for nothing goes back to wait
    UniqueFd stop;      // eventfd: readable once the session is over
    std::atomic<bool> failed{false};

    void end() {
        const uint64_t one = 1;
        if (::write(stop.get(), &one, sizeof one) < 0) { /* already signalled: the counter is full */ }
    }
};

void reply(int dev, uint64_t unique, int err) {
    const fuse_out_header out{sizeof(fuse_out_header), -err, unique};
    // Fails only when the request was interrupted or the mount is gone.
    if (::write(dev, &out, sizeof out) < 0) { /* nothing left to tell */ }
}

// EPOLLEXCLUSIVE: a request wakes one idle worker, not the whole pool.
UniqueFd worker_epoll(const Session& s) {
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    epoll_event dev{}, stop{};
    dev.events = EPOLLIN | EPOLLEXCLUSIVE;
    dev.data.u32 = 0;
    stop.events = EPOLLIN;
    stop.data.u32 = 1;
    if (!ep || ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, s.dev, &dev) != 0 ||
        ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, s.stop.get(), &stop) != 0)
        return UniqueFd();
    return ep;
}

void work(Session& s) {
    const UniqueFd ep = worker_epoll(s);
    fuse_buf buf{};
    bool ok = ep.get() >= 0;
    while (ok) {
        epoll_event ev{};
        const int n = ::epoll_wait(ep.get(), &ev, 1, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { ok = false; break; }
        if (ev.data.u32 == 1) break;
        const int res = fuse_session_receive_buf(s.se, &buf);
        if (res == -EAGAIN || res == -EINTR) continue;
        if (res <= 0) {  // 0: unmounted (libfuse marked the session exited)
            ok = res == 0;
            break;
        }
        const auto answer = (buf.flags & FUSE_BUF_IS_FD) ? std::nullopt : answer_before_libfuse(buf.mem, buf.size);
        if (answer) {
            fuse_in_header in;
            std::memcpy(&in, buf.mem, sizeof in);
            reply(s.dev, in.unique, *answer);
        } else {
            fuse_session_process_buf(s.se, &buf);
        }
    }
    std::free(buf.mem);
    if (!ok) s.failed = true;
    s.end();
}

}  // namespace

int run_session(fuse* f, unsigned workers) {
    fuse_session* se = fuse_get_session(f);
    Session s{se, fuse_session_fd(se), UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))};
    const int fl = ::fcntl(s.dev, F_GETFL);
    if (!s.stop || fl < 0 || ::fcntl(s.dev, F_SETFL, fl | O_NONBLOCK) != 0) {
        fmt::print(stderr, "nvrfsd: cannot set up the request loop: {}\n", std::strerror(errno));
        return 1;
    }
    if (fuse_start_cleanup_thread(f) != 0) return 1;
    // Workers take no signals: SIGTERM/SIGINT/SIGHUP reach this thread's
    // poll below, whose handler (libfuse's) ends the session.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    std::vector<std::thread> pool;
    for (unsigned i = 0; i < workers; ++i) pool.emplace_back(work, std::ref(s));
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    // A signal taken by another of nvrfsd's threads only sets the flag: the
    // timeout notices it within a second.
    pollfd p{s.stop.get(), POLLIN, 0};
    while (!fuse_session_exited(se) && ::poll(&p, 1, 1000) <= 0) {
    }
    s.end();
    for (auto& t : pool) t.join();
    fuse_stop_cleanup_thread(f);
    return s.failed ? 1 : 0;
}

}  // namespace nvrfs
