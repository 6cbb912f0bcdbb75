// s3_client.cpp — S3 requests through libcurl (SigV4 signing is libcurl's).
#include "transfer/s3_client.hpp"

#include "base/error.hpp"
#include "base/io.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <memory>
#include <sys/stat.h>

namespace nvrfs {
namespace {

struct CurlGlobal {
    CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

struct CurlDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

std::string trim(std::string s) {
    while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    size_t i = 0;
    while (i < s.size() && isspace(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(i);
}

// The text of the first <Tag>…</Tag> in an S3 XML answer ("" when none).
std::string xml_field(const std::string& body, const std::string& tag) {
    const auto a = body.find("<" + tag + ">");
    if (a == std::string::npos) return "";
    const auto b = body.find("</" + tag + ">", a);
    return b == std::string::npos ? "" : body.substr(a + tag.size() + 2, b - a - tag.size() - 2);
}

// Object keys are made of hex, '/' and the administrator's prefix: escape
// everything but S3's unreserved characters and '/'.
std::string escape_key(const std::string& k) {
    std::string out;
    for (unsigned char ch : k) {
        if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == '/') out += static_cast<char>(ch);
        else out += fmt::format("%{:02X}", ch);
    }
    return out;
}

size_t on_body(char* p, size_t sz, size_t n, void* ud) {
    static_cast<std::string*>(ud)->append(p, sz * n);
    return sz * n;
}

size_t on_header(char* p, size_t sz, size_t n, void* ud) {
    std::string line(p, sz * n);
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto& ch : name) ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
        if (name == "etag") *static_cast<std::string*>(ud) = trim(line.substr(colon + 1));
    }
    return sz * n;
}

struct Upload {
    ByteView body;
    size_t pos = 0;
};

size_t on_read(char* p, size_t sz, size_t n, void* ud) {
    auto* u = static_cast<Upload*>(ud);
    const size_t k = std::min(sz * n, u->body.size() - u->pos);
    std::memcpy(p, u->body.data() + u->pos, k);
    u->pos += k;
    return k;
}

}  // namespace

S3Credentials S3Credentials::load(const std::string& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) < 0) throw_errno(errno, file, "cannot read the archive credentials");
    if (st.st_mode & 077)
        throw Error(EPERM, file, fmt::format("{}: archive credentials must not be readable by group or others (mode {:o}; "
                                             "chmod 600 it)", file, st.st_mode & 0777));
    S3Credentials c;
    const std::string text = read_file_at(AT_FDCWD, file, 64 * 1024);
    size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        const std::string line = trim(text.substr(pos, nl - pos));
        pos = nl + 1;
        const auto eq = line.find('=');
        if (line.empty() || line[0] == '#' || line[0] == '[' || eq == std::string::npos) continue;
        const std::string k = trim(line.substr(0, eq)), v = trim(line.substr(eq + 1));
        if (k == "access_key") c.access_key = v;
        else if (k == "secret_key") c.secret_key = v;
    }
    if (c.access_key.empty() || c.secret_key.empty())
        throw Error(EINVAL, file, file + ": needs an access_key = ... and a secret_key = ... line");
    return c;
}

S3Client::S3Client(std::string endpoint, std::string bucket, S3Credentials creds, uint64_t max_rate)
    : endpoint_(std::move(endpoint)), bucket_(std::move(bucket)), creds_(std::move(creds)), max_rate_(max_rate) {
    static CurlGlobal global;
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
}

std::string S3Client::url(const std::string& key, const std::string& query) const {
    std::string u = endpoint_ + "/" + bucket_;
    if (!key.empty()) u += "/" + escape_key(key);
    if (!query.empty()) u += "?" + query;
    return u;
}

S3Client::Reply S3Client::call(const char* method, const std::string& key, const std::string& query, ByteView body,
                               const std::string& range, bool head) {
    std::unique_ptr<CURL, CurlDeleter> c(curl_easy_init());
    if (!c) throw S3Error("curl_easy_init failed", 0, "curl");
    Reply r;
    Upload up{body};
    const std::string hash = hex(sha256(body));
    std::unique_ptr<curl_slist, SlistDeleter> hdrs;
    auto add = [&](const std::string& h) { hdrs.reset(curl_slist_append(hdrs.release(), h.c_str())); };
    // Signed: radosgw and AWS check the body against it.
    add("x-amz-content-sha256: " + hash);
    if (!range.empty()) add("Range: bytes=" + range);
    const std::string u = url(key, query), userpwd = creds_.access_key + ":" + creds_.secret_key;
    curl_easy_setopt(c.get(), CURLOPT_URL, u.c_str());
    curl_easy_setopt(c.get(), CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(c.get(), CURLOPT_USERPWD, userpwd.c_str());
    curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, hdrs.get());
    curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, 5L);
    // No answer for this long is an outage, not a slow link.
    curl_easy_setopt(c.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c.get(), CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c.get(), CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c.get(), CURLOPT_HEADERDATA, &r.etag);
    if (max_rate_) {
        curl_easy_setopt(c.get(), CURLOPT_MAX_SEND_SPEED_LARGE, static_cast<curl_off_t>(max_rate_));
        curl_easy_setopt(c.get(), CURLOPT_MAX_RECV_SPEED_LARGE, static_cast<curl_off_t>(max_rate_));
    }
    if (head) curl_easy_setopt(c.get(), CURLOPT_NOBODY, 1L);
    // Requests and answers on stderr (secrets stay out: the signature only).
    if (std::getenv("NVRFS_S3_TRACE")) curl_easy_setopt(c.get(), CURLOPT_VERBOSE, 1L);
    const std::string m = method;
    if (m == "PUT") {
        curl_easy_setopt(c.get(), CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c.get(), CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c.get(), CURLOPT_READDATA, &up);
        curl_easy_setopt(c.get(), CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body.size()));
    } else if (m == "POST") {
        curl_easy_setopt(c.get(), CURLOPT_POST, 1L);
        curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, reinterpret_cast<const char*>(body.data()));
        curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    } else if (m != "GET" && m != "HEAD") {  // HEAD: CURLOPT_NOBODY alone
        curl_easy_setopt(c.get(), CURLOPT_CUSTOMREQUEST, method);
    }
    const CURLcode rc = curl_easy_perform(c.get());
    if (rc != CURLE_OK)
        throw S3Error(fmt::format("{} {}: {}", method, u, curl_easy_strerror(rc)), 0, curl_easy_strerror(rc));
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &r.status);
    curl_off_t len = -1;
    curl_easy_getinfo(c.get(), CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
    if (len >= 0) r.length = static_cast<uint64_t>(len);
    return r;
}

S3Client::Reply S3Client::expect(const char* method, const std::string& key, const std::string& query, ByteView body, long ok1,
                                 long ok2, const std::string& range) {
    Reply r = call(method, key, query, body, range);
    if (r.status == ok1 || (ok2 && r.status == ok2)) return r;
    std::string code = xml_field(r.body, "Code");
    if (code.empty()) code = fmt::format("HTTP {}", r.status);
    throw S3Error(fmt::format("{} s3://{}/{}: {} (HTTP {})", method, bucket_, key, code, r.status), r.status, code);
}

void S3Client::ensure_bucket() {
    const Reply r = call("HEAD", "", "", {}, "", true);
    if (r.status == 200) return;
    if (r.status == 404) {
        expect("PUT", "", "", {}, 200);
        return;
    }
    const char* why = r.status == 403 ? "AccessDenied (the credentials were refused)" : "";
    throw S3Error(fmt::format("HEAD s3://{}: HTTP {} {}", bucket_, r.status, why), r.status,
                  r.status == 403 ? "AccessDenied" : fmt::format("HTTP {}", r.status));
}

void S3Client::put(const std::string& key, ByteView body) { expect("PUT", key, "", body, 200); }

Bytes S3Client::get(const std::string& key, uint64_t off, uint64_t len) {
    if (len == 0) return {};
    const Reply r = expect("GET", key, "", {}, 206, 200, fmt::format("{}-{}", off, off + len - 1));
    if (r.body.size() != len)
        throw S3Error(fmt::format("GET s3://{}/{} bytes {}+{}: the object is shorter ({} bytes came)", bucket_, key, off, len,
                                  r.body.size()), 416, "ShortObject");
    return Bytes(r.body.begin(), r.body.end());
}

std::optional<uint64_t> S3Client::head(const std::string& key) {
    const Reply r = call("HEAD", key, "", {}, "", true);
    if (r.status == 404) return std::nullopt;
    if (r.status != 200)
        throw S3Error(fmt::format("HEAD s3://{}/{}: HTTP {}", bucket_, key, r.status), r.status, fmt::format("HTTP {}", r.status));
    return r.length.value_or(0);
}

void S3Client::remove(const std::string& key) { expect("DELETE", key, "", {}, 204, 200); }

std::string S3Client::begin_multipart(const std::string& key) {
    const Reply r = expect("POST", key, "uploads=", {}, 200);
    std::string id = xml_field(r.body, "UploadId");
    if (id.empty()) throw S3Error("POST s3://" + bucket_ + "/" + key + "?uploads: no UploadId in the answer", r.status, "NoUploadId");
    return id;
}

std::string S3Client::put_part(const std::string& key, const std::string& upload, int number, ByteView body) {
    const Reply r = expect("PUT", key, fmt::format("partNumber={}&uploadId={}", number, upload), body, 200);
    return r.etag;
}

void S3Client::complete_multipart(const std::string& key, const std::string& upload, const std::vector<std::string>& etags) {
    std::string xml = "<CompleteMultipartUpload>";
    for (size_t i = 0; i < etags.size(); ++i) xml += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1, etags[i]);
    xml += "</CompleteMultipartUpload>";
    const Reply r = expect("POST", key, "uploadId=" + upload, as_bytes(xml), 200);
    // S3 may answer 200 with an error inside.
    if (r.body.find("<Error>") != std::string::npos)
        throw S3Error("complete multipart s3://" + bucket_ + "/" + key + ": " + xml_field(r.body, "Code"), 200, xml_field(r.body, "Code"));
}

void S3Client::abort_multipart(const std::string& key, const std::string& upload) {
    expect("DELETE", key, "uploadId=" + upload, {}, 204, 200);
}

}  // namespace nvrfs
