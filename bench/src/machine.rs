//! The machine a benchmark ran on, as stated in `BENCHMARKS.md`.

use std::fmt;
use std::fs;

/// CPU model, core count and memory of this machine, and how busy it was.
pub struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: Option<f64>,
    /// The 1-minute load average when the benchmark started: other work shares the cores.
    load: Option<String>,
}

impl Machine {
    /// Reads `/proc/cpuinfo`, `/proc/meminfo` and `/proc/loadavg` (what is missing is reported
    /// as unknown).
    pub fn this() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = field(&cpuinfo, "model name")
            .unwrap_or("unknown CPU")
            .to_string();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_gib = field(&meminfo, "MemTotal")
            .and_then(|kib| kib.trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| kib / (1024.0 * 1024.0));
        let load = fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| text.split_whitespace().next().map(str::to_string));
        Machine {
            cpu,
            cores,
            memory_gib,
            load,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {} cores", self.cpu, self.cores)?;
        match self.memory_gib {
            Some(gib) => write!(f, ", {gib:.1} GiB memory")?,
            None => write!(f, ", unknown memory")?,
        }
        match &self.load {
            Some(load) => write!(f, "; load average {load} when the run started"),
            None => Ok(()),
        }
    }
}

/// The value of the first `key: value` line of a `/proc` file.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then(|| value.trim())
    })
}
