#include "base/worker_pool.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace nvrfs;
using namespace std::chrono_literals;

TEST_CASE("parallel_for runs every item exactly once, on more than one thread") {
    WorkerPool pool(2);
    std::vector<std::atomic<int>> hits(500);
    std::mutex mu;
    std::set<std::thread::id> threads;
    pool.parallel_for(hits.size(), [&](size_t k) {
        hits[k]++;
        std::this_thread::sleep_for(100us);
        std::lock_guard lk(mu);
        threads.insert(std::this_thread::get_id());
    });
    for (auto& h : hits) CHECK(h.load() == 1);
    CHECK(threads.size() > 1);
    CHECK(threads.count(std::this_thread::get_id()) == 1);  // the caller works too
}

TEST_CASE("parallel_for rethrows the first exception after every item ran") {
    WorkerPool pool(2);
    std::atomic<int> ran{0};
    CHECK_THROWS_AS(pool.parallel_for(50,
                                      [&](size_t k) {
                                          ran++;
                                          if (k == 7) throw std::runtime_error("item 7");
                                      }),
                    std::runtime_error);
    CHECK(ran.load() == 50);
}

TEST_CASE("parallel_for never waits for a worker busy with another request") {
    WorkerPool pool(1);
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    std::atomic<bool> worker_blocked{false};
    // Another request occupies the only worker until `gate` opens.
    auto other = std::async(std::launch::async, [&] {
        const auto caller = std::this_thread::get_id();
        pool.parallel_for(2, [&](size_t) {
            if (std::this_thread::get_id() == caller) {
                // The caller's item waits until the worker holds the other one.
                while (!worker_blocked) std::this_thread::sleep_for(1ms);
                return;
            }
            worker_blocked = true;
            gate.wait();
        });
    });
    while (!worker_blocked) std::this_thread::sleep_for(1ms);
    std::atomic<int> done{0};
    auto mine = std::async(std::launch::async, [&] { pool.parallel_for(8, [&](size_t) { done++; }); });
    const bool finished = mine.wait_for(5s) == std::future_status::ready;
    release.set_value();
    CHECK(finished);
    CHECK(done.load() == 8);
    other.get();
    mine.get();
}
