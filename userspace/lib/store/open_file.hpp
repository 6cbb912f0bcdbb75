// open_file.hpp — one entry per open stored file, shared by all its handles.
//
// Entries are keyed by the file id from the header, so two opens of one file
// share one lock and one cached state however the file was named or renamed.
// Lock rules: readers take `mu` shared, writers and truncation exclusive. A
// reader may repair a bad chunk under the shared lock: every reader would
// write the same authentic bytes, and no writer can run at the same time.
#pragma once
#include "base/caller.hpp"
#include "store/chunk_layout.hpp"
#include "base/crypto.hpp"
#include "base/io.hpp"
#include "store/mirror_set.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

namespace nvrfs {

struct OpenFile {
    FileHeader hdr;              // generation changes under exclusive mu
    SecretKey key;               // per-file key
    std::vector<UniqueFd> fds;   // by member index; invalid where absent
    std::shared_mutex mu;
    std::atomic<uint64_t> size{0};  // plaintext size
    // The plaintext of the last chunk, so appends need no read and decrypt.
    struct {
        bool valid = false;
        uint64_t index = 0;
        Bytes plain;
    } tail;                      // guarded by exclusive mu
    // Stored bytes below this offset have had their write-out to the members'
    // disks started (sync_file_range); guarded by exclusive mu.
    uint64_t writeout_from = 0;
    // Below this offset the members' pages were let go after their write-out
    // (start_writeout, volume_data.cpp); guarded by exclusive mu.
    uint64_t dropped_to = 0;
    // Stored bytes below this offset are allocated on the members: space is
    // reserved ahead of the writes (fallocate) and what is left past the end
    // is given back when a write session closes; guarded by exclusive mu.
    uint64_t reserved_to = 0;
    // Some copy holds zero-form chunks (holes): writes inside the file
    // allocate first; guarded by exclusive mu.
    bool sparse = false;
    ReadAffinity reads;          // which member serves this file's reads
    // Raised by every change of the stored bytes (the archive tier moves a
    // file only if nothing changed it while it was uploaded).
    std::atomic<uint64_t> changes{0};
    int refs = 0;                // guarded by the table's mutex
};

// One open() of a file: what the audit record of the write session needs.
struct Handle {
    std::shared_ptr<OpenFile> file;
    std::string path;  // as opened
    bool writable = false;
    Caller who;        // captured at open: release() has no caller context
    uint64_t bytes_written = 0;
    int first_error = 0;
    // Reads in order through this handle (stored offsets): the furthest end
    // of the current run, and from where the members' pages are still kept.
    // Several reads of one handle run at once (the kernel's read-ahead).
    std::atomic<uint64_t> read_next{0}, read_dropped{0};
    std::mutex stats_mu;  // bytes_written/first_error: one handle may write from several threads
};

class OpenFileTable {
public:
    // Returns the existing entry for this id or installs `fresh`.
    std::shared_ptr<OpenFile> acquire(const FileId& id, std::shared_ptr<OpenFile> fresh);
    void release(const std::shared_ptr<OpenFile>& f);

private:
    std::mutex mu_;
    std::map<FileId, std::shared_ptr<OpenFile>> files_;
};

}  // namespace nvrfs
