#include "base/worker_pool.hpp"

#include <atomic>
#include <exception>
#include <memory>

namespace nvrfs {

WorkerPool::WorkerPool(size_t workers) {
    for (size_t i = 0; i < workers; ++i)
        threads_.emplace_back([this] {
            for (;;) {
                std::function<void()> job;
                {
                    std::unique_lock lk(mu_);
                    cv_.wait(lk, [this] { return stop_ || !jobs_.empty(); });
                    if (stop_ && jobs_.empty()) return;
                    job = std::move(jobs_.front());
                    jobs_.pop_front();
                }
                job();
            }
        });
}

WorkerPool::~WorkerPool() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

namespace {
// Shared with helpers that may start after the caller has returned: they find
// every item claimed and touch nothing else (fn lives on the caller's stack,
// and the caller waits for every claimed item to finish).
struct Loop {
    size_t n = 0;
    const std::function<void(size_t)>* fn = nullptr;
    std::atomic<size_t> next{0}, done{0};
    std::mutex mu;
    std::condition_variable cv;
    std::exception_ptr error;  // the first item that threw; guarded by mu

    void work() {
        for (size_t k; (k = next.fetch_add(1)) < n;) {
            try {
                (*fn)(k);
            } catch (...) {
                std::lock_guard lk(mu);
                if (!error) error = std::current_exception();
            }
            if (done.fetch_add(1) + 1 == n) {
                std::lock_guard lk(mu);
                cv.notify_all();
            }
        }
    }
};
}  // namespace

void WorkerPool::parallel_for(size_t n, const std::function<void(size_t)>& fn) {
    if (n == 0) return;
    if (n == 1 || threads_.empty()) {
        for (size_t k = 0; k < n; ++k) fn(k);
        return;
    }
    auto loop = std::make_shared<Loop>();
    loop->n = n;
    loop->fn = &fn;
    const size_t helpers = std::min(n - 1, threads_.size());
    {
        std::lock_guard lk(mu_);
        for (size_t h = 0; h < helpers; ++h) jobs_.emplace_back([loop] { loop->work(); });
    }
    if (helpers == 1) cv_.notify_one();
    else cv_.notify_all();
    loop->work();
    std::unique_lock lk(loop->mu);
    loop->cv.wait(lk, [&] { return loop->done.load() == n; });
    if (loop->error) std::rethrow_exception(loop->error);
}

}  // namespace nvrfs
