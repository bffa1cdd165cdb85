//! `airssys-rt-compare`: the same workloads on airssys-rt (on its own drivers and on tokio),
//! ractor, kameo, actix, xtra, and raw tokio-mpsc and crossbeam-channel baselines, in one run;
//! writes `results.md` and `results.svg` next to this package's `Cargo.toml` (issue 6).
//!
//! ```text
//! cargo run --release -p airssys-rt-compare -- [--quick | --scale F] [--runs N] [--budget SECS]
//!     [--filter WORKLOAD] [--system NAME] [--out DIR]
//! ```
//!
//! * [`harness`]: runs, medians, faults, waiting, producers;
//! * [`workload`]: the workloads, their sizes and shared logic;
//! * [`systems`]: one module per system;
//! * [`report`]: the table and the plot;
//! * [`alloc`]: the counting allocator and RSS for the memory probe (run in child processes).

mod alloc;
mod harness;
mod report;
mod systems;
mod workload;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::{median, Bench, Cell};
use report::{Column, Meta, Row};
use systems::{Contender, MemoryError};
use workload::{Sizes, Workload};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Command-line options.
struct Options {
    quick: bool,
    scale: Option<f64>,
    runs: usize,
    budget: Duration,
    filter: Option<String>,
    system: Option<String>,
    out: Option<PathBuf>,
    /// Internal: run one memory probe (system index, actors) and print the result.
    child: Option<(usize, usize)>,
}

const USAGE: &str = "usage: airssys-rt-compare [--quick | --scale F] [--runs N] [--budget SECS] \
[--filter WORKLOAD] [--system NAME] [--out DIR]

  --quick          a tenth of the default sizes (results not written unless --out)
  --scale F        the default sizes times F (results not written unless --out)
  --runs N         runs per cell, median reported (default 5)
  --budget SECS    stop a cell's runs once they took this long (default 8)
  --filter W       only workloads whose key contains W, or one of W's comma-separated parts
                   (ping-pong-1, ping-pong-2, fan-in-1, fan-in-4, spawn, memory, ring,
                   counting, fork-join, big, chameneos)
  --system NAME    only systems whose name contains NAME (=NAME: exactly NAME, as in
                   --system '=airssys-rt' for airssys-rt on its own drivers only)
  --out DIR        where to write results.md and results.svg (default: this package's
                   directory, for a full run only)";

fn parse() -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        scale: None,
        runs: 5,
        budget: Duration::from_secs(8),
        filter: None,
        system: None,
        out: None,
        child: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--scale" => {
                let f: f64 = value("--scale")?
                    .parse()
                    .map_err(|e| format!("--scale: {e}"))?;
                o.scale = Some(f);
            }
            "--runs" => {
                o.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--budget" => {
                let secs: u64 = value("--budget")?
                    .parse()
                    .map_err(|e| format!("--budget: {e}"))?;
                o.budget = Duration::from_secs(secs);
            }
            "--filter" => o.filter = Some(value("--filter")?),
            "--system" => o.system = Some(value("--system")?),
            "--out" => o.out = Some(PathBuf::from(value("--out")?)),
            "--child-memory" => {
                let sys = value("--child-memory")?
                    .parse()
                    .map_err(|e| format!("{e}"))?;
                let n = value("--child-memory")?
                    .parse()
                    .map_err(|e| format!("{e}"))?;
                o.child = Some((sys, n));
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let systems = systems::all();
    if let Some((index, actors)) = opts.child {
        return child_memory(&*systems[index], actors);
    }

    let started = Instant::now();
    let load_at_start = load_average();
    let sizes = match (opts.scale, opts.quick) {
        (Some(f), _) => Sizes::scaled(f),
        (None, true) => Sizes::quick(),
        (None, false) => Sizes::full(),
    };
    let chosen: Vec<usize> = (0..systems.len())
        .filter(|&i| {
            opts.system
                .as_ref()
                .is_none_or(|s| match s.strip_prefix('=') {
                    Some(exact) => systems[i].name() == exact,
                    None => systems[i].name().contains(s.as_str()),
                })
        })
        .collect();
    let columns: Vec<Column> = chosen
        .iter()
        .map(|&i| Column {
            name: systems[i].name(),
            kind: systems[i].kind(),
            host: systems[i].host(),
            remark: systems[i].remark(),
        })
        .collect();

    let mut rows = Vec::new();
    for w in Workload::ALL {
        if opts
            .filter
            .as_ref()
            .is_some_and(|f| !f.split(',').any(|part| w.key().contains(part)))
        {
            continue;
        }
        if w == Workload::Memory {
            rows.extend(memory_rows(&systems, &chosen, &sizes, &opts));
            continue;
        }
        let mut cells = Vec::new();
        for &i in &chosen {
            settle();
            let mut b = Bench::new(w.ops(&sizes), opts.runs, opts.budget);
            let t = Instant::now();
            w.run(&*systems[i], &mut b, &sizes);
            let cell = b.finish();
            progress(w.title(), systems[i].name(), &cell, w.unit(), t.elapsed());
            cells.push(cell);
        }
        rows.push(Row {
            title: w.title().to_string(),
            label: short_label(w).to_string(),
            size: w.size(&sizes),
            unit: w.unit(),
            cells,
        });
    }

    let meta = Meta {
        date: today(),
        arch: uname_m(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: cpu_model(),
        rustc: env!("COMPARE_RUSTC_VERSION").to_string(),
        versions: env!("COMPARE_CRATE_VERSIONS")
            .split(',')
            .map(str::to_string)
            .collect(),
        runs: opts.runs,
        budget_secs: opts.budget.as_secs(),
        quick: opts.quick || opts.scale.is_some(),
        elapsed_secs: started.elapsed().as_secs_f64(),
        command: command_line(&opts),
        load: load_at_start,
    };
    let md = report::markdown(&meta, &columns, &rows);
    println!("\n{md}");

    let full =
        !opts.quick && opts.scale.is_none() && opts.filter.is_none() && opts.system.is_none();
    let out = opts
        .out
        .clone()
        .or_else(|| full.then(|| PathBuf::from(env!("CARGO_MANIFEST_DIR"))));
    match out {
        Some(dir) => {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("creating {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
            let md_path = dir.join("results.md");
            let svg_path = dir.join("results.svg");
            if let Err(e) = std::fs::write(&md_path, &md) {
                eprintln!("writing {}: {e}", md_path.display());
                return ExitCode::FAILURE;
            }
            if let Err(e) = report::svg(&svg_path, &meta, &columns, &rows) {
                eprintln!("writing {}: {e}", svg_path.display());
                return ExitCode::FAILURE;
            }
            eprintln!("wrote {} and {}", md_path.display(), svg_path.display());
        }
        None => eprintln!("partial run: results not written (pass --out DIR to write them)"),
    }
    eprintln!("total {:.0} s", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

fn progress(workload: &str, system: &str, cell: &Cell, unit: &str, took: Duration) {
    let what = match cell {
        Cell::Value { median, runs, .. } => format!("{median:.1} {unit} ({runs} runs)"),
        Cell::Failed(why) => format!("FAILED: {why}"),
        Cell::NotApplicable(why) => format!("n/a: {why}"),
    };
    eprintln!(
        "{workload:<26} {system:<20} {what}  [{:.1} s]",
        took.as_secs_f64()
    );
}

fn short_label(w: Workload) -> &'static str {
    match w {
        Workload::PingPongOne => "ping-pong 1T",
        Workload::PingPongTwo => "ping-pong 2W",
        Workload::FanIn1 => "fan-in 1P",
        Workload::FanIn4 => "fan-in 4P",
        Workload::Spawn => "spawn",
        Workload::Memory => "memory",
        Workload::Ring => "thread ring",
        Workload::Counting => "counting",
        Workload::ForkJoin => "fork-join",
        Workload::Big => "big",
        Workload::Chameneos => "chameneos",
    }
}

// ---------------------------------------------------------------------------------------------
// Memory: one child process per run and system
// ---------------------------------------------------------------------------------------------

/// In a child process: probe `actors` idle actors of one system and print the result line.
fn child_memory(system: &dyn Contender, actors: usize) -> ExitCode {
    match system.idle_memory(actors) {
        Ok(m) => {
            let rss = m.rss.map_or("none".to_string(), |r| format!("{r}"));
            println!("ok {} {rss}", m.heap);
        }
        Err(MemoryError::NotApplicable(why)) => println!("na {why}"),
        Err(MemoryError::Failed(why)) => println!("failed {why}"),
    }
    ExitCode::SUCCESS
}

/// The two memory rows (heap, RSS), each system probed `runs` times in fresh processes.
fn memory_rows(
    systems: &[Box<dyn Contender>],
    chosen: &[usize],
    sizes: &Sizes,
    opts: &Options,
) -> Vec<Row> {
    let mut heap_cells = Vec::new();
    let mut rss_cells = Vec::new();
    for &i in chosen {
        let t = Instant::now();
        let (heap, rss) = memory_cells(i, sizes.idle, opts.runs);
        progress(
            "memory (heap)",
            systems[i].name(),
            &heap,
            "B/actor",
            t.elapsed(),
        );
        progress(
            "memory (RSS)",
            systems[i].name(),
            &rss,
            "B/actor",
            Duration::ZERO,
        );
        heap_cells.push(heap);
        rss_cells.push(rss);
    }
    let size = Workload::Memory.size(sizes);
    vec![
        Row {
            title: "memory per idle actor, heap".into(),
            label: "memory heap".into(),
            size: size.clone(),
            unit: "B/actor",
            cells: heap_cells,
        },
        Row {
            title: "memory per idle actor, RSS".into(),
            label: "memory RSS".into(),
            size,
            unit: "B/actor",
            cells: rss_cells,
        },
    ]
}

/// Runs the probe of system `index` `runs` times, each in a child process.
fn memory_cells(index: usize, actors: usize, runs: usize) -> (Cell, Cell) {
    let mut heaps = Vec::new();
    let mut rsss = Vec::new();
    for _ in 0..runs.max(1) {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => return failed_pair(format!("current_exe: {e}")),
        };
        let out = match Command::new(exe)
            .args(["--child-memory", &index.to_string(), &actors.to_string()])
            .output()
        {
            Ok(o) => o,
            Err(e) => return failed_pair(format!("child process: {e}")),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or("").to_string();
        let mut words = line.splitn(2, ' ');
        match (words.next(), words.next()) {
            (Some("ok"), Some(rest)) => {
                let mut it = rest.split(' ');
                let heap = it.next().and_then(|h| h.parse::<f64>().ok());
                let rss = it.next().and_then(|r| r.parse::<f64>().ok());
                match heap {
                    Some(h) => heaps.push(h),
                    None => return failed_pair(format!("unreadable probe output: {line}")),
                }
                if let Some(r) = rss {
                    rsss.push(r);
                }
            }
            (Some("na"), Some(why)) => {
                let cell = Cell::NotApplicable(why.to_string());
                return (cell.clone(), cell);
            }
            (Some("failed"), Some(why)) => return failed_pair(why.to_string()),
            _ => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let last = stderr.lines().last().unwrap_or("no output");
                return failed_pair(format!("the probe process died: {last}"));
            }
        }
    }
    let cell = |v: &[f64]| {
        if v.is_empty() {
            Cell::NotApplicable("/proc/self/statm is not readable".into())
        } else {
            Cell::Value {
                median: median(v),
                min: v.iter().copied().fold(f64::INFINITY, f64::min),
                max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                runs: v.len(),
            }
        }
    };
    (cell(&heaps), cell(&rsss))
}

fn failed_pair(why: String) -> (Cell, Cell) {
    (Cell::Failed(why.clone()), Cell::Failed(why))
}

// ---------------------------------------------------------------------------------------------
// Machine and date
// ---------------------------------------------------------------------------------------------

/// Today's date (UTC) as `YYYY-MM-DD`.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The 1-minute load average (`/proc/loadavg`), or `?`.
/// Waits (at most `SETTLE_MAX`) until the machine is idle: the CPUs at least 90% idle over a
/// 100 ms window (`/proc/stat`). A cell that starts or tears down many threads (the crossbeam
/// baseline spawns 100,000 OS threads) leaves the kernel busy for seconds after it, and the
/// next cell, always the same system first (airssys-rt), would otherwise run in that noise.
/// Without `/proc/stat` it returns at once.
fn settle() {
    const SETTLE_MAX: Duration = Duration::from_secs(20);
    const WINDOW: Duration = Duration::from_millis(100);
    let deadline = Instant::now() + SETTLE_MAX;
    while Instant::now() < deadline {
        let Some(before) = cpu_times() else { return };
        std::thread::sleep(WINDOW);
        let Some(after) = cpu_times() else { return };
        let total = after.0.saturating_sub(before.0);
        let idle = after.1.saturating_sub(before.1);
        if total == 0 || idle * 10 >= total * 9 {
            return;
        }
    }
}

/// `(all, idle)` jiffies of all CPUs so far (`/proc/stat`'s first line; idle includes iowait).
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((fields.iter().sum(), idle))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

fn uname_m() -> String {
    Command::new("uname")
        .arg("-m")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

fn command_line(opts: &Options) -> String {
    let mut c = "cargo run --release -p airssys-rt-compare".to_string();
    let mut extra = Vec::new();
    if opts.quick {
        extra.push("--quick".to_string());
    }
    if let Some(f) = opts.scale {
        extra.push(format!("--scale {f}"));
    }
    if opts.runs != 5 {
        extra.push(format!("--runs {}", opts.runs));
    }
    if opts.budget != Duration::from_secs(8) {
        extra.push(format!("--budget {}", opts.budget.as_secs()));
    }
    if let Some(f) = &opts.filter {
        extra.push(format!("--filter {f}"));
    }
    if let Some(s) = &opts.system {
        extra.push(format!("--system {s}"));
    }
    if !extra.is_empty() {
        c.push_str(" -- ");
        c.push_str(&extra.join(" "));
    }
    c
}

#[cfg(test)]
mod tests {
    #[test]
    fn today_is_a_date() {
        let d = super::today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"));
    }
}
