// test_delay.hpp — race windows the integration tests widen on purpose.
//
// A variable named here holds milliseconds to sleep at one point of a race
// the tests must be able to lose (t32). Unset, it costs one branch; the value
// is read once, when the caller's static is initialised.
#pragma once
#include <chrono>
#include <cstdlib>
#include <thread>

namespace nvrfs {

inline int env_ms(const char* var) {
    const char* v = std::getenv(var);
    return v ? std::atoi(v) : 0;
}

inline void test_delay(int ms) {
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

}  // namespace nvrfs
