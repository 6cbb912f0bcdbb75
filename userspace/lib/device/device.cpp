#include "device/device.hpp"

#include "base/error.hpp"

#include <blkid/blkid.h>
#include <cerrno>
#include <clamav.h>
#include <cstring>
#include <dirent.h>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <libcryptsetup.h>
#include <memory>
#include <mutex>
#include <sstream>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

namespace nvrfs {

DeviceInfo identify_device(const std::string& devnode, const std::string& serial, const std::string& bus) {
    struct stat st {};
    if (::stat(devnode.c_str(), &st) < 0) throw_errno(errno, devnode, "cannot identify device");
    if (!S_ISBLK(st.st_mode)) throw Error(ENOTBLK, devnode, fmt::format("{} is not a block device", devnode));
    std::unique_ptr<blkid_struct_probe, decltype(&blkid_free_probe)> pr(blkid_new_probe_from_filename(devnode.c_str()), blkid_free_probe);
    if (!pr) throw_errno(errno ? errno : EIO, devnode, "cannot read device");
    blkid_probe_enable_superblocks(pr.get(), 1);
    blkid_probe_set_superblocks_flags(pr.get(), BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE);
    DeviceInfo d;
    d.devnode = devnode;
    d.serial = serial;
    d.bus = bus;
    d.size = static_cast<uint64_t>(blkid_probe_get_size(pr.get()));
    const int rc = blkid_do_safeprobe(pr.get());
    if (rc < 0) throw Error(EIO, devnode, fmt::format("{}: cannot read its metadata (unreadable or damaged device)", devnode));
    if (rc == 1) throw Error(EMEDIUMTYPE, devnode, fmt::format("{}: no file system found; it will not be used", devnode));
    if (rc == -2) throw Error(EMEDIUMTYPE, devnode, fmt::format("{}: more than one file system signature; it will not be used", devnode));
    auto value = [&](const char* name) -> std::string {
        const char* data = nullptr;
        size_t len = 0;
        if (blkid_probe_lookup_value(pr.get(), name, &data, &len) == 0 && data) return std::string(data, strnlen(data, len));
        return "";
    };
    d.fs_type = value("TYPE");
    d.uuid = value("UUID");
    d.label = value("LABEL");
    if (d.fs_type == "crypto_LUKS") {
        crypt_device* cd = nullptr;
        if (crypt_init(&cd, devnode.c_str()) == 0) {
            if (crypt_load(cd, CRYPT_LUKS, nullptr) == 0) {
                d.luks = true;
                d.luks_version = crypt_get_type(cd) ? crypt_get_type(cd) : "LUKS";
                if (const char* u = crypt_get_uuid(cd)) d.uuid = u;
            }
            crypt_free(cd);
        }
    }
    return d;
}

DeviceAllowlist::DeviceAllowlist(std::string path) : path_(std::move(path)) {
    std::ifstream in(path_);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        std::string note;
        if (auto h = line.find('#'); h != std::string::npos) {
            note = line.substr(h + 1);
            line = line.substr(0, h);
        }
        std::istringstream ss(line);
        std::string word;
        AllowEntry e;
        e.note = note.empty() ? "" : note.substr(note.find_first_not_of(' ') == std::string::npos ? 0 : note.find_first_not_of(' '));
        while (ss >> word) {
            if (word.rfind("uuid=", 0) == 0) e.uuid = word.substr(5);
            else if (word.rfind("serial=", 0) == 0) e.serial = word.substr(7);
            else if (word != "allow") throw Error(EINVAL, path_, fmt::format("{}:{}: unknown word '{}'", path_, n, word));
        }
        if (!e.uuid.empty()) entries_.push_back(e);
    }
}

const AllowEntry* DeviceAllowlist::match(const DeviceInfo& d) const {
    for (const auto& e : entries_)
        if (!d.uuid.empty() && e.uuid == d.uuid && (e.serial.empty() || e.serial == d.serial)) return &e;
    return nullptr;
}

void DeviceAllowlist::allow(const AllowEntry& e) {
    deny(e.uuid);
    entries_.push_back(e);
}

bool DeviceAllowlist::deny(const std::string& uuid) {
    const auto n = entries_.size();
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(), [&](const AllowEntry& e) { return e.uuid == uuid; }), entries_.end());
    return entries_.size() != n;
}

void DeviceAllowlist::save() const {
    const std::string tmp = path_ + ".tmp";
    {
        std::ofstream out(tmp);
        out << "# nvrfs backup devices allowed (nvrctl device allow|deny); one per line\n";
        for (const auto& e : entries_)
            out << "allow uuid=" << e.uuid << (e.serial.empty() ? "" : " serial=" + e.serial)
                << (e.note.empty() ? "" : "  # " + e.note) << "\n";
        if (!out) throw Error(EIO, tmp, "cannot write " + tmp);
    }
    if (::rename(tmp.c_str(), path_.c_str()) < 0) throw_errno(errno, path_, "cannot save allowlist");
}

namespace {
std::once_flag clam_once;
}

ScanResult scan_tree(const std::string& dir, const std::string& db_dir) {
    cl_error_t init = CL_SUCCESS;
    std::call_once(clam_once, [&] { init = cl_init(CL_INIT_DEFAULT); });
    if (init != CL_SUCCESS) throw Error(EIO, db_dir, fmt::format("cannot start ClamAV: {}", cl_strerror(init)));
    std::unique_ptr<cl_engine, decltype(&cl_engine_free)> engine(cl_engine_new(), cl_engine_free);
    if (!engine) throw Error(ENOMEM, db_dir, "cannot create a ClamAV engine");
    ScanResult r;
    unsigned int sigs = 0;
    if (cl_error_t e = cl_load(db_dir.c_str(), engine.get(), &sigs, CL_DB_STDOPT); e != CL_SUCCESS)
        throw Error(EIO, db_dir, fmt::format("cannot load ClamAV signatures from {}: {}", db_dir, cl_strerror(e)));
    if (sigs == 0) throw Error(EIO, db_dir, fmt::format("no ClamAV signatures in {}: refusing to call a device clean", db_dir));
    if (cl_error_t e = cl_engine_compile(engine.get()); e != CL_SUCCESS)
        throw Error(EIO, db_dir, fmt::format("cannot compile ClamAV signatures: {}", cl_strerror(e)));
    r.signatures = sigs;
    cl_scan_options opts{};
    opts.parse = ~0u;  // look inside archives, documents, executables
    std::function<void(const std::string&)> walk = [&](const std::string& d) {
        std::unique_ptr<DIR, int (*)(DIR*)> dh(::opendir(d.c_str()), ::closedir);
        if (!dh) throw_errno(errno, d, "cannot read");
        while (dirent* e = ::readdir(dh.get())) {
            const std::string n = e->d_name;
            if (n == "." || n == "..") continue;
            const std::string p = d + "/" + n;
            struct stat st {};
            if (::lstat(p.c_str(), &st) < 0) continue;
            if (S_ISDIR(st.st_mode)) {
                walk(p);
            } else if (S_ISREG(st.st_mode)) {
                const char* virname = nullptr;
                unsigned long scanned = 0;
                const cl_error_t rc = cl_scanfile(p.c_str(), &virname, &scanned, engine.get(), &opts);
                r.files++;
                if (rc == CL_VIRUS) r.infected.emplace_back(p, virname ? virname : "?");
                else if (rc != CL_CLEAN)
                    r.infected.emplace_back(p, fmt::format("unscannable ({})", cl_strerror(rc)));  // fail closed
            }
        }
    };
    walk(dir);
    return r;
}

DeviceMount::DeviceMount(const DeviceInfo& dev, bool writable) {
    if (dev.luks) throw Error(EMEDIUMTYPE, dev.devnode, fmt::format("{} is an encrypted LUKS volume ({}); unlock it first", dev.devnode, dev.luks_version));
    ::mkdir("/run/nvrfs", 0700);
    char tmpl[] = "/run/nvrfs/device.XXXXXX";
    if (!::mkdtemp(tmpl)) throw_errno(errno, "/run/nvrfs", "cannot create a mount point");
    dir_ = tmpl;
    const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (writable ? 0 : MS_RDONLY);
    if (::mount(dev.devnode.c_str(), dir_.c_str(), dev.fs_type.c_str(), flags, nullptr) < 0) {
        const int e = errno;
        ::rmdir(dir_.c_str());
        throw Error(e, dev.devnode, fmt::format("cannot mount {} ({}): {}", dev.devnode, dev.fs_type, std::strerror(e)));
    }
}

DeviceMount::~DeviceMount() {
    ::sync();
    if (::umount2(dir_.c_str(), 0) < 0) ::umount2(dir_.c_str(), MNT_DETACH);
    ::rmdir(dir_.c_str());
}

}  // namespace nvrfs
