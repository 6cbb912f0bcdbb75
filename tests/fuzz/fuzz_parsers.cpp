// fuzz_parsers — a seeded mutation fuzzer for every parser that reads what an
// attacker may have written: superblocks, file headers, stored names, audit
// log frames, backup archives and the config file.
//
//   fuzz_parsers CORPUS_DIR [SECONDS] [SEED]     fuzz every target
//   fuzz_parsers --make-seeds CORPUS_DIR         write the seed corpus
//
// Each target's seeds are in CORPUS_DIR/<target>/. Every round takes a seed,
// applies random mutations (bit flips, byte and length changes, cuts,
// duplicated and spliced ranges) and parses the result. A parser may refuse
// input only with nvrfs::Error; any other exception, a crash or (under
// `make asan`) a memory error is a finding: the input is saved to
// CORPUS_DIR/crash-<target>-<n> and the program exits 1. Targets that need
// keys use fixed test keys, and archives are re-sealed after mutation so the
// parser behind the authentication is reached too.
#include "audit/audit_log.hpp"
#include "transfer/backup_archive.hpp"
#include "store/chunk_layout.hpp"
#include "admin/config.hpp"
#include "base/crypto.hpp"
#include "base/error.hpp"
#include "store/keys.hpp"
#include "store/names.hpp"
#include "store/recovery.hpp"
#include "store/superblock.hpp"
#include "../support/archive_forge.hpp"

#include <chrono>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace nvrfs;
namespace fs = std::filesystem;

namespace {

const SecretKey& master() {
    static const SecretKey k(Bytes(32, 0x42));
    return k;
}
const KeySet& keys() {
    static const KeySet k = KeySet::derive(master());
    return k;
}
const Uuid kSet{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
const char* kPass = "fuzzing passphrase";
std::string scratch_dir;

std::string write_tmp(const std::string& name, const std::string& data) {
    const std::string p = scratch_dir + "/" + name;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
    return p;
}

// An archive whose records are sealed under kPass from a plaintext stream:
// a mutated stream is re-sealed, so the entry parser sees it.
std::string seal_archive(const std::string& stream) {
    static const test::ArchiveForge forge(kPass, kBackupMinIterations, true);
    return forge.seal(stream);
}

std::string entry(char type, const std::string& json, const std::string& data = "") { return test::archive_entry(type, json, data); }

struct Target {
    const char* name;
    std::function<std::vector<std::string>()> seeds;
    std::function<void(const std::string&)> parse;  // may throw Error only
};

std::vector<Target> targets() {
    return {
        {"superblock",
         [] {
             Superblock sb;
             sb.set_uuid = kSet;
             sb.member_uuid = new_uuid();
             sb.events = 7;
             sb.wrap_master(master(), SecretKey(Bytes(32, 1)));
             auto b = sb.encode(keys());
             return std::vector<std::string>{std::string(b.begin(), b.end())};
         },
         [](const std::string& in) {
             const Superblock sb = Superblock::decode(as_bytes(in), "fuzz");
             (void)sb.mac_ok(keys());
             try {
                 (void)sb.unwrap_master(SecretKey(Bytes(32, 1)), "fuzz");
             } catch (const Error&) {
             }
         }},
        {"recovery",
         [] {
             auto b = RecoveryWrap::make(master(), "fuzz passphrase", kSet, kRecoveryMinIterations).encode();
             return std::vector<std::string>{std::string(b.begin(), b.end())};
         },
         // decode only: each unwrap is 600 000 PBKDF2 rounds, and decode is
         // what stands between a hostile record and that work.
         [](const std::string& in) { (void)RecoveryWrap::decode(as_bytes(in), "fuzz"); }},
        {"file_header",
         [] {
             FileHeader h;
             random_bytes(h.id);
             h.generation = 3;
             auto b = h.encode();
             return std::vector<std::string>{std::string(b.begin(), b.end())};
         },
         [](const std::string& in) { (void)FileHeader::decode(as_bytes(in)); }},
        {"name",
         [] {
             NameCodec c(keys().names);
             DirIv iv{};
             return std::vector<std::string>{c.encrypt(iv, "front-door-2026-11-26_21-00-00.mp4"), c.encrypt(iv, std::string(170, 'n'))};
         },
         [](const std::string& in) {
             NameCodec c(keys().names);
             DirIv iv{};
             (void)c.decrypt(iv, in);
         }},
        {"audit_log",
         [] {
             // A real log: frames appended by the writer's own sealing path.
             return std::vector<std::string>{};
         },
         [](const std::string& in) {
             UniqueFd fd(::open(write_tmp("audit.log", in).c_str(), O_RDONLY));
             size_t n = 0;
             (void)read_audit_log(fd.get(), keys(), kSet, [&](nlohmann::json&&) { ++n; });
         }},
        {"archive_stream",
         [] {
             const std::string d = "recording bytes";
             const std::string head = R"({"path":"cam1/seg.mp4","size":15,"mtime":1700000000,"mode":420})";
             nlohmann::json m = {{"complete", true},
                                 {"files", {{{"path", "cam1/seg.mp4"}, {"size", 15}, {"sha256", hex(sha256(as_bytes(d)))}}}}};
             return std::vector<std::string>{entry('F', head, d) + entry('M', m.dump())};
         },
         [](const std::string& in) {
             const std::string a = write_tmp("a.nvrbak", seal_archive(in));
             fs::remove_all(scratch_dir + "/restore");
             (void)read_backup(a, kPass, scratch_dir + "/restore");
         }},
        {"archive_raw",
         [] { return std::vector<std::string>{}; },
         [](const std::string& in) { (void)read_backup(write_tmp("r.nvrbak", in), kPass); }},
        {"config",
         [] {
             return std::vector<std::string>{
                 "member = /srv/m1\nmember = /srv/m2\nmin_free = 10%\nrecycle = yes\ncheck_interval = 5\n"
                 "alert_hook = logger nvrfs\nrebuild_max_rate = 50M\n# comment\n"};
         },
         [](const std::string& in) {
             const std::string p = write_tmp("nvrfs.conf", in);
             ::chmod(p.c_str(), 0644);
             Config c;
             c.load_file(p);
             (void)c.min_free();
         }},
    };
}

// Seeds that need a writer of their own (the audit log, a raw archive).
void extra_seeds(const std::string& corpus) {
    {
        // Audit frames exactly as AuditLog writes them: len ‖ nonce ‖ ct ‖ tag ‖ len.
        std::string log, prev;
        for (int i = 1; i <= 3; ++i) {
            nlohmann::json r = {{"event", "write"}, {"seq", i}, {"prev", prev}, {"path", "/cam1/a.mp4"}, {"bytes", 4096}};
            const std::string mac = hex(hmac_sha256(keys().audit_mac, as_bytes(r.dump())));
            r["mac"] = mac;
            prev = mac;
            const std::string plain = r.dump();
            const uint32_t len = static_cast<uint32_t>(kGcmNonce + plain.size() + kGcmTag);
            Bytes f(4 + len + 4);
            for (int k = 0; k < 4; ++k) f[k] = f[4 + len + k] = static_cast<uint8_t>(len >> (24 - 8 * k));
            random_bytes({f.data() + 4, kGcmNonce});
            gcm_seal(keys().audit_enc, f.data() + 4, ByteView(kSet.data(), kSet.size()), as_bytes(plain), f.data() + 4 + kGcmNonce,
                     f.data() + 4 + kGcmNonce + plain.size());
            log.append(reinterpret_cast<const char*>(f.data()), f.size());
        }
        fs::create_directories(corpus + "/audit_log");
        std::ofstream(corpus + "/audit_log/seed-0", std::ios::binary) << log;
    }
    {
        const std::string d = "x";
        nlohmann::json m = {{"complete", true}, {"files", {{{"path", "a"}, {"size", 1}, {"sha256", hex(sha256(as_bytes(d)))}}}}};
        fs::create_directories(corpus + "/archive_raw");
        std::ofstream(corpus + "/archive_raw/seed-0", std::ios::binary)
            << seal_archive(entry('F', R"({"path":"a","size":1,"mtime":0,"mode":420})", d) + entry('M', m.dump()));
    }
}

std::vector<std::string> load_dir(const std::string& dir) {
    std::vector<std::string> out;
    if (!fs::is_directory(dir)) return out;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& p : files) {
        std::ifstream in(p, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        out.push_back(ss.str());
    }
    return out;
}

std::string mutate(std::string s, const std::vector<std::string>& pool, std::mt19937_64& rng) {
    auto pick = [&](size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; };
    const int rounds = 1 + static_cast<int>(rng() % 6);
    for (int r = 0; r < rounds; ++r) {
        switch (rng() % 9) {
            case 0: if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1 << (rng() % 8)); break;
            case 1: if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng()); break;
            case 2: if (!s.empty()) s.resize(pick(s.size())); break;
            case 3: s.insert(pick(s.size() + 1), std::string(1 + pick(16), static_cast<char>(rng()))); break;
            case 4: if (s.size() > 1) { const size_t a = pick(s.size()), n = 1 + pick(s.size() - a); s.erase(a, n); } break;
            case 5: if (!s.empty()) { const size_t a = pick(s.size()), n = 1 + pick(std::min<size_t>(64, s.size() - a)); s.insert(pick(s.size()), s.substr(a, n)); } break;
            case 6: {  // interesting numbers in a 4-byte field
                static const uint32_t v[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fffffff, 0x80000000, 0xffffffff, 64 * 1024, 1 << 20};
                if (s.size() >= 4) {
                    const size_t a = pick(s.size() - 3);
                    const uint32_t x = v[pick(std::size(v))];
                    for (int k = 0; k < 4; ++k) s[a + k] = static_cast<char>(x >> (24 - 8 * k));
                }
                break;
            }
            case 7: if (!pool.empty()) { const auto& o = pool[pick(pool.size())]; if (!o.empty()) { const size_t a = pick(o.size()); s.insert(pick(s.size() + 1), o.substr(a, 1 + pick(o.size() - a))); } } break;
            case 8: {  // JSON-aware: swap a value for one of another type
                static const char* tok[] = {"\"x\"", "-1", "1e999", "[]", "{}", "null", "true", "18446744073709551616", "\"\\u0000\""};
                const auto colon = s.find(':', pick(s.size()));
                if (colon != std::string::npos) {
                    auto end = s.find_first_of(",}", colon);
                    if (end == std::string::npos) end = s.size();
                    s.replace(colon + 1, end - colon - 1, tok[pick(std::size(tok))]);
                }
                break;
            }
        }
    }
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 3 && std::string(argv[1]) == "--make-seeds") {
        const std::string corpus = argv[2];
        for (const auto& t : targets()) {
            const auto seeds = t.seeds();
            fs::create_directories(corpus + "/" + t.name);
            for (size_t i = 0; i < seeds.size(); ++i)
                std::ofstream(corpus + "/" + t.name + "/seed-" + std::to_string(i), std::ios::binary) << seeds[i];
        }
        extra_seeds(corpus);
        return 0;
    }
    if (argc < 2) {
        fmt::print(stderr, "usage: fuzz_parsers CORPUS_DIR [SECONDS] [SEED] | --make-seeds CORPUS_DIR\n");
        return 2;
    }
    const std::string corpus = argv[1];
    const double seconds = argc > 2 ? std::stod(argv[2]) : 30;
    const uint64_t seed = argc > 3 ? std::stoull(argv[3]) : static_cast<uint64_t>(::time(nullptr));
    char tmpl[] = "/tmp/nvrfs-fuzz-XXXXXX";
    scratch_dir = ::mkdtemp(tmpl);
    std::mt19937_64 rng(seed);
    const auto ts = targets();
    const auto per_target = std::chrono::duration<double>(seconds / static_cast<double>(ts.size()));
    uint64_t total = 0;
    int rc = 0;
    for (const auto& t : ts) {
        const auto pool = load_dir(corpus + "/" + t.name);
        if (pool.empty()) {
            fmt::print(stderr, "{}: no seeds in {}/{} (run --make-seeds)\n", t.name, corpus, t.name);
            rc = 1;
            continue;
        }
        uint64_t runs = 0, refused = 0;
        const auto end = std::chrono::steady_clock::now() + per_target;
        while (std::chrono::steady_clock::now() < end) {
            const std::string in = runs < pool.size() ? pool[runs] : mutate(pool[runs % pool.size()], pool, rng);
            ++runs;
            try {
                t.parse(in);
            } catch (const Error&) {
                ++refused;  // a clear refusal is the expected answer to bad input
            } catch (const std::exception& e) {
                const std::string p = fmt::format("{}/crash-{}-{}", corpus, t.name, runs);
                std::ofstream(p, std::ios::binary) << in;
                fmt::print(stderr, "{}: input {} threw {} (\"{}\") instead of nvrfs::Error; saved to {}\n", t.name, runs,
                           typeid(e).name(), e.what(), p);
                rc = 1;
                break;
            }
        }
        fmt::print("{:<15} {:>8} inputs, {:>8} refused\n", t.name, runs, refused);
        total += runs;
    }
    fs::remove_all(scratch_dir);
    fmt::print("fuzz: {} inputs in {:.0f} s (seed {}): {}\n", total, seconds, seed, rc ? "FINDINGS" : "no findings");
    return rc;
}
