// Small helpers shared by the unit tests.
#pragma once
#include <fstream>
#include <sstream>
#include <string>

namespace nvrfs::test {

inline std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace nvrfs::test
