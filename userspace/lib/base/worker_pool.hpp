// worker_pool.hpp — spread one request's work over the machine's cores.
//
// A 1 MiB write is sixteen chunks to seal and write to every member; one
// thread doing all of it leaves the other cores idle while the writer waits.
// parallel_for() lets free workers take pieces of the request; the calling
// thread always works too and never waits for a worker that has not started,
// so a pool busy with other requests costs nothing but the hand-off attempt.
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

    // fn(k) for every k in [0, n), by the caller and any free workers at once;
    // returns when all are done, rethrowing the first exception an item threw
    // (the other items still run).
    void parallel_for(size_t n, const std::function<void(size_t)>& fn);

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    bool stop_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace nvrfs
