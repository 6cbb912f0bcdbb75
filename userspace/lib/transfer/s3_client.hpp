// s3_client.hpp — the few S3 requests the archive tier needs, over libcurl.
//
// Requests are signed by libcurl itself (CURLOPT_AWS_SIGV4, region
// "us-east-1" unless the endpoint needs another); nothing here signs by hand.
// Path-style addressing (`ENDPOINT/BUCKET/KEY`), which radosgw, MinIO and
// AWS all take. Every failure is an S3Error that says what was asked, the
// HTTP status and the service's error code (or curl's reason when no answer
// came back), so "credentials refused" and "cluster unreachable" read apart.
//
// libcurl 7.88 (Debian 12) signs the query string as given: callers pass
// query parameters already in canonical order (sorted, `uploads=` with its
// '='), which is what this file does.
#pragma once
#include "base/crypto.hpp"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace nvrfs {

struct S3Credentials {
    std::string access_key, secret_key;
    // "access_key = ...", "secret_key = ..." lines (s3cmd's names); the file
    // must not be readable by group or others. Throws Error.
    static S3Credentials load(const std::string& file);
};

struct S3Error : std::runtime_error {
    S3Error(const std::string& what, long status, std::string code)
        : std::runtime_error(what), status(status), code(std::move(code)) {}
    long status;       // HTTP status; 0 when no answer came (unreachable, timed out)
    std::string code;  // the service's <Code> (NoSuchKey, InvalidAccessKeyId, ...) or curl's error
    bool unreachable() const { return status == 0 || status >= 500; }
    bool not_found() const { return status == 404; }
    bool refused() const { return status == 401 || status == 403; }
    // The object holds less than was asked (a short body, or a range past its end).
    bool short_object() const { return status == 416; }
};

class S3Client {
public:
    // `endpoint`: http(s)://host:port; `max_rate`: bytes per second for
    // uploads and downloads (0 = no limit).
    S3Client(std::string endpoint, std::string bucket, S3Credentials creds, uint64_t max_rate = 0);

    // The bucket exists and these credentials may use it; creates it when
    // missing. Throws S3Error.
    void ensure_bucket();
    void put(const std::string& key, ByteView body);
    // Bytes [off, off + len) of an object (HTTP Range); exactly len or S3Error.
    Bytes get(const std::string& key, uint64_t off, uint64_t len);
    // The object's size, or nullopt when there is none.
    std::optional<uint64_t> head(const std::string& key);
    void remove(const std::string& key);  // absent is fine

    // Multipart upload: parts of at least 5 MiB but the last.
    std::string begin_multipart(const std::string& key);
    // Returns the part's ETag.
    std::string put_part(const std::string& key, const std::string& upload, int number, ByteView body);
    void complete_multipart(const std::string& key, const std::string& upload, const std::vector<std::string>& etags);
    void abort_multipart(const std::string& key, const std::string& upload);

    const std::string& endpoint() const { return endpoint_; }
    const std::string& bucket() const { return bucket_; }

private:
    struct Reply {
        long status = 0;
        std::string body, etag;
        std::optional<uint64_t> length;
    };
    Reply call(const char* method, const std::string& key, const std::string& query, ByteView body, const std::string& range = "",
               bool head = false);
    Reply expect(const char* method, const std::string& key, const std::string& query, ByteView body, long ok1, long ok2 = 0,
                 const std::string& range = "");
    std::string url(const std::string& key, const std::string& query) const;
    std::string endpoint_, bucket_;
    S3Credentials creds_;
    uint64_t max_rate_;
};

}  // namespace nvrfs
