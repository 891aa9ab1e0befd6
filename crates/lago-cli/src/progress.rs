//! The original's nested task lines on stderr (`@ Initialize and populate prefix:` ...
//! `Success (in 0:00:00)`), limited to `--logdepth` levels, and download progress: a bar on a
//! terminal, plain lines otherwise (and whenever `CI` or `LAGO_NO_PROGRESS` is set).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lago::report::{BootPhase, Reporter, SILENT_AFTER, hms};

const MARKERS: [char; 5] = ['@', '#', '*', '-', '~'];

pub(crate) struct TaskPrinter {
    /// Levels shown (negative: all).
    logdepth: i64,
    /// Whether task lines are shown at all (`--loglevel info` or `debug`).
    enabled: bool,
    color: bool,
    bars: bool,
    state: Mutex<State>,
}

/// Task depth is kept per thread: tasks run in parallel for each VM nest under the task that
/// started them (the main thread's current depth), not under each other.
#[derive(Default)]
struct State {
    depths: HashMap<ThreadId, usize>,
    main: Option<ThreadId>,
    bar: Option<ProgressBar>,
    last_percent: Option<u64>,
    /// One line per booting VM, on a terminal.
    boot: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    /// The live line of a wait in line (a terminal), or whether its first words were said.
    wait: Option<ProgressBar>,
    wait_said: bool,
}

impl State {
    /// The calling thread's depth; a worker thread starts at the main thread's depth.
    fn depth(&mut self) -> &mut usize {
        let me = std::thread::current().id();
        let main = *self.main.get_or_insert(me);
        let start = self.depths.get(&main).copied().unwrap_or(0);
        self.depths.entry(me).or_insert(start)
    }
}

impl TaskPrinter {
    pub(crate) fn new(logdepth: i64, loglevel: &str) -> Self {
        let tty = std::io::stderr().is_terminal();
        let quiet_env = std::env::var_os("CI").is_some() || std::env::var_os("LAGO_NO_PROGRESS").is_some();
        Self {
            logdepth,
            enabled: matches!(loglevel, "info" | "debug"),
            color: tty && std::env::var_os("NO_COLOR").is_none(),
            bars: tty && !quiet_env,
            state: Mutex::new(State::default()),
        }
    }

    fn shown(&self, depth: usize) -> bool {
        self.enabled && (self.logdepth < 0 || (depth as i64) < self.logdepth)
    }

    fn line(&self, depth: usize, text: &str) {
        let indent = "  ".repeat(depth);
        let marker = MARKERS[depth % MARKERS.len()];
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{indent}{marker} {text}");
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }
}

impl Reporter for TaskPrinter {
    fn task_started(&self, name: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let depth = st.depth();
        if self.shown(*depth) {
            self.line(*depth, &format!("{name}:"));
        }
        *depth += 1;
    }

    fn task_finished(&self, name: &str, ok: bool, elapsed: Duration) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let depth = st.depth();
        *depth = depth.saturating_sub(1);
        let depth = *depth;
        // A failed task is shown even below --logdepth, so the user sees what broke.
        if self.shown(depth) || (!ok && self.enabled) {
            let status = if ok { self.paint("Success", "32") } else { self.paint("ERROR", "31") };
            self.line(depth, &format!("{name}: {status} (in {})", hms(elapsed)));
        }
    }

    fn download(&self, what: &str, done: u64, total: Option<u64>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !self.enabled {
            return;
        }
        if self.bars {
            let bar = st.bar.get_or_insert_with(|| {
                let bar = ProgressBar::new(total.unwrap_or(0));
                let style =
                    ProgressStyle::with_template("  {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style.progress_chars("=> "));
                bar.set_message(format!("Downloading {what}"));
                bar
            });
            bar.set_position(done);
        } else if let Some(total) = total.filter(|t| *t > 0) {
            let percent = done * 100 / total / 10 * 10;
            if st.last_percent != Some(percent) {
                st.last_percent = Some(percent);
                eprintln!("  Downloading {what}: {percent}% ({} of {} KiB)", done / 1024, total / 1024);
            }
        }
    }

    fn download_finished(&self, _what: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = st.bar.take() {
            bar.finish_and_clear();
        }
        st.last_percent = None;
    }

    fn note(&self, message: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let depth = *st.depth();
        if self.shown(depth) {
            self.line(depth, message);
        }
    }

    fn warn(&self, message: &str) {
        tracing::warn!("{message}");
    }

    /// A wait in line for memory: a live line on a terminal; else its first words once. Shown
    /// whatever the log level: a command that waits says why.
    fn waiting(&self, why: Option<&str>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match why {
            Some(text) if self.bars => {
                let bar = st.wait.get_or_insert_with(|| {
                    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.set_message(text.to_owned());
            }
            Some(text) => {
                if !st.wait_said {
                    st.wait_said = true;
                    eprintln!("{text}");
                }
            }
            None => {
                if let Some(bar) = st.wait.take() {
                    bar.finish_and_clear();
                }
                if std::mem::take(&mut st.wait_said) {
                    eprintln!("Done waiting for memory");
                }
            }
        }
    }

    /// On a terminal, one live line per VM (`vm01  booting 0:00:07`, then `vm01  ready (15.2 s)`);
    /// otherwise a plain line when each VM starts booting and when it is ready or failed.
    fn vm_boot(&self, vm: &str, phase: BootPhase, elapsed: Duration) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let depth = *st.depth();
        if !self.shown(depth) {
            return;
        }
        let secs = elapsed.as_secs_f64();
        if !self.bars {
            let text = match phase {
                BootPhase::Booting => format!("{vm}: booting"),
                BootPhase::Silent => {
                    format!("{vm}: no console output after {} s (still waiting)", SILENT_AFTER.as_secs())
                }
                BootPhase::Ready => format!("{vm}: ssh ready ({secs:.1} s)"),
                BootPhase::Failed => format!("{vm}: failed ({secs:.1} s)"),
            };
            self.line(depth, &text);
            return;
        }
        let indent = "  ".repeat(depth);
        let marker = MARKERS[depth % MARKERS.len()];
        let (multi, bars) = st
            .boot
            .get_or_insert_with(|| (MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), HashMap::new()));
        match phase {
            BootPhase::Booting => {
                let style = ProgressStyle::with_template(&format!(
                    "{indent}{marker} {{prefix}}: {{spinner}} booting {{elapsed_precise}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                let bar = multi.add(ProgressBar::new_spinner().with_style(style).with_prefix(vm.to_owned()));
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(vm.to_owned(), bar);
            }
            BootPhase::Silent => {
                let Some(bar) = bars.get(vm) else { return };
                let note = self.paint(&format!("no console output after {} s", SILENT_AFTER.as_secs()), "33");
                let style = ProgressStyle::with_template(&format!(
                    "{indent}{marker} {{prefix}}: {{spinner}} booting {{elapsed_precise}}, {note}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
            }
            BootPhase::Ready | BootPhase::Failed => {
                let Some(bar) = bars.remove(vm) else { return };
                let word =
                    if phase == BootPhase::Ready { self.paint("ready", "32") } else { self.paint("failed", "31") };
                let style = ProgressStyle::with_template(&format!("{indent}{marker} {{prefix}}: {word} ({secs:.1} s)"))
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.finish();
                if bars.is_empty() {
                    st.boot = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_nest_under_the_main_threads_task() {
        let state = Mutex::new(State::default());
        *state.lock().unwrap().depth() += 2;
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let mut st = state.lock().unwrap();
                    assert_eq!(*st.depth(), 2);
                    *st.depth() += 1;
                });
            }
        });
        assert_eq!(*state.lock().unwrap().depth(), 2);
    }
}
