//! Figures: the samples of interleaved runs, their medians, and the tables
//! that put each peer's median next to its ratio to tokio and to mio (and
//! xev on io_uring's to xev on poll and to tokio).
//!
//! Runs are interleaved (xev, tokio, mio, xev, ...), so xev's and tokio's
//! runs of one round are seconds apart. The `paired` column compares them
//! round by round: the median of the rounds' xev/tokio ratios, and in how
//! many rounds xev came out better. A slow spell of the machine then moves
//! one round's pair together instead of one peer's median.

use std::fmt::Write as _;

use crate::Peer;

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// A diagnostic, e.g. how busy a thread was.
    Neither,
}

#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub label: &'static str,
    pub better: Better,
    pub decimals: usize,
}

impl Metric {
    pub const fn higher(label: &'static str, decimals: usize) -> Metric {
        Metric {
            label,
            better: Better::Higher,
            decimals,
        }
    }

    pub const fn lower(label: &'static str, decimals: usize) -> Metric {
        Metric {
            label,
            better: Better::Lower,
            decimals,
        }
    }

    pub const fn neither(label: &'static str, decimals: usize) -> Metric {
        Metric {
            label,
            better: Better::Neither,
            decimals,
        }
    }

    fn heading(&self) -> String {
        let arrow = match self.better {
            Better::Higher => " (higher better)",
            Better::Lower => " (lower better)",
            Better::Neither => "",
        };
        format!("{}{arrow}", self.label)
    }
}

/// Every sample of one scenario: `samples[peer][metric]` holds one value per
/// run.
pub struct Samples {
    metrics: &'static [Metric],
    samples: Vec<(Peer, Vec<Vec<f64>>)>,
}

impl Samples {
    pub fn new(metrics: &'static [Metric], peers: &[Peer]) -> Samples {
        Samples {
            metrics,
            samples: peers
                .iter()
                .map(|&peer| (peer, vec![Vec::new(); metrics.len()]))
                .collect(),
        }
    }

    pub fn record(&mut self, peer: Peer, values: &[f64]) {
        assert_eq!(values.len(), self.metrics.len(), "one value per metric");
        let (_, columns) = self
            .samples
            .iter_mut()
            .find(|(p, _)| *p == peer)
            .expect("recorded peers were announced");
        for (column, &value) in columns.iter_mut().zip(values) {
            column.push(value);
        }
    }

    pub fn median(&self, peer: Peer, metric: usize) -> Option<f64> {
        median(self.column(peer, metric)?)
    }

    fn column(&self, peer: Peer, metric: usize) -> Option<&[f64]> {
        let (_, columns) = self.samples.iter().find(|(p, _)| *p == peer)?;
        Some(&columns[metric])
    }

    /// xev against tokio round by round: the median of the per-round
    /// ratios, and "k/n", the rounds in which xev was better.
    fn paired(&self, metric: usize) -> String {
        let (Some(xev), Some(tokio)) = (
            self.column(Peer::Xev, metric),
            self.column(Peer::Tokio, metric),
        ) else {
            return "-".into();
        };
        let pairs: Vec<(f64, f64)> = xev
            .iter()
            .zip(tokio)
            .filter(|(_, &t)| t != 0.0)
            .map(|(&x, &t)| (x, t))
            .collect();
        let ratios: Vec<f64> = pairs.iter().map(|(x, t)| x / t).collect();
        let Some(ratio) = median(&ratios) else {
            return "-".into();
        };
        let wins = match self.metrics[metric].better {
            Better::Higher => pairs.iter().filter(|(x, t)| x > t).count(),
            Better::Lower => pairs.iter().filter(|(x, t)| x < t).count(),
            Better::Neither => return format!("{ratio:.2}"),
        };
        format!("{ratio:.2} {wins}/{}", pairs.len())
    }

    /// The table of medians, with ratios to tokio and to mio, and, where
    /// xev ran on io_uring too, io_uring's ratios to xev on poll and to
    /// tokio; with `verbose`, every run's value too.
    pub fn table(&self, verbose: bool) -> String {
        let uring = self.samples.iter().any(|(peer, _)| *peer == Peer::XevUring);
        let mut out = String::new();
        let xev_heading = if uring { "xev/poll" } else { "xev" };
        let _ = write!(out, "  {:<34}{xev_heading:>13}", "");
        if uring {
            let _ = write!(out, "{:>13}", "xev/io_uring");
        }
        let _ = write!(
            out,
            "{:>13}{:>13}{:>11}{:>9}{:>11}{:>11}",
            "tokio", "mio", "xev/tokio", "xev/mio", "tokio/mio", "paired"
        );
        if uring {
            let _ = write!(out, "{:>12}{:>13}", "uring/poll", "uring/tokio");
        }
        out.push('\n');
        for (index, metric) in self.metrics.iter().enumerate() {
            let [xev, xev_uring, tokio, mio] = Peer::ALL.map(|peer| self.median(peer, index));
            let cell =
                |value: Option<f64>| value.map_or("-".into(), |v| number(v, metric.decimals));
            let _ = write!(out, "  {:<34}{:>13}", metric.heading(), cell(xev));
            if uring {
                let _ = write!(out, "{:>13}", cell(xev_uring));
            }
            let _ = write!(
                out,
                "{:>13}{:>13}{:>11}{:>9}{:>11}{:>11}",
                cell(tokio),
                cell(mio),
                ratio(xev, tokio),
                ratio(xev, mio),
                ratio(tokio, mio),
                self.paired(index),
            );
            if uring {
                let _ = write!(
                    out,
                    "{:>12}{:>13}",
                    ratio(xev_uring, xev),
                    ratio(xev_uring, tokio)
                );
            }
            out.push('\n');
        }
        if verbose {
            for (peer, columns) in &self.samples {
                for (metric, column) in self.metrics.iter().zip(columns) {
                    let values: Vec<String> =
                        column.iter().map(|&v| number(v, metric.decimals)).collect();
                    let _ = writeln!(
                        out,
                        "    {:<13}{:<34}{}",
                        peer.name(),
                        metric.label,
                        values.join("  ")
                    );
                }
            }
        }
        out
    }
}

pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The value at quantile `q` (0..=1) of an already sorted slice.
pub fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted[index])
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

/// `value` with `decimals` decimals and thousands separators.
pub fn number(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let text = format!("{:.*}", decimals, value.abs());
    let (int, frac) = text.split_at(text.find('.').unwrap_or(text.len()));
    let mut grouped = String::new();
    for (i, digit) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if value < 0.0 { "-" } else { "" };
    format!("{sign}{grouped}{frac}")
}
