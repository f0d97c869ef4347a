//! Progress bars on stderr for uploads and downloads: one carriage-return line per
//! transfer, redrawn at most ten times a second (about 60 lines of our own instead of
//! a crate: the line needs no more than percent, bytes and rate).
//!
//! Shown only when stderr is a terminal, and never with `--json` or `-q`. A transfer
//! that took a second or more leaves its final line behind; a quicker one is wiped.
//! The line names the transfer the engine's way ("database", "attachment 2 of 5",
//! "vault.json") and shows byte counts: nothing of the vault's content.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use syncfabric::core::progress::{Direction, Phase, ProgressHook, Update};

/// How often a running line is redrawn at most.
const REDRAW: Duration = Duration::from_millis(100);
/// Transfers that took at least this long keep their final line.
const KEEP: Duration = Duration::from_secs(1);
/// Width of the bar itself, in characters.
const BAR: usize = 12;
/// Lines are cut to this many characters (unless $COLUMNS says otherwise), so a
/// line never wraps and `\r` always returns to its start.
const WIDTH: usize = 79;

/// The hook the CLI passes to the engine, or `None` when nothing should be drawn.
pub fn hook(json: bool, quiet: bool) -> Option<ProgressHook> {
    if json || quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bars = Bars {
        state: Mutex::new(State {
            since: Instant::now(),
            first: Instant::now(),
            drawn: None,
        }),
    };
    Some(ProgressHook::new(move |u: &Update<'_>| bars.update(u)))
}

struct Bars {
    state: Mutex<State>,
}

struct State {
    /// When the current attempt began (for the rate).
    since: Instant,
    /// When the transfer began (for keeping the final line).
    first: Instant,
    /// When the line was last drawn.
    drawn: Option<Instant>,
}

impl Bars {
    fn update(&self, u: &Update<'_>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        let text = match u.phase {
            Phase::Started => {
                st.since = now;
                st.first = now;
                Some(line(u, Duration::ZERO))
            }
            Phase::Restarted => {
                st.since = now;
                Some(line(u, Duration::ZERO))
            }
            Phase::Advanced => st
                .drawn
                .is_none_or(|d| now.duration_since(d) >= REDRAW)
                .then(|| line(u, now.duration_since(st.since))),
            Phase::Finished | Phase::Failed => None,
        };
        let mut err = std::io::stderr().lock();
        let _ = match (text, u.phase) {
            (Some(t), _) => write!(err, "\r\x1b[K{t}"),
            (None, Phase::Finished) if now.duration_since(st.first) >= KEEP => {
                writeln!(err, "\r\x1b[K{}", line(u, now.duration_since(st.since)))
            }
            (None, Phase::Finished | Phase::Failed) => write!(err, "\r\x1b[K"),
            (None, _) => return,
        };
        let _ = err.flush();
        st.drawn = Some(now);
    }
}

/// One line: `↓ database [#####-------]  45% 1.2 MiB/2.7 MiB 3.4 MiB/s`, at most
/// [`WIDTH`] (or $COLUMNS - 1) characters.
fn line(u: &Update<'_>, elapsed: Duration) -> String {
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c > 20)
        .map_or(WIDTH, |c| c - 1);
    let mut s = full_line(u, elapsed);
    if let Some((cut, _)) = s.char_indices().nth(width) {
        s.truncate(cut);
    }
    s
}

fn full_line(u: &Update<'_>, elapsed: Duration) -> String {
    let dir = match u.transfer.direction {
        Direction::Upload => "↑",
        Direction::Download => "↓",
    };
    let mut s = format!("{dir} {}", u.transfer.label);
    if u.attempt > 1 {
        s.push_str(&format!(" (try {})", u.attempt));
    }
    match u.total {
        Some(total) => {
            let frac = if total == 0 {
                1.0
            } else {
                (u.done as f64 / total as f64).clamp(0.0, 1.0)
            };
            let filled = (frac * BAR as f64).round() as usize;
            s.push_str(&format!(
                " [{}{}] {:>3}% {}/{}",
                "#".repeat(filled),
                "-".repeat(BAR - filled),
                (frac * 100.0).floor() as u32,
                bytes(u.done),
                bytes(total)
            ));
        }
        None => s.push_str(&format!(" {}", bytes(u.done))),
    }
    if elapsed >= Duration::from_millis(200) {
        let rate = u.done as f64 / elapsed.as_secs_f64();
        s.push_str(&format!(" {}/s", bytes(rate as u64)));
    }
    s
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`, `1.1 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncfabric::core::progress::Transfer;
    use syncfabric::core::RemotePath;

    fn update(t: &Transfer, attempt: u32, done: u64, total: Option<u64>) -> Update<'_> {
        Update {
            transfer: t,
            phase: Phase::Advanced,
            attempt,
            done,
            total,
        }
    }

    #[test]
    fn lines_show_label_percent_bytes_and_rate() {
        let t = Transfer {
            direction: Direction::Download,
            path: RemotePath::parse("v/vault.enpassdb").unwrap(),
            label: "database".into(),
        };
        let half = full_line(
            &update(&t, 1, 1536 * 1024, Some(3 * 1024 * 1024)),
            Duration::from_secs(2),
        );
        assert_eq!(
            half,
            "↓ database [######------]  50% 1.5 MiB/3.0 MiB 768.0 KiB/s"
        );
        let retry = full_line(&update(&t, 2, 0, Some(10)), Duration::ZERO);
        assert_eq!(retry, "↓ database (try 2) [------------]   0% 0 B/10 B");
        let unknown = full_line(&update(&t, 1, 5000, None), Duration::from_millis(100));
        assert_eq!(unknown, "↓ database 4.9 KiB");
        let t = Transfer {
            direction: Direction::Upload,
            label: "attachment 2 of 5".into(),
            ..t
        };
        let empty = full_line(&update(&t, 1, 0, Some(0)), Duration::ZERO);
        assert!(empty.starts_with("↑ attachment 2 of 5 [############] 100%"));
        // More than announced never draws past the end of the bar.
        assert!(full_line(&update(&t, 1, 20, Some(10)), Duration::ZERO).contains("100%"));
        // A long line is cut, never wrapped.
        let t = Transfer {
            label: "attachment 1234 of 5678".into(),
            ..t
        };
        let long = update(&t, 12, 1 << 40, Some(1 << 41));
        assert!(full_line(&long, Duration::from_secs(3)).chars().count() > WIDTH);
        if std::env::var_os("COLUMNS").is_none() {
            assert_eq!(line(&long, Duration::from_secs(3)).chars().count(), WIDTH);
        }
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn no_hook_for_json_or_quiet() {
        assert!(hook(true, false).is_none());
        assert!(hook(false, true).is_none());
    }
}
