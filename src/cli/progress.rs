//! How `meshql run` and `meshql job run` show a run: a progress bar per running node on a
//! terminal, one plain line per finished node otherwise (logs, CI).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use meshql::pipeline::{NodeReport, RunEvent};

/// Shows run events on standard output.
pub struct RunDisplay {
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
}

impl Default for RunDisplay {
    fn default() -> Self {
        Self::new()
    }
}

impl RunDisplay {
    /// Bars when standard output is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let bars = std::io::stdout().is_terminal().then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
                Mutex::new(HashMap::new()),
            )
        });
        Self { bars }
    }

    /// Handles one event of a run.
    pub fn event(&self, event: &RunEvent<'_>) {
        match (event, &self.bars) {
            (RunEvent::Started { name, kind }, Some((multi, bars))) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg:<60} {elapsed:>4}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(format!("{name} ({kind})"));
                bar.enable_steady_tick(Duration::from_millis(100));
                if let Ok(mut b) = bars.lock() {
                    b.insert(name.to_string(), bar);
                }
            }
            (RunEvent::Started { .. }, None) => {}
            (RunEvent::Finished(r), Some((multi, bars))) => {
                let bar = bars.lock().ok().and_then(|mut b| b.remove(&r.name));
                match bar {
                    Some(bar) => {
                        bar.finish_and_clear();
                        multi.remove(&bar);
                        let _ = multi.println(line(r));
                    }
                    None => {
                        let _ = multi.println(line(r));
                    }
                }
            }
            (RunEvent::Finished(r), None) => println!("{}", line(r)),
            (RunEvent::Printed { name, text }, Some((multi, _))) => {
                let _ = multi.println(format!("{name}:\n{text}"));
            }
            (RunEvent::Printed { name, text }, None) => println!("{name}:\n{text}"),
        }
    }
}

/// One line per node: status, node, rows, duration, version, why it failed or was skipped.
pub fn line(r: &NodeReport) -> String {
    format_line(
        r.status.label(),
        &r.name,
        r.rows,
        r.duration.as_secs_f64(),
        r.version,
        r.status.detail().unwrap_or_default(),
    )
}

/// The same line from its parts (for reports received from a server).
pub fn format_line(
    status: &str,
    node: &str,
    rows: Option<u64>,
    secs: f64,
    version: Option<u64>,
    detail: &str,
) -> String {
    let rows = rows.map(|n| format!("{n} rows")).unwrap_or_default();
    let version = version.map(|v| format!("v{v}")).unwrap_or_default();
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!("  {detail}")
    };
    format!("{status:<10} {node:<45} {rows:>12} {secs:>8.2}s {version:>6}{detail}")
}
