//! Prometheus metrics (`GET /metrics`), kept in a registry of the server's own rather than a
//! process-wide one, so that two servers in one process (tests) count apart.
//!
//! Every label takes values from a bounded set (route templates, methods, status codes, ops,
//! error codes), so no client can grow the exposition without bound.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    commands: IntCounterVec,
    commit_seconds: Histogram,
    group_size: Histogram,
}

impl Metrics {
    /// Registers every metric. Fails only on a programming error (a duplicate or invalid name),
    /// which the unit test below would catch.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "walletd_http_requests_total",
                "HTTP requests answered, by route template, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "walletd_http_request_duration_seconds",
                "Time from a request's head to its response, by route template",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["route"],
        )?;
        let commands = IntCounterVec::new(
            Opts::new(
                "walletd_commands_total",
                "Ledger commands by op and outcome (applied, replayed, or the error code)",
            ),
            &["op", "outcome"],
        )?;
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "walletd_commit_duration_seconds",
                "Time from a group's write transaction start to its durable commit",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )?;
        let group_size = Histogram::with_opts(
            HistogramOpts::new(
                "walletd_commit_group_size",
                "Commands carried by one group commit (one transaction, one fsync)",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ]),
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_seconds.clone()))?;
        registry.register(Box::new(commands.clone()))?;
        registry.register(Box::new(commit_seconds.clone()))?;
        registry.register(Box::new(group_size.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            request_seconds,
            commands,
            commit_seconds,
            group_size,
        })
    }

    /// Counts one answered request.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, status.to_string().as_str()])
            .inc();
        self.request_seconds
            .with_label_values(&[route])
            .observe(seconds);
    }

    /// Counts one command.
    pub fn command(&self, op: &str, outcome: &str) {
        self.commands.with_label_values(&[op, outcome]).inc();
    }

    /// Records one group commit.
    pub fn commit(&self, commands: usize, seconds: f64) {
        self.commit_seconds.observe(seconds);
        self.group_size.observe(commands as f64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec fails only on an invalid metric family, which registration
        // already refused.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders() {
        let m = Metrics::new().unwrap();
        m.request("/v1/commands", "POST", 200, 0.002);
        m.command("credit", "applied");
        m.commit(3, 0.001);
        let text = m.render();
        for needle in [
            r#"walletd_http_requests_total{method="POST",route="/v1/commands",status="200"} 1"#,
            r#"walletd_commands_total{op="credit",outcome="applied"} 1"#,
            "walletd_commit_group_size_bucket{le=\"4\"} 1",
            "walletd_commit_duration_seconds_count 1",
            "walletd_http_request_duration_seconds_bucket",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
