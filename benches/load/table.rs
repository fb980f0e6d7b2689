//! The final table: a row per figure, vcproxy against its alternative, the target and
//! whether it was met; and the machine the figures come from.

/// One row of the final table.
pub struct Row {
    scenario: String,
    vcproxy: String,
    alternative: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

impl Row {
    pub fn new(
        scenario: impl Into<String>,
        vcproxy: impl Into<String>,
        alternative: impl Into<String>,
        ratio: impl Into<String>,
        target: impl Into<String>,
        met: Option<bool>,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            vcproxy: vcproxy.into(),
            alternative: alternative.into(),
            ratio: ratio.into(),
            target: target.into(),
            met,
        }
    }

    /// A row for a scenario that could not run, saying why.
    pub fn failed(scenario: &str, why: impl Into<String>, target: &str) -> Row {
        Row::new(scenario, why, "", "", target, Some(false))
    }
}

/// Prints `rows` as a Markdown table on stdout.
pub fn print_table(rows: &[Row]) {
    let header = [
        "scenario",
        "vcproxy",
        "alternative",
        "ratio",
        "target",
        "met?",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.scenario.clone(),
                r.vcproxy.clone(),
                r.alternative.clone(),
                r.ratio.clone(),
                r.target.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "n/a".into(),
                },
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let parts: Vec<String> = c
            .iter()
            .zip(width)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(&header.map(String::from));
    println!(
        "|{}|",
        width
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for c in &cells {
        line(c);
    }
}

/// CPU, core count, memory and load average, for the table's heading.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown CPU")
        .to_owned();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(|r| r.trim().to_owned()))
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "nproc {nproc}, {model}, MemTotal {mem}, loadavg {}",
        load.join(" ")
    )
}
