//! Where output goes: data on stdout, messages and progress on stderr.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Ctx {
    pub quiet: bool,
}

impl Ctx {
    /// A message on stderr, unless `--quiet`.
    pub fn note(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "{}", msg.as_ref());
        }
    }

    /// A byte progress bar on stderr when it is a terminal, the work is large and not `--quiet`
    /// (else a hidden one: its methods do nothing).
    pub fn progress(&self, total: u64, label: &str) -> Progress {
        if self.quiet || total < (64 << 20) || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(label.to_string());
        Progress(Some(pb))
    }
}

/// A byte progress bar that may be hidden ([`Ctx::progress`]).
#[derive(Clone)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// Adds `n` bytes done.
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.0 {
            pb.inc(n)
        }
    }

    /// Sets the bytes done to `n`.
    pub fn set_position(&self, n: u64) {
        if let Some(pb) = &self.0 {
            pb.set_position(n)
        }
    }

    /// [`Self::set_position`] as a callback that can cross threads.
    pub fn position_callback(&self) -> std::sync::Arc<dyn Fn(u64) + Send + Sync> {
        let this = self.clone();
        std::sync::Arc::new(move |n| this.set_position(n))
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(pb) = self.0 {
            pb.finish_and_clear();
        }
    }
}

/// Writes to stdout. A closed pipe (`gym ... | head`) surfaces as an io::Error of kind
/// BrokenPipe, which the binary turns into a quiet exit.
pub fn print(s: &str) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes())?;
    o.flush()
}

pub fn println(s: &str) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes())?;
    o.write_all(b"\n")?;
    o.flush()
}

/// Pretty JSON on stdout, one document.
pub fn json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let s = serde_json::to_string_pretty(v)?;
    println(&s)?;
    Ok(())
}

/// A plain table (no colours, so NO_COLOR and pipes are trivially respected).
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(header.iter().map(comfy_table::Cell::new));
    if !std::io::stdout().is_terminal() {
        t.force_no_tty();
        t.load_style(comfy_table::presets::ASCII_MARKDOWN);
    }
    t
}

pub fn human_bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", U[i])
    }
}
