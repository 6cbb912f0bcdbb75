#include "store/tpm_seal.hpp"

#include "base/big_endian.hpp"
#include "base/error.hpp"

#include <cstring>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

namespace nvrfs {
namespace {

// One connection to the TPM, closed in reverse order.
class Tpm {
public:
    Tpm(const std::string& tcti, const std::string& where) {
        // The TSS logs every TPM error to stderr itself; nvrfs says what
        // failed in its own words (an administrator's TSS2_LOG still wins).
        ::setenv("TSS2_LOG", "all+NONE", 0);
        TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti.c_str(), &tcti_);
        if (rc != TSS2_RC_SUCCESS)
            throw Error(ENODEV, where, fmt::format("cannot reach the TPM through TCTI '{}': {}", tcti, Tss2_RC_Decode(rc)));
        rc = Esys_Initialize(&ctx_, tcti_, nullptr);
        if (rc != TSS2_RC_SUCCESS) {
            Tss2_TctiLdr_Finalize(&tcti_);
            throw Error(ENODEV, where, fmt::format("cannot open the TPM through TCTI '{}': {}", tcti, Tss2_RC_Decode(rc)));
        }
    }
    ~Tpm() {
        for (ESYS_TR h : handles_) Esys_FlushContext(ctx_, h);
        Esys_Finalize(&ctx_);
        Tss2_TctiLdr_Finalize(&tcti_);
    }
    Tpm(const Tpm&) = delete;
    Tpm& operator=(const Tpm&) = delete;
    ESYS_CONTEXT* ctx() { return ctx_; }
    ESYS_TR keep(ESYS_TR h) {  // flushed at the end
        handles_.push_back(h);
        return h;
    }

private:
    TSS2_TCTI_CONTEXT* tcti_ = nullptr;
    ESYS_CONTEXT* ctx_ = nullptr;
    std::vector<ESYS_TR> handles_;
};

void ok(TSS2_RC rc, const char* what, const std::string& where) {
    if (rc != TSS2_RC_SUCCESS) throw Error(EIO, where, fmt::format("TPM {} failed: {}", what, Tss2_RC_Decode(rc)));
}

template <class T>
struct EsysFree {
    void operator()(T* p) const { Esys_Free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, EsysFree<T>>;

// The storage primary key, derived again from the owner seed each time.
ESYS_TR primary(Tpm& t, const std::string& where) {
    TPM2B_SENSITIVE_CREATE sens{};
    TPM2B_PUBLIC pub{};
    pub.publicArea.type = TPM2_ALG_ECC;
    pub.publicArea.nameAlg = TPM2_ALG_SHA256;
    pub.publicArea.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA;
    auto& p = pub.publicArea.parameters.eccDetail;
    p.symmetric.algorithm = TPM2_ALG_AES;
    p.symmetric.keyBits.aes = 128;
    p.symmetric.mode.aes = TPM2_ALG_CFB;
    p.scheme.scheme = TPM2_ALG_NULL;
    p.curveID = TPM2_ECC_NIST_P256;
    p.kdf.scheme = TPM2_ALG_NULL;
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation{};
    ESYS_TR h = ESYS_TR_NONE;
    ok(Esys_CreatePrimary(t.ctx(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &pub, &outside, &creation,
                          &h, nullptr, nullptr, nullptr, nullptr),
       "CreatePrimary (owner hierarchy)", where);
    return t.keep(h);
}

TPML_PCR_SELECTION selection(const std::vector<int>& pcrs) {
    TPML_PCR_SELECTION s{};
    s.count = 1;
    s.pcrSelections[0].hash = TPM2_ALG_SHA256;
    s.pcrSelections[0].sizeofSelect = 3;
    for (int i : pcrs) s.pcrSelections[0].pcrSelect[i / 8] |= static_cast<uint8_t>(1 << (i % 8));
    return s;
}

// PolicyPCR over the PCRs' current values in a fresh session of `type`.
ESYS_TR pcr_session(Tpm& t, TPM2_SE type, const std::vector<int>& pcrs, const std::string& where) {
    TPMT_SYM_DEF sym{};
    sym.algorithm = TPM2_ALG_NULL;
    ESYS_TR s = ESYS_TR_NONE;
    ok(Esys_StartAuthSession(t.ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, nullptr, type, &sym,
                             TPM2_ALG_SHA256, &s),
       "StartAuthSession", where);
    t.keep(s);
    TPM2B_DIGEST none{};
    const TPML_PCR_SELECTION sel = selection(pcrs);
    ok(Esys_PolicyPCR(t.ctx(), s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &none, &sel), "PolicyPCR", where);
    return s;
}

// The PCRs' current values (hex), by index.
std::map<int, std::string> read_pcrs(Tpm& t, const std::vector<int>& pcrs, const std::string& where) {
    std::map<int, std::string> out;
    for (int i : pcrs) {  // one at a time: a read returns at most 8 digests
        const TPML_PCR_SELECTION sel = selection({i});
        TPML_PCR_SELECTION* got_sel = nullptr;
        TPML_DIGEST* values = nullptr;
        uint32_t counter = 0;
        ok(Esys_PCR_Read(t.ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &counter, &got_sel, &values), "PCR_Read", where);
        Owned<TPML_PCR_SELECTION> a(got_sel);
        Owned<TPML_DIGEST> b(values);
        if (b->count == 1) out[i] = hex(ByteView(b->digests[0].buffer, b->digests[0].size));
    }
    return out;
}

template <class T, class F>
std::string marshal(const T& v, F fn) {
    uint8_t buf[sizeof(T) + 16];
    size_t off = 0;
    if (fn(&v, buf, sizeof buf, &off) != TSS2_RC_SUCCESS) throw Error(EIO, "", "cannot marshal a TPM object");
    return hex(ByteView(buf, off));
}

template <class T, class F>
T unmarshal(const std::string& h, F fn, const std::string& where) {
    const Bytes b = unhex(h).value_or(Bytes{});
    T v{};
    size_t off = 0;
    if (b.empty() || fn(b.data(), b.size(), &off, &v) != TSS2_RC_SUCCESS || off != b.size())
        throw Error(EINVAL, where, fmt::format("{}: not a sealed nvrfs host key", where));
    return v;
}

}  // namespace

std::vector<int> parse_pcrs(const std::string& text) {
    std::vector<int> out;
    if (text == "none" || text.empty()) return out;
    size_t pos = 0;
    while (pos <= text.size()) {
        const size_t comma = text.find(',', pos);
        const std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        char* end = nullptr;
        const long v = std::strtol(part.c_str(), &end, 10);
        if (part.empty() || *end || v < 0 || v > 23) throw Error(EINVAL, "", fmt::format("tpm_pcrs: '{}' is not a PCR list (0-23, comma-separated, or none)", text));
        out.push_back(static_cast<int>(v));
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return out;
}

std::string tpm_seal(const std::string& tcti, const SecretKey& secret, const std::vector<int>& pcrs) {
    Tpm t(tcti, "");
    const ESYS_TR parent = primary(t, "");
    TPM2B_PUBLIC pub{};
    pub.publicArea.type = TPM2_ALG_KEYEDHASH;
    pub.publicArea.nameAlg = TPM2_ALG_SHA256;
    pub.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA;
    pub.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    if (pcrs.empty()) {
        pub.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
    } else {
        const ESYS_TR trial = pcr_session(t, TPM2_SE_TRIAL, pcrs, "");
        TPM2B_DIGEST* digest = nullptr;
        ok(Esys_PolicyGetDigest(t.ctx(), trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &digest), "PolicyGetDigest", "");
        Owned<TPM2B_DIGEST> d(digest);
        pub.publicArea.authPolicy = *d;
    }
    TPM2B_SENSITIVE_CREATE sens{};
    if (secret.size() > sizeof sens.sensitive.data.buffer) throw Error(EINVAL, "", "secret too large to seal");
    sens.sensitive.data.size = static_cast<UINT16>(secret.size());
    std::memcpy(sens.sensitive.data.buffer, secret.bytes().data(), secret.size());
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation{};
    TPM2B_PRIVATE* out_priv = nullptr;
    TPM2B_PUBLIC* out_pub = nullptr;
    const TSS2_RC rc = Esys_Create(t.ctx(), parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &pub, &outside, &creation,
                                   &out_priv, &out_pub, nullptr, nullptr, nullptr);
    std::memset(sens.sensitive.data.buffer, 0, sizeof sens.sensitive.data.buffer);
    ok(rc, "Create (sealed object)", "");
    Owned<TPM2B_PRIVATE> op(out_priv);
    Owned<TPM2B_PUBLIC> ou(out_pub);
    nlohmann::json j = {{"format", 1}, {"what", "nvrfs host key sealed in a TPM 2.0"}, {"pcrs", pcrs}, {"pcr_bank", "sha256"},
                        {"public", marshal(*ou, Tss2_MU_TPM2B_PUBLIC_Marshal)}, {"private", marshal(*op, Tss2_MU_TPM2B_PRIVATE_Marshal)}};
    nlohmann::json values = nlohmann::json::object();
    for (const auto& [i, v] : read_pcrs(t, pcrs, "")) values[std::to_string(i)] = v;
    j["pcr_values"] = values;
    return j.dump(2) + "\n";
}

SecretKey tpm_unseal(const std::string& tcti, const std::string& sealed, const std::string& where) {
    const auto j = nlohmann::json::parse(sealed, nullptr, false);
    if (!j.is_object() || j.value("format", 0) != 1 || !j.contains("public") || !j.contains("private") || !j.contains("pcrs"))
        throw Error(EINVAL, where, fmt::format("{}: not a sealed nvrfs host key", where));
    std::vector<int> pcrs;
    try {
        pcrs = j["pcrs"].get<std::vector<int>>();
    } catch (const nlohmann::json::exception&) {
        throw Error(EINVAL, where, fmt::format("{}: not a sealed nvrfs host key", where));
    }
    for (int i : pcrs)
        if (i < 0 || i > 23) throw Error(EINVAL, where, fmt::format("{}: not a sealed nvrfs host key", where));
    const auto pub = unmarshal<TPM2B_PUBLIC>(j.value("public", ""), Tss2_MU_TPM2B_PUBLIC_Unmarshal, where);
    const auto priv = unmarshal<TPM2B_PRIVATE>(j.value("private", ""), Tss2_MU_TPM2B_PRIVATE_Unmarshal, where);
    Tpm t(tcti, where);
    const ESYS_TR parent = primary(t, where);
    ESYS_TR obj = ESYS_TR_NONE;
    TSS2_RC rc = Esys_Load(t.ctx(), parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &obj);
    if (rc != TSS2_RC_SUCCESS)
        throw Error(EKEYREJECTED, where, fmt::format("{}: this TPM cannot load the sealed host key ({}): it was sealed by another "
                                                     "machine's TPM, or this TPM was cleared", where, Tss2_RC_Decode(rc)));
    t.keep(obj);
    const ESYS_TR auth = pcrs.empty() ? ESYS_TR_PASSWORD : pcr_session(t, TPM2_SE_POLICY, pcrs, where);
    TPM2B_SENSITIVE_DATA* data = nullptr;
    rc = Esys_Unseal(t.ctx(), obj, auth, ESYS_TR_NONE, ESYS_TR_NONE, &data);
    if (rc != TSS2_RC_SUCCESS) {
        std::vector<int> changed;
        for (const auto& [i, v] : read_pcrs(t, pcrs, where))
            if (j["pcr_values"].value(std::to_string(i), "") != v) changed.push_back(i);
        throw Error(EACCES, where, fmt::format("{}: the TPM refuses to unseal the host key: PCR {} changed since it was sealed "
                                               "(the boot chain is not the one the key was bound to; {})",
                                               where, changed.empty() ? "policy" : fmt::format("{}", fmt::join(changed, ", ")),
                                               Tss2_RC_Decode(rc)));
    }
    Owned<TPM2B_SENSITIVE_DATA> d(data);
    SecretKey out(ByteView(d->buffer, d->size));
    std::memset(d->buffer, 0, d->size);
    return out;
}

uint32_t tpm_counter_index(const std::array<uint8_t, 16>& set_uuid) {
    // 0x01C0xxxx: in the owner's range, clear of the TCG's assigned indexes.
    return 0x01C00000u | (uint32_t(set_uuid[0]) << 8 | set_uuid[1]);
}

namespace {

// The counter's handle, or ESYS_TR_NONE when the index is not defined.
ESYS_TR counter_handle(Tpm& t, uint32_t index) {
    ESYS_TR h = ESYS_TR_NONE;
    if (Esys_TR_FromTPMPublic(t.ctx(), index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h) != TSS2_RC_SUCCESS) return ESYS_TR_NONE;
    return h;
}

// nullopt when the counter cannot be read (defined, never incremented).
std::optional<uint64_t> counter_value(Tpm& t, ESYS_TR h) {
    TPM2B_MAX_NV_BUFFER* data = nullptr;
    if (Esys_NV_Read(t.ctx(), h, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &data) != TSS2_RC_SUCCESS) return std::nullopt;
    Owned<TPM2B_MAX_NV_BUFFER> d(data);
    if (d->size != 8) return std::nullopt;
    return get64(d->buffer);
}

}  // namespace

std::optional<uint64_t> tpm_counter_read(const std::string& tcti, uint32_t index) {
    const std::string where = fmt::format("TPM NV index {:#x}", index);
    Tpm t(tcti, where);
    const ESYS_TR h = counter_handle(t, index);
    if (h == ESYS_TR_NONE) return std::nullopt;
    return counter_value(t, h);
}

uint64_t tpm_counter_increment(const std::string& tcti, uint32_t index) {
    const std::string where = fmt::format("TPM NV index {:#x}", index);
    Tpm t(tcti, where);
    ESYS_TR h = counter_handle(t, index);
    if (h == ESYS_TR_NONE) {
        TPM2B_AUTH auth{};
        TPM2B_NV_PUBLIC pub{};
        pub.nvPublic.nvIndex = index;
        pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
        pub.nvPublic.attributes = (TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA;
        pub.nvPublic.dataSize = 8;
        ok(Esys_NV_DefineSpace(t.ctx(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &auth, &pub, &h),
           "NV_DefineSpace (counter)", where);
    }
    ok(Esys_NV_Increment(t.ctx(), h, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE), "NV_Increment", where);
    const auto v = counter_value(t, h);
    if (!v) throw Error(EIO, where, "TPM NV_Read of the counter failed after its increment");
    return *v;
}

}  // namespace nvrfs
