// tpm_seal.hpp — the host key sealed in this machine's TPM 2.0.
//
// A sealed data object (keyed hash, the 32-byte host key as its sensitive
// data) under a primary storage key that the TPM derives from its owner
// hierarchy's seed each time (ECC P-256, the TCG default template): only
// this TPM can load it, and the file that holds its public and private
// parts (`host.key.tpm`) is useless anywhere else. With PCRs selected
// (`tpm_pcrs`, default 7: the Secure Boot state), the object's policy is
// PolicyPCR over their values at sealing, so a changed boot chain refuses
// to unseal; the values at sealing are kept beside the blobs so the error
// can name the PCRs that changed. The TPM is reached through the TSS2
// TCTI loader (`tpm_tcti`: "device:/dev/tpmrm0", "swtpm:host=...,port=...").
#pragma once
#include "base/crypto.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nvrfs {

inline constexpr const char* kDefaultTcti = "device:/dev/tpmrm0";

// "7", "0,2,7", "none" -> PCR indexes (SHA-256 bank). Throws Error(EINVAL).
std::vector<int> parse_pcrs(const std::string& text);

// The sealed object, as stored in host.key.tpm (JSON text).
std::string tpm_seal(const std::string& tcti, const SecretKey& secret, const std::vector<int>& pcrs);
// Throws Error: EACCES naming the PCRs that changed, ENODEV when the TPM
// cannot be reached, EKEYREJECTED when the blob is another TPM's.
SecretKey tpm_unseal(const std::string& tcti, const std::string& sealed, const std::string& where);

// A monotonic counter in the TPM's NV memory (TPM2_NT_COUNTER) at `index`,
// for the host anchor (audit/host_anchor.hpp): a counter only goes up, so a
// host state file put back from an older copy of the system disk shows.
// nullopt when the index is not defined (or never incremented).
std::optional<uint64_t> tpm_counter_read(const std::string& tcti, uint32_t index);
// Defines the counter when missing; returns the value after the increment.
uint64_t tpm_counter_increment(const std::string& tcti, uint32_t index);
// The NV index a set's counter lives at (owner range, from its UUID).
uint32_t tpm_counter_index(const std::array<uint8_t, 16>& set_uuid);

}  // namespace nvrfs
