//! Progress for people and for CI: an indicatif bar with the build log printed above it when
//! stderr is a terminal, plain lines otherwise. Everything goes to stderr; stdout is for results.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Always a bar.
    Bar,
    /// Plain lines.
    Plain,
    /// Only errors.
    Quiet,
}

#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Self {
        let bar = match mode {
            ProgressMode::Bar => true,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Plain | ProgressMode::Quiet => false,
        };
        let bar = bar.then(|| {
            let pb = ProgressBar::new(1);
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Self {
            bar,
            quiet: mode == ProgressMode::Quiet,
        }
    }

    /// A stage of the work ("sending build context", "waiting for health").
    pub fn stage(&self, msg: &str) {
        match &self.bar {
            Some(pb) => pb.set_message(msg.to_string()),
            None if !self.quiet => eprintln!("dockerfile-gen: {msg}"),
            None => {}
        }
    }

    /// Build step `n` of `total`.
    pub fn step(&self, n: u64, total: u64, text: &str) {
        match &self.bar {
            Some(pb) => {
                pb.set_length(total);
                pb.set_position(n.saturating_sub(1));
                pb.set_message(text.to_string());
            }
            None if !self.quiet => eprintln!("step {n}/{total}: {text}"),
            None => {}
        }
    }

    /// A line of the build log.
    pub fn log(&self, line: &str) {
        match &self.bar {
            Some(pb) => pb.println(format!("  | {line}")),
            None if !self.quiet => eprintln!("  | {line}"),
            None => {}
        }
    }

    pub fn finish(&self, msg: &str) {
        match &self.bar {
            Some(pb) => {
                if let Some(len) = pb.length() {
                    pb.set_position(len);
                }
                pb.finish_with_message(msg.to_string());
            }
            None if !self.quiet => eprintln!("dockerfile-gen: {msg}"),
            None => {}
        }
    }

    pub fn abandon(&self) {
        if let Some(pb) = &self.bar {
            pb.abandon();
        }
    }
}
