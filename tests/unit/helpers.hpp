// Small helpers shared by the unit tests.
#pragma once
#include "base/error.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace nvrfs::test {

inline std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A fresh directory under /tmp, removed with everything in it.
struct TempDir {
    std::string path;
    explicit TempDir(const char* tag = "nvrfs-unit") {
        std::string t = std::string("/tmp/") + tag + "-XXXXXX";
        path = ::mkdtemp(t.data());
    }
    ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

// The errno of the Error `f` throws, or 0 when it returns.
template <class F>
int error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.code();
    }
    return 0;
}

}  // namespace nvrfs::test
