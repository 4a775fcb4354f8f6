//! Progress while a job runs: a bar (bytes, files, collections) on a terminal,
//! plain lines otherwise (one per phase change, and at most every few seconds).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use milvault_sdk::pb;

use crate::Format;

/// Draws progress for one job.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    last_phase: String,
    last_line: Option<Instant>,
}

impl Progress {
    /// A bar when stderr is a terminal and output is a table.
    pub(crate) fn new(format: Format) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (tty && format == Format::Table).then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{spinner} {msg:30} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            plain: bar.is_none() && format == Format::Table,
            bar,
            last_phase: String::new(),
            last_line: None,
        }
    }

    /// Shows a new snapshot.
    pub(crate) fn update(&mut self, job: &pb::Job) {
        let p = job.progress.clone().unwrap_or_default();
        if let Some(bar) = &self.bar {
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_done);
            bar.set_message(format!(
                "{} {}/{} files {}/{} coll",
                milvault_sdk::phase_text(job),
                p.files_done,
                p.files_total,
                p.collections_done,
                p.collections_total
            ));
        } else if self.plain {
            let due = self
                .last_line
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
            let phase = milvault_sdk::phase_text(job);
            if phase != self.last_phase || due {
                eprintln!(
                    "[{}] {}: {} of {} bytes, {} of {} files, {} of {} collections",
                    job.id,
                    phase,
                    p.bytes_done,
                    p.bytes_total,
                    p.files_done,
                    p.files_total,
                    p.collections_done,
                    p.collections_total
                );
                self.last_phase = phase;
                self.last_line = Some(Instant::now());
            }
        }
    }

    /// Clears the bar.
    pub(crate) fn finish(&mut self, _job: &pb::Job) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
