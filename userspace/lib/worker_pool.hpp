// worker_pool.hpp — run one task per member at the same time.
//
// Writing the same sealed bytes to two disks one after the other doubles the
// time of every write; the pool lets the calling thread write to one member
// while workers write to the others. The calling thread always takes the
// first task itself, so a pool with no free worker still makes progress.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace nvrfs {

class WorkerPool {
public:
    explicit WorkerPool(size_t workers);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // fn(item) for every item, concurrently; returns when all are done.
    // fn must not throw.
    void run_all(const std::vector<size_t>& items, const std::function<void(size_t)>& fn);

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    bool stop_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace nvrfs
