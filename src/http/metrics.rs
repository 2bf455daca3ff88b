//! Prometheus text metrics: request counts by route, method and status, and latency
//! histograms by route and method. Routes are the matched templates (`/v1/keys/{id}`),
//! never raw paths, so label cardinality stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<(String, String), Histogram>,
}

/// The registry.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Escapes a Prometheus label value (backslash, quote, newline).
pub(crate) fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, route: &str, method: &str, status: u16, latency: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        *inner
            .requests
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        let h = inner
            .latency
            .entry((route.to_string(), method.to_string()))
            .or_default();
        let secs = latency.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        out.push_str("# HELP pdx_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE pdx_http_requests_total counter\n");
        for ((route, method, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "pdx_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        out.push_str("# HELP pdx_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE pdx_http_request_duration_seconds histogram\n");
        for ((route, method), h) in &inner.latency {
            let labels = format!("route=\"{}\",method=\"{}\"", escape(route), escape(method));
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "pdx_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "pdx_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "pdx_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "pdx_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_counts_add_up() {
        let m = Metrics::default();
        m.observe("/v1/x", "GET", 200, Duration::from_millis(3));
        m.observe("/v1/x", "GET", 404, Duration::from_millis(300));
        let text = m.render();
        assert!(
            text.contains(r#"pdx_http_requests_total{route="/v1/x",method="GET",status="200"} 1"#)
        );
        assert!(
            text.contains(r#"pdx_http_requests_total{route="/v1/x",method="GET",status="404"} 1"#)
        );
        assert!(text.contains(
            r#"pdx_http_request_duration_seconds_bucket{route="/v1/x",method="GET",le="0.005"} 1"#
        ));
        assert!(text.contains(
            r#"pdx_http_request_duration_seconds_bucket{route="/v1/x",method="GET",le="0.5"} 2"#
        ));
        assert!(
            text.contains(
                r#"pdx_http_request_duration_seconds_count{route="/v1/x",method="GET"} 2"#
            )
        );
    }
}
