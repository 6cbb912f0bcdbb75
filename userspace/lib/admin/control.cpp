#include "admin/control.hpp"

#include "base/error.hpp"

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace nvrfs {
namespace {

constexpr size_t kMaxRequest = 1 << 20;

sockaddr_un address(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) throw Error(ENAMETOOLONG, path, "control socket path too long: " + path);
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

bool read_line(int fd, std::string& out) {
    char buf[4096];
    while (out.find('\n') == std::string::npos) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || out.size() > kMaxRequest) return false;
        out.append(buf, static_cast<size_t>(n));
    }
    out.resize(out.find('\n'));
    return true;
}

void send_line(int fd, const nlohmann::json& j) {
    const std::string s = j.dump() + "\n";
    write_full(fd, s.data(), s.size());
}

}  // namespace

ControlServer::ControlServer(std::string path, Handler handler) : path_(std::move(path)), handler_(std::move(handler)) {
    const auto slash = path_.rfind('/');
    if (slash != std::string::npos && slash > 0) {
        const std::string dir = path_.substr(0, slash);
        ::mkdir(dir.c_str(), 0700);
    }
    const sockaddr_un a = address(path_);
    // A live daemon answers on the socket; a stale file from a crash does not.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0)
        throw Error(EADDRINUSE, path_, fmt::format("control socket {} is in use: is another nvrfsd running for this set?", path_));
    ::unlink(path_.c_str());
    listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listen_) throw_errno(errno, path_, "cannot create control socket");
    const mode_t old = ::umask(0177);
    const int rc = ::bind(listen_.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a);
    ::umask(old);
    if (rc < 0 || ::listen(listen_.get(), 16) < 0) throw_errno(errno, path_, "cannot listen on control socket");
}

void ControlServer::start() {
    thread_ = std::thread([this] {
        while (!stop_) {
            int c = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                break;  // shut down
            }
            UniqueFd conn(c);
            {
                std::lock_guard lk(clients_mu_);
                if (clients_ >= kMaxClients) {
                    send_line(conn.get(), {{"ok", false}, {"errno", EBUSY}, {"error", "too many control connections; try again"}});
                    continue;
                }
                ++clients_;
            }
            std::thread([this, fd = conn.release()] {
                UniqueFd own(fd);
                serve(fd);
                std::lock_guard lk(clients_mu_);
                --clients_;
                clients_cv_.notify_all();
            }).detach();
        }
    });
}

ControlServer::~ControlServer() {
    stop_ = true;
    ::shutdown(listen_.get(), SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    // Connection threads call the handler, which uses the daemon: wait for
    // them (each gives up on a silent client after its receive timeout).
    std::unique_lock lk(clients_mu_);
    clients_cv_.wait(lk, [this] { return clients_ == 0; });
    ::unlink(path_.c_str());
}

void ControlServer::serve(int conn) {
    timeval tv{5, 0};
    ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || (cred.uid != 0 && cred.uid != ::geteuid())) {
        send_line(conn, {{"ok", false}, {"errno", EACCES}, {"error", "permission denied: nvrfs control is for root only"}});
        return;
    }
    std::string line;
    if (!read_line(conn, line)) return;
    nlohmann::json reply;
    try {
        auto req = nlohmann::json::parse(line);
        // Who asked, as the kernel says (not as the request claims).
        req["_peer"] = {{"uid", cred.uid}, {"gid", cred.gid}, {"pid", cred.pid}};
        reply = handler_(req);
        reply["ok"] = true;
    } catch (const Error& e) {
        reply = {{"ok", false}, {"errno", e.code()}, {"error", e.what()}};
    } catch (const nlohmann::json::exception& e) {
        reply = {{"ok", false}, {"errno", EINVAL}, {"error", std::string("bad request: ") + e.what()}};
    } catch (const std::exception& e) {
        reply = {{"ok", false}, {"errno", EIO}, {"error", e.what()}};
    }
    send_line(conn, reply);
}

nlohmann::json control_call(const std::string& path, const nlohmann::json& request) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_un a = address(path);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) < 0) {
        const int e = errno;
        if (e == ENOENT || e == ECONNREFUSED)
            throw Error(ENOTCONN, path, fmt::format("nvrfsd is not running for this set (no control socket at {})", path));
        throw_errno(e, path, "cannot reach nvrfsd");
    }
    send_line(fd.get(), request);
    std::string line;
    if (!read_line(fd.get(), line)) throw Error(EIO, path, "nvrfsd closed the control connection without an answer");
    auto reply = nlohmann::json::parse(line, nullptr, false);
    if (reply.is_discarded()) throw Error(EIO, path, "nvrfsd sent a malformed answer");
    if (!reply.value("ok", false)) throw Error(reply.value("errno", EIO), path, reply.value("error", "request failed"));
    return reply;
}

}  // namespace nvrfs
