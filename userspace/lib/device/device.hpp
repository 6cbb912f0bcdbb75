// device.hpp — external backup devices: identify, authorize, scan, mount.
//
// Promises (IoT-1001-3 5.1.5.1):
//  * identify() names a device from its own metadata (libblkid: file system,
//    UUID, label, size; libcryptsetup: LUKS version and UUID) and never mounts it;
//  * a device is used only if an allowlist entry matches its file-system UUID
//    (and its serial, when the entry names one), in the spirit of USBGuard;
//  * scan_tree() checks every file with libclamav before the device is used;
//  * DeviceMount mounts nosuid,nodev,noexec (read-only for the scan) and always
//    unmounts, even on errors.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nvrfs {

struct DeviceInfo {
    std::string devnode, fs_type, uuid, label, serial, bus;
    uint64_t size = 0;
    bool luks = false;
    std::string luks_version;
};

// Throws Error(ENODEV...) with a clear message for missing or unreadable devices.
DeviceInfo identify_device(const std::string& devnode, const std::string& serial = "", const std::string& bus = "");

struct AllowEntry {
    std::string uuid, serial, note;
};

class DeviceAllowlist {
public:
    explicit DeviceAllowlist(std::string path);  // a missing file is an empty list
    const std::vector<AllowEntry>& entries() const { return entries_; }
    const AllowEntry* match(const DeviceInfo& d) const;
    void allow(const AllowEntry& e);
    bool deny(const std::string& uuid);
    void save() const;

private:
    std::string path_;
    std::vector<AllowEntry> entries_;
};

struct ScanResult {
    uint64_t files = 0, signatures = 0;
    std::vector<std::pair<std::string, std::string>> infected;  // file, signature name
};

// Scans every regular file below `dir` with the ClamAV signatures in `db_dir`.
// Throws Error when the engine cannot start (no or bad signature database).
ScanResult scan_tree(const std::string& dir, const std::string& db_dir);

class DeviceMount {
public:
    DeviceMount(const DeviceInfo& dev, bool writable);
    ~DeviceMount();
    DeviceMount(const DeviceMount&) = delete;
    DeviceMount& operator=(const DeviceMount&) = delete;
    const std::string& path() const { return dir_; }

private:
    std::string dir_;
};

}  // namespace nvrfs
