//! Numbers from measurements: percentiles, medians, and phases summed up per system and
//! concurrency.

use serde::Serialize;

use crate::setup::Phase;

/// One system at one concurrency, over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub system: String,
    pub concurrency: usize,
    pub rounds: usize,
    /// Authorized connections per second: median of the rounds, and the range.
    pub rate_median: f64,
    pub rate_min: f64,
    pub rate_max: f64,
    /// Connect latency over every connection of every round.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ok: usize,
    pub refused: usize,
    pub timeouts: usize,
    pub io_errors: usize,
    pub service_cpu_ms_per_auth: Option<f64>,
    pub server_cpu_ms_per_conn: f64,
}

pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

pub fn summarize(phases: &[Phase], concurrency: &[usize]) -> Vec<Summary> {
    summarize_systems(
        phases,
        &[
            "callout",
            "minimal",
            "static",
            "credentials",
            "callout-op",
            "callout-fresh",
        ],
        concurrency,
    )
}

/// [`summarize`] for the named systems.
pub fn summarize_systems(phases: &[Phase], systems: &[&str], concurrency: &[usize]) -> Vec<Summary> {
    let mut out = Vec::new();
    for &system in systems {
        for &c in concurrency {
            let ps: Vec<&Phase> = phases
                .iter()
                .filter(|p| p.system == system && p.concurrency == c)
                .collect();
            if ps.is_empty() {
                continue;
            }
            let rates: Vec<f64> = ps.iter().map(|p| p.rate()).collect();
            let mut lat: Vec<f64> = ps.iter().flat_map(|p| p.latencies_ms.iter().copied()).collect();
            lat.sort_by(f64::total_cmp);
            let ok: usize = ps.iter().map(|p| p.ok).sum();
            let sum = |f: fn(&Phase) -> f64| ps.iter().map(|p| f(p)).sum::<f64>();
            let has_service = system != "static";
            out.push(Summary {
                system: system.to_string(),
                concurrency: c,
                rounds: ps.len(),
                rate_median: median(rates.clone()),
                rate_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
                rate_max: rates.iter().copied().fold(0.0, f64::max),
                p50_ms: percentile(&lat, 0.5),
                p99_ms: percentile(&lat, 0.99),
                ok,
                refused: ps.iter().map(|p| p.refused).sum(),
                timeouts: ps.iter().map(|p| p.timeouts).sum(),
                io_errors: ps.iter().map(|p| p.io_errors).sum(),
                service_cpu_ms_per_auth: has_service.then(|| sum(|p| p.service_cpu) * 1e3 / ok.max(1) as f64),
                server_cpu_ms_per_conn: sum(|p| p.server_cpu) * 1e3 / ok.max(1) as f64,
            });
        }
    }
    out
}

pub fn phase_line(p: &Phase) -> String {
    let mut l = p.latencies_ms.clone();
    l.sort_by(f64::total_cmp);
    format!(
        "  round {} {:>13} c={:<3} {:>7.0}/s  p50 {:>6.2} ms  p99 {:>7.2} ms  failed {}  service cpu {:.3} ms/auth",
        p.round + 1,
        p.system,
        p.concurrency,
        p.rate(),
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        p.failed(),
        p.service_cpu * 1e3 / p.ok.max(1) as f64,
    )
}
