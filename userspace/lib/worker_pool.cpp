#include "worker_pool.hpp"

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

void WorkerPool::run_all(const std::vector<size_t>& items, const std::function<void(size_t)>& fn) {
    if (items.empty()) return;
    if (items.size() == 1 || threads_.empty()) {
        for (size_t i : items) fn(i);
        return;
    }
    std::mutex done_mu;
    std::condition_variable done_cv;
    size_t left = items.size() - 1;
    {
        std::lock_guard lk(mu_);
        for (size_t k = 1; k < items.size(); ++k)
            jobs_.emplace_back([&, item = items[k]] {
                fn(item);
                std::lock_guard dl(done_mu);
                if (--left == 0) done_cv.notify_one();
            });
    }
    cv_.notify_all();
    fn(items[0]);
    std::unique_lock dl(done_mu);
    done_cv.wait(dl, [&] { return left == 0; });
}

}  // namespace nvrfs
