// `nvrctl VERB [SUB] --help`: each verb's and sub-verb's own synopsis,
// options, an example and its exit statuses. Kept to nvrctl(8): t09 checks
// that every verb and sub-verb answers and that every option shown here is
// documented there.
#include "cli.hpp"

#include <fmt/format.h>
#include <string>
#include <utility>
#include <vector>

namespace nvrfs::cli {
namespace {

struct HelpEntry {
    std::string words;  // "member fail"
    std::vector<const char*> usage;
    const char* about;
    std::vector<std::pair<const char*, const char*>> options;
    const char* example;
    const char* exits;
    bool json = false;
};

const char* const kExitsDefault = "0 done; 1 the action failed; 2 usage error";

const std::vector<HelpEntry>& entries() {
    static const std::vector<HelpEntry> e = {
        {"init", {"init --member DIR --member DIR [--spare DIR] [--host-key F] [--config F|--no-config] [--min-free X] [--alert-hook CMD] [--control-socket P] [--tpm [--tpm-tcti T] [--pcrs LIST]] [--recovery-passphrase-file F]"},
         "Make empty directories the members of a new set (RAID 1 over two or more), wrap the set's keys under the host key "
         "(created 0600 if missing) and write the configuration.",
         {{"--member DIR", "a member (at least twice; empty directories)"}, {"--spare DIR", "a hot spare"},
          {"--host-key F", "the host key (default /etc/nvrfs/host.key)"}, {"--no-config", "write no configuration file"},
          {"--min-free X", "free-space threshold, e.g. 10% or 20G"}, {"--alert-hook CMD", "program run for every alert"},
          {"--control-socket P", "the daemon's control socket"}, {"--tpm", "seal the host key in the TPM (no key file remains)"},
          {"--tpm-tcti T", "how to reach the TPM (default device:/dev/tpmrm0)"}, {"--pcrs LIST", "PCRs the sealed key is bound to (default 7)"},
          {"--recovery-passphrase-file F", "also create a recovery key (nvrctl key recovery create)"}},
         "nvrctl init --member /srv/disk1 --member /srv/disk2 --spare /srv/disk3", "0 the set was made; 1 a member is not empty or cannot be written; 2 usage error"},
        {"status", {"status [--json]"},
         "The set's state (clean, degraded, rebuilding), members and spares, rebuild and scrub progress, free space, the host's "
         "record of the set and unacknowledged alerts; read from the superblocks when no daemon runs.",
         {}, "nvrctl status --json", "0 the set is clean; 1 it is not (degraded, rebuilding, stale member); 2 usage error", true},
        {"metrics", {"metrics"},
         "The running set's state in the Prometheus text exposition format (nvrfs_* series); nvrfsd writes the same to "
         "metrics_textfile every check_interval.",
         {}, "nvrctl metrics > /var/lib/prometheus/node-exporter/nvrfs.prom", "0 printed; 1 no daemon runs for this set; 2 usage error"},
        {"member", {"member fail|remove|add DIR", "member replace OLD NEW"},
         "Take a member out of service, remove it, add one (rebuilt online), or replace one by another. Sub-verbs: fail, remove, add, replace.",
         {}, "nvrctl member replace /srv/disk2 /srv/disk4", kExitsDefault},
        {"member fail", {"member fail DIR"}, "Mark member DIR failed: reads and writes stop using it, also after a restart, until member add takes it back; a spare, if any, is rebuilt.",
         {}, "nvrctl member fail /srv/disk2", kExitsDefault},
        {"member remove", {"member remove DIR"}, "Remove a failed member from the set.", {}, "nvrctl member remove /srv/disk2", kExitsDefault},
        {"member add", {"member add DIR"}, "Add an empty directory as a member, or take a failed one back; it is rebuilt online while recording goes on.",
         {}, "nvrctl member add /srv/disk4", kExitsDefault},
        {"member replace", {"member replace OLD NEW"}, "Rebuild NEW from the other members, then retire OLD.",
         {}, "nvrctl member replace /srv/disk2 /srv/disk4", kExitsDefault},
        {"spare", {"spare add|remove DIR"}, "Hot spares, promoted and rebuilt when a member fails. Sub-verbs: add, remove.",
         {}, "nvrctl spare add /srv/disk3", kExitsDefault},
        {"spare add", {"spare add DIR"}, "Add an empty directory as a hot spare.", {}, "nvrctl spare add /srv/disk3", kExitsDefault},
        {"spare remove", {"spare remove DIR"}, "Remove a hot spare.", {}, "nvrctl spare remove /srv/disk3", kExitsDefault},
        {"set", {"set accept-rollback"}, "Settings of the set that are not configuration. Sub-verbs: accept-rollback.",
         {}, "nvrctl set accept-rollback", kExitsDefault},
        {"set accept-rollback", {"set accept-rollback"},
         "Let the next mount take members older than this host's record of them (restored on purpose); the mount records it "
         "in the audit log and raises RollbackAccepted.",
         {}, "nvrctl set accept-rollback && systemctl restart nvrfsd", kExitsDefault},
        {"key", {"key recovery create|remove [--passphrase-file F] [--iterations N]", "key recover --passphrase-file F --tpm|--host-key NEWFILE",
                 "key seal --tpm [--pcrs LIST|none]", "key rotate"},
         "The recovery key: the master key wrapped a second time under a passphrase, so that a set whose host key is lost "
         "(a dead system disk) opens again; the host key sealed in the TPM; and rotation. Sub-verbs: recovery, recover, seal, rotate.",
         {}, "nvrctl key recovery create --passphrase-file /media/safe/recovery.pass", kExitsDefault},
        {"key recovery", {"key recovery create --passphrase-file F [--iterations N]", "key recovery remove"},
         "create: wrap the set's master key under PBKDF2-HMAC-SHA-256 (600 000 iterations or more) of the passphrase, on every "
         "member and spare; remove: delete it, so only the host key opens the set. Both are audited and alerted.",
         {{"--passphrase-file F", "the passphrase (first line, 12 characters or more)"}, {"--iterations N", "PBKDF2 iterations"}},
         "nvrctl key recovery create --passphrase-file /media/safe/recovery.pass", kExitsDefault},
        {"key recover", {"key recover --passphrase-file F --tpm|--host-key NEWFILE"},
         "Open a set whose host key is lost with the recovery passphrase and bind it to a new host key (sealed in this machine's "
         "TPM with --tpm, or a key file at NEWFILE; written into the configuration); the old host key no longer opens it. Run "
         "with nvrfsd stopped.",
         {{"--passphrase-file F", "the recovery passphrase"}, {"--tpm", "seal the new host key in this machine's TPM"},
          {"--pcrs LIST", "with --tpm: PCRs to bind to"}, {"--host-key NEWFILE", "where the new host key goes"}},
         "nvrctl key recover --passphrase-file /media/safe/recovery.pass --host-key /etc/nvrfs/host.key",
         "0 bound to the new key; 1 wrong passphrase, no recovery key, or a member could not be rewritten; 2 usage error"},
        {"key seal", {"key seal --tpm [--pcrs LIST|none]"},
         "Seal the host key in this machine's TPM 2.0 (tpm_tcti), bound to the PCRs' current values (default tpm_pcrs, 7): "
         "HOSTKEY.tpm is written and proved, the configuration names it, and the key file is removed.",
         {{"--tpm", "seal in the TPM"}, {"--pcrs LIST", "PCRs to bind to (SHA-256 bank), comma-separated, or none"}},
         "nvrctl key seal --tpm --pcrs 7", "0 sealed; 1 no TPM, or the key could not be sealed or proved (the key file is kept); 2 usage error"},
        {"key rotate", {"key rotate"},
         "A new host key (a file, or sealed in the TPM like the old one): every superblock's master key is wrapped under it, "
         "recordings untouched, and the old key stops working. Safe to kill: run it again to finish. Run with nvrfsd stopped.",
         {}, "nvrctl key rotate", "0 rotated; 1 the set is mounted, or a member could not be rewritten (run it again); 2 usage error"},
        {"upgrade", {"upgrade"},
         "Record each file of a set made before the namespace ledger (id, size, last tag as they are now), so that opens "
         "and scrub hold it to its place from now on.",
         {}, "nvrctl upgrade", "0 done; 1 no daemon runs for this set; 2 usage error", true},
        {"archive", {"archive status [--json]", "archive now [--no-wait] [--json]", "archive recall PATH"},
         "The archive tier: recordings moved, still encrypted and authenticated, to an S3 store (Ceph radosgw). Sub-verbs: "
         "status, now, recall.",
         {}, "nvrctl archive status", kExitsDefault, true},
        {"archive status", {"archive status [--json]"},
         "Bytes and files local and archived, what waits, the last rate and the last error.",
         {}, "nvrctl archive status --json", "0 the archive answers; 1 it is unreachable or refused; 2 usage error", true},
        {"archive now", {"archive now [--no-wait] [--json]"},
         "Run an archive pass now (files older than archive_after, or the oldest under space pressure; expired files; "
         "pending deletions) and print the status after it.",
         {{"--no-wait", "request the pass and return"}}, "nvrctl archive now",
         "0 the pass moved everything due; 1 something is left (unreachable, an error); 2 usage error", true},
        {"archive recall", {"archive recall PATH"},
         "Bring an archived file back onto the members (writing to an archived file does this first).",
         {}, "nvrctl archive recall /srv/nvr/cam1/2026-01-01/seg-0001.mp4", kExitsDefault},
        {"scrub", {"scrub [--repair] [--no-wait] [--json]"},
         "Verify every chunk on every member and the namespace against the audit log; with --repair, rewrite bad copies "
         "from good ones.",
         {{"--repair", "rewrite bad copies from an authentic one"}, {"--no-wait", "start it and return"}},
         "nvrctl scrub --repair", "0 nothing found; 1 something bad, missing or not checked; 2 usage error", true},
        {"log", {"log show|verify [--since T] [--until T] [--user U] [--path P] [--event E] [--json]"},
         "The audit log: show records, or verify the chain and its head against this host's record. Sub-verbs: show, verify.",
         {}, "nvrctl log verify", kExitsDefault, true},
        {"log show", {"log show [--since T] [--until T] [--user U] [--path P] [--event E] [--json]"},
         "Print audit records (time, sequence, event, result, user, process, path), filtered.",
         {{"--since T", "records at or after T (RFC 3339, or YYYY-MM-DD[THH:MM])"}, {"--until T", "records before T"},
          {"--user U", "records of user name or uid U"}, {"--path P", "records of path P (and below it)"},
          {"--event E", "records of event E (write, unlink, alert, ...)"}},
         "nvrctl log show --since 2026-11-25T08:00 --user recorder", kExitsDefault, true},
        {"log verify", {"log verify [--json]"},
         "Verify the chain of MACs on every member and the log's head against this host's record; names missing records.",
         {}, "nvrctl log verify", "0 intact; 1 a break, a cut or a missing range; 2 usage error", true},
        {"alerts", {"alerts [--all] [--ack ID|all] [--json]"}, "Alerts not yet acknowledged; acknowledge one or all (recorded).",
         {{"--all", "acknowledged ones too"}, {"--ack ID|all", "acknowledge alert ID, or all"}},
         "nvrctl alerts --ack all", "0 none unacknowledged (or acknowledged now); 1 some are; 2 usage error", true},
        {"config", {"config get [KEY]", "config set KEY VALUE"}, "Read or change the configuration (a running nvrfsd reloads it). Sub-verbs: get, set.",
         {}, "nvrctl config set min_free 15%", kExitsDefault, true},
        {"config get", {"config get [KEY] [--json]"}, "Print every setting, or one.", {}, "nvrctl config get check_interval", kExitsDefault, true},
        {"config set", {"config set KEY VALUE"}, "Change one setting in the configuration file and apply it to the running nvrfsd.",
         {}, "nvrctl config set min_free 15%", kExitsDefault},
        {"device", {"device info|allow|deny|scan DEV", "device list", "device hook", "device watch [--all] [--count N]"},
         "Backup devices: identify, authorize, scan for malware, and the udev hook. Sub-verbs: info, list, allow, deny, scan, hook, watch.",
         {}, "nvrctl device info /dev/sdb1", kExitsDefault, true},
        {"device info", {"device info DEV [--json]"}, "Identify a block device (libblkid): UUID, label, file system, bus, serial, LUKS, allowed.",
         {}, "nvrctl device info /dev/sdb1", kExitsDefault, true},
        {"device list", {"device list [--json]"}, "The allowlist of backup devices.", {}, "nvrctl device list", kExitsDefault, true},
        {"device allow", {"device allow DEV [--uuid U] [--serial S] [--note TEXT]"}, "Allow a device (by file system UUID and serial) as a backup target.",
         {{"--uuid U", "allow by UUID without the device present"}, {"--serial S", "its serial number"}, {"--note TEXT", "a note kept with it"}},
         "nvrctl device allow /dev/sdb1 --note 'USB disk, shift B'", kExitsDefault},
        {"device deny", {"device deny DEV [--uuid U]"}, "Remove a device from the allowlist.", {{"--uuid U", "deny by UUID"}},
         "nvrctl device deny /dev/sdb1", kExitsDefault},
        {"device scan", {"device scan DEV|DIR [--json]"}, "Scan a device (mounted read-only) or a directory with ClamAV.", {},
         "nvrctl device scan /dev/sdb1", "0 clean; 1 infected or not scannable; 2 usage error", true},
        {"device hook", {"device hook [--action add|remove] [--devname DEV]"},
         "Run by the udev rule for a USB or eSATA block device: identify, check the allowlist, scan, record the decision.",
         {{"--action A", "add or remove (default $ACTION)"}, {"--devname DEV", "the device (default $DEVNAME)"}},
         "nvrctl device hook --action add --devname /dev/sdb1", kExitsDefault},
        {"device watch", {"device watch [--all] [--count N]"}, "Listen to udev and run the hook for every USB or eSATA block device added or removed.",
         {{"--all", "every block device, not only USB and eSATA"}, {"--count N", "stop after N events"}},
         "nvrctl device watch --count 1", kExitsDefault},
        {"mask", {"mask set CAMERA --rect x,y,w,h[;...]|--file F [--fill #rrggbb]", "mask show|remove CAMERA", "mask list"},
         "Privacy masks applied to a camera's recordings when they are exported. Sub-verbs: set, show, remove, list.",
         {}, "nvrctl mask set cam1 --rect 0,0,320,180", kExitsDefault, true},
        {"mask set", {"mask set CAMERA --rect x,y,w,h[;...]|--file F [--fill #rrggbb]"}, "Set a camera's mask: rectangles, or a PGM/PAM image.",
         {{"--rect R", "x,y,w,h rectangles, ';'-separated"}, {"--file F", "a mask image"}, {"--fill C", "the colour of masked pixels"}},
         "nvrctl mask set cam1 --rect 0,0,320,180 --fill #000000", kExitsDefault},
        {"mask show", {"mask show CAMERA [--json]"}, "Print a camera's mask.", {}, "nvrctl mask show cam1", kExitsDefault, true},
        {"mask remove", {"mask remove CAMERA"}, "Remove a camera's mask (recorded).", {}, "nvrctl mask remove cam1", kExitsDefault},
        {"mask list", {"mask list [--json]"}, "The cameras that have a mask.", {}, "nvrctl mask list", kExitsDefault, true},
        {"export", {"export --camera C[,C] --since T --until T --to DIR|DEV [--no-mask --reason R] [--passphrase-file F]", "export verify DIR [--key FP]"},
         "Export evidence: the recordings of a time range, masked, with a manifest signed by the set's export key. Sub-verbs: verify.",
         {{"--camera C", "cameras (directories), comma-separated"}, {"--since T", "start of the range"}, {"--until T", "end of the range"},
          {"--to DIR|DEV", "a directory, or an allowed and scanned device"}, {"--no-mask", "unmasked (needs --reason, recorded)"},
          {"--reason R", "why unmasked"}, {"--passphrase-file F", "also encrypt the package"}},
         "nvrctl export --camera cam1 --since 2026-11-25T08:00 --until 2026-11-25T09:00 --to /media/usb", kExitsDefault, true},
        {"export verify", {"export verify DIR [--key FP]"}, "Check a package: its signature, every file's SHA-256, and the signer.",
         {{"--key FP", "the export key fingerprint expected"}}, "nvrctl export verify /media/usb/nvrfs-export-...",
         "0 intact; 1 not intact or not signed by FP; 2 usage error", true},
        {"backup", {"backup create --to DEV|DIR", "backup verify ARCHIVE", "backup restore ARCHIVE --to DIR"},
         "Encrypted backups (AES-256-GCM, PBKDF2-HMAC-SHA-256) of recordings. Sub-verbs: create, verify, restore.",
         {}, "nvrctl backup create --to /dev/sdb1 --passphrase-file /root/backup.pass", kExitsDefault, true},
        {"backup create", {"backup create --to DEV|DIR [--camera C] [--since T] [--until T] [--from DIR] --passphrase-file F [--iterations N]"},
         "Write an encrypted archive of the recordings to an allowed, scanned device or a directory.",
         {{"--to DEV|DIR", "the target"}, {"--camera C", "only these cameras"}, {"--since T", "only recordings from T"},
          {"--until T", "only recordings before T"}, {"--from DIR", "a directory below the mount"},
          {"--passphrase-file F", "the passphrase (first line)"}, {"--iterations N", "PBKDF2 iterations"}},
         "nvrctl backup create --to /dev/sdb1 --passphrase-file /root/backup.pass", kExitsDefault, true},
        {"backup verify", {"backup verify ARCHIVE --passphrase-file F"}, "Authenticate every byte of an archive.",
         {{"--passphrase-file F", "the passphrase"}}, "nvrctl backup verify /media/usb/nvrfs-backup-....nvrb --passphrase-file /root/backup.pass",
         "0 intact; 1 not intact or wrong passphrase; 2 usage error", true},
        {"backup restore", {"backup restore ARCHIVE --to DIR --passphrase-file F"}, "Restore an archive into DIR, each file authenticated.",
         {{"--to DIR", "where to restore"}, {"--passphrase-file F", "the passphrase"}},
         "nvrctl backup restore /media/usb/nvrfs-backup-....nvrb --to /srv/restore --passphrase-file /root/backup.pass", kExitsDefault, true},
        {"verify-install", {"verify-install [--json]"}, "Check the signed manifest and every installed file.", {},
         "nvrctl verify-install", "0 intact; 1 a file or the signature does not match; 2 usage error", true},
    };
    return e;
}

}  // namespace

bool print_help(const std::string& verb, const Args& args) {
    std::string words = verb;
    for (const auto& a : args)
        if (a.rfind("-", 0) != 0) {
            words += " " + a;
            break;
        }
    const HelpEntry* found = nullptr;
    for (const auto& e : entries())
        if (e.words == words) found = &e;
    if (!found)
        for (const auto& e : entries())
            if (e.words == verb) found = &e;
    if (!found) return false;
    const HelpEntry& e = *found;
    for (size_t i = 0; i < e.usage.size(); ++i) fmt::print("{} nvrctl {}\n", i ? "      " : "usage:", e.usage[i]);
    fmt::print("\n{}\n", e.about);
    std::vector<std::pair<std::string, std::string>> opts(e.options.begin(), e.options.end());
    if (e.words == "init") {
        opts.emplace_back("--config FILE", fmt::format("where to write the configuration (default {})", kDefaultConfig));
    } else {
        opts.emplace_back("--config FILE", fmt::format("the set's configuration (default {})", kDefaultConfig));
        opts.emplace_back("--member DIR", "instead of --config: each member (repeat), with --host-key FILE");
        opts.emplace_back("--host-key FILE", "the host key, with --member");
    }
    if (e.json) opts.emplace_back("--json", "machine-readable output");
    fmt::print("\noptions:\n");
    for (const auto& [o, what] : opts) fmt::print("  {:<22} {}\n", o, what);
    fmt::print("\nexample:\n  {}\n\nexit status: {}\nsee nvrctl(8)\n", e.example, e.exits);
    return true;
}

}  // namespace nvrfs::cli
