// metrics.hpp — the set's state for a monitoring stack, in the Prometheus
// text exposition format (version 0.0.4).
//
// Rendered from the daemon's status document (what `nvrctl status --json`
// prints), so the CLI, the textfile and the status never disagree. Counters
// end in _total and count from the daemon's start; gauges are as of now.
// Every series of a kind is written, zero included, so that alert rules
// never meet an absent series.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace nvrfs {

std::string prometheus_metrics(const nlohmann::json& status);

// node_exporter's textfile collector reads whatever is in the file when it
// scrapes: written beside it and renamed over it, never seen half-written.
// Throws Error (path, errno).
void write_textfile(const std::string& path, const std::string& text);

}  // namespace nvrfs
