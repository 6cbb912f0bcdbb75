// evidence.hpp — privacy masks and signed evidence packages (5.5.1.2).
//
// A mask is a list of polygons in relative coordinates (0..1 of the frame's
// width and height, so it survives a change of resolution), filled solid in
// every exported frame: a blur can be undone, a solid fill cannot. Masks live
// in `<mask_dir>/<camera>.json` (docs/export.md has the format).
//
// An evidence package is a directory: the clips, `manifest.json` (what was
// exported, from which recordings, with which mask, and the audit records
// behind it), `SHA256SUMS` (clips and manifest), and Ed25519 signatures over
// both by the set's export key, with the public key beside them. A receiver
// checks it with openssl and sha256sum alone. The export key is derived from
// the set's master key (never stored), so it is bound to the host key like
// everything else.
#pragma once
#include "base/crypto.hpp"

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

namespace nvrfs {

inline constexpr const char* kNvrfsVersion = "0.1.0";

struct Mask {
    using Point = std::pair<double, double>;
    std::vector<std::vector<Point>> polygons;  // each >= 3 points, coordinates in [0, 1]
    std::array<uint8_t, 3> fill{0, 0, 0};     // RGB

    // Throws Error(EINVAL) naming `where` and what is wrong.
    static Mask parse(const std::string& json_text, const std::string& where);
    // "x,y,w,h" in relative coordinates: a rectangle as a polygon.
    static std::vector<Point> rect(const std::string& spec);
    std::string json() const;  // canonical form (what is hashed and audited)
    // An RGBA PAM image of w x h: the fill colour inside any polygon, fully
    // transparent elsewhere.
    std::string pam(int w, int h) const;
    // The same cut to the smallest box holding every filled pixel, and where
    // that box sits in the frame: what ffmpeg overlays on every frame (a
    // whole-frame overlay costs the export half its speed).
    struct Box {
        std::string pam;
        int x = 0, y = 0;
    };
    Box pam_box(int w, int h) const;
};

// The set's export key: Ed25519 (crypto.hpp) from `KeySet::export_sign`.
using ExportKey = Ed25519Key;

// Check a package directory: signatures, every file's size and hash, no
// file unaccounted for. Returns the problems found (empty: it verifies).
// `pinned_fingerprint`: when not empty, the key must be this one.
std::vector<std::string> verify_package(const std::string& dir, const std::string& pinned_fingerprint = "");

// SHA-256 (hex) of a file, which must not be a link; its size into `size`.
std::string sha256_file(const std::string& path, uint64_t* size = nullptr);

}  // namespace nvrfs
