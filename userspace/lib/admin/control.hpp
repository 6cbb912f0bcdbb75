// control.hpp — the local control socket between nvrfsd and nvrctl.
//
// A Unix stream socket (default /run/nvrfs/nvrfsd.sock; its directory 0700,
// the socket 0600). One request per connection: a JSON object on one line;
// the answer is one JSON line, {"ok":true,...} or {"ok":false,"errno":N,
// "error":"text"}. The peer's credentials (SO_PEERCRED) must be root or the
// daemon's own user; anyone else gets EACCES before the request is read.
#pragma once
#include "base/io.hpp"

#include <atomic>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace nvrfs {

inline constexpr const char* kDefaultControlSocket = "/run/nvrfs/nvrfsd.sock";

class ControlServer {
public:
    // Handlers may throw Error; it becomes an {"ok":false} answer.
    using Handler = std::function<nlohmann::json(const nlohmann::json&)>;
    ControlServer(std::string path, Handler handler);  // binds; throws Error if the socket is in use
    ~ControlServer();
    void start();  // serve requests (call after any fork: threads do not survive one)
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

private:
    void serve(int conn);
    std::string path_;
    Handler handler_;
    UniqueFd listen_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    // Each connection is served on its own thread, so a client that connects
    // and says nothing delays nobody else; at most kMaxClients at once.
    static constexpr int kMaxClients = 16;
    std::mutex clients_mu_;
    std::condition_variable clients_cv_;
    int clients_ = 0;  // guarded by clients_mu_
};

// Sends one request. Throws Error(ENOTCONN) when no daemon listens at `path`,
// and Error(errno) with the daemon's message when it answers ok:false.
nlohmann::json control_call(const std::string& path, const nlohmann::json& request);

}  // namespace nvrfs
